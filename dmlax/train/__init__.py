"""dmlax.train: config-driven, data-parallel training and evaluation.

  train_and_evaluate(config, workdir)   the whole run, restartable from its workdir (loop.py)
  evaluate_checkpoint(config, workdir)  restore a checkpoint and evaluate it (loop.py)
  TrainState                            params, batch_stats, opt_state, step (state.py)
  build_objective                       config.loss -> loss + the parameters it owns (objectives.py)
  build_optimizer, schedule_fn          optax optimisers, groups and schedules (optimizers.py)
  train_step, make_driver               the per-device step; pmap/shard_map/single drivers (step.py)
  Checkpoints                           orbax latest-N + best checkpoints (checkpoints.py)
  evaluate.evaluate                     retrieval metrics / top-1 error of a state (evaluate.py)

Import cost: `dmlax.train` pulls in clu (and through it TensorFlow's summary writer) only when
`train_and_evaluate` runs.
"""

from dmlax.train.checkpoints import Checkpoints
from dmlax.train.objectives import build_objective
from dmlax.train.optimizers import build_optimizer
from dmlax.train.optimizers import schedule_fn
from dmlax.train.state import TrainState
from dmlax.train.step import make_driver
from dmlax.train.step import train_step


def train_and_evaluate(config, workdir):
  """See `dmlax.train.loop.train_and_evaluate`."""
  from dmlax.train import loop  # pylint: disable=g-import-not-at-top
  return loop.train_and_evaluate(config, workdir)


def evaluate_checkpoint(config, workdir, *, which="latest"):
  """See `dmlax.train.loop.evaluate_checkpoint`."""
  from dmlax.train import loop  # pylint: disable=g-import-not-at-top
  return loop.evaluate_checkpoint(config, workdir, which=which)
