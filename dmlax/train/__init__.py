"""dmlax.train: config-driven, data-parallel training and evaluation.

  train_and_evaluate(config, workdir)   the whole run, restartable from its workdir (loop.py)
  evaluate_checkpoint(config, workdir)  restore a checkpoint and evaluate it (loop.py)
  setup(config, workdir)                the built run: model, objective, state, driver (run.py)
  TrainState                            params, batch_stats, opt_state, step (state.py)
  build_objective, LOSSES               config.loss -> loss + the parameters it owns (objectives.py,
                                        parameter kinds in loss_params.py)
  build_optimizer, schedule_fn          optax optimisers, groups and schedules (optimizers.py)
  train_step, make_driver               the per-device step; pmap/shard_map/single drivers (step.py)
  Checkpoints                           orbax latest-N + best checkpoints (checkpoints.py)
  Evaluator                             retrieval metrics / top-1 error of a state (evaluate.py)

Also: checks.py (config and batch checks before step 1), dataset.py (the dataset resolved once
per run), run_config.py (the saved config and what may change on resume), reporting.py (console,
TensorBoard, results.json).

Import cost: `dmlax.train` pulls in clu (and through it TensorFlow's summary writer) only when
`train_and_evaluate` runs.
"""

from dmlax.train.checkpoints import Checkpoints
from dmlax.train.evaluate import Evaluator
from dmlax.train.objectives import LOSSES
from dmlax.train.objectives import build_objective
from dmlax.train.optimizers import build_optimizer
from dmlax.train.optimizers import schedule_fn
from dmlax.train.run import setup
from dmlax.train.state import TrainState
from dmlax.train.step import make_driver
from dmlax.train.step import train_step


def train_and_evaluate(config, workdir, *, allow_config_change=False):
  """See `dmlax.train.loop.train_and_evaluate`."""
  from dmlax.train import loop  # pylint: disable=g-import-not-at-top
  return loop.train_and_evaluate(config, workdir, allow_config_change=allow_config_change)


def evaluate_checkpoint(config, workdir, *, which="latest"):
  """See `dmlax.train.loop.evaluate_checkpoint`."""
  from dmlax.train import loop  # pylint: disable=g-import-not-at-top
  return loop.evaluate_checkpoint(config, workdir, which=which)
