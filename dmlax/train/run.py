"""`setup(config, workdir)`: everything a run needs, built once and checked before the first step.

Training (`dmlax.train.loop.train_and_evaluate`), `evaluate_checkpoint` and
`experiments/trained_features.py` all start here, so they build the same model, objective,
state template, driver, evaluator and checkpoints from a config, and compute the per-process
batch, the mesh and the headline metric in one place.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh

from dmlax.train import checkpoints as checkpoints_lib
from dmlax.train import checks
from dmlax.train import class_parallel
from dmlax.train import evaluate as evaluate_lib
from dmlax.train import objectives as objectives_lib
from dmlax.train import optimizers as optimizers_lib
from dmlax.train import step as step_lib
from dmlax.train.dataset import RunData
from dmlax.train.state import TrainState


@dataclasses.dataclass(frozen=True)
class Run:
  """A built run.

  Attributes:
    config: the run's config.
    workdir: absolute path of the run's directory.
    data: the dataset handle (resolved once).
    model: the backbone+head for evaluation (`bn_axis_name=None`).
    make_model: `bn_axis_name -> model`, for the drivers.
    objective: loss and its parameters.
    state: the initial train state (the template restores go into).
    driver: runs the training step (pmap, shard_map or single device).
    evaluator: evaluation metrics of a state.
    schedules: {"head", "backbone"} learning-rate schedules.
    image_shape: (H, W, C) of the training images.
    steps_per_epoch, total_steps: training length.
    local_batch: this process's rows of each global batch.
    mesh: 1-D mesh of all devices, axis "batch" (feature extraction; the shard_map driver's
      with `config.mesh = (-1, 1)`).
    train_mesh: the shard_map driver's mesh: `mesh`, or the 2-D ("batch", "model") mesh of
      `config.mesh` when its model axis splits the classes (`dmlax.train.class_parallel`).
    best_metric, best_mode: what ranks the best checkpoint.
  """
  config: ml_collections.ConfigDict
  workdir: str
  data: RunData
  model: Any
  make_model: Callable[[str | None], Any]
  objective: objectives_lib.Objective
  state: TrainState
  driver: Any
  evaluator: evaluate_lib.Evaluator
  schedules: dict
  image_shape: tuple[int, int, int]
  steps_per_epoch: int
  total_steps: int
  local_batch: int
  mesh: Mesh
  best_metric: str
  best_mode: str
  train_mesh: Mesh | None = None

  def checkpoints(self) -> checkpoints_lib.Checkpoints:
    """The run's checkpoint managers (close them when done)."""
    c = self.config.checkpoint
    return checkpoints_lib.Checkpoints(self.workdir, keep=int(c.keep),
                                       best_metric=self.best_metric, best_mode=self.best_mode,
                                       async_save=bool(c.async_save))


def _model_factory(config):
  from dmlax import models  # pylint: disable=g-import-not-at-top
  dtype = jnp.bfloat16 if config.half_precision else jnp.float32
  kwargs = config.model.kwargs.to_dict()
  frozen_backbone_bn = bool(config.model.frozen_bn) and config.model.frozen_bn_scope == "backbone"

  def make(bn_axis_name):
    try:
      return models.get_model(config.model.name, dtype=dtype, bn_axis_name=bn_axis_name,
                              frozen_backbone_bn=frozen_backbone_bn, **kwargs)
    except ValueError as e:
      raise ValueError(f"config.model.name={config.model.name!r} / config.model.kwargs: "
                       f"{e}") from e

  return make


def steps_per_epoch(config, info) -> int:
  if config.steps_per_epoch:
    return int(config.steps_per_epoch)
  sizes = info.num_examples or {}
  if info.train_split not in sizes:
    raise ValueError("config.steps_per_epoch must be set: the size of the training split of "
                     f"{config.dataset.name!r} is unknown")
  return max(1, sizes[info.train_split] // config.batch_size)


def total_steps(config, spe: int) -> int:
  total = int(config.num_train_steps or round(config.num_epochs * spe))
  if total <= 0:
    raise ValueError(f"config.num_train_steps / num_epochs give {total} steps; need > 0")
  return total


def _merge_pretrained(variables, pretrained):
  """Backbone variables from a converted checkpoint; the head keeps its initialisation."""
  out = jax.tree.map(lambda x: x, dict(variables))
  for col in ("params", "batch_stats"):
    if col in pretrained and "backbone" in pretrained[col]:
      out[col] = dict(out[col])
      out[col]["backbone"] = pretrained[col]["backbone"]
  return out


def setup(config: ml_collections.ConfigDict, workdir: str, *,
          data: RunData | None = None) -> Run:
  """Checks `config` and builds the run it describes in `workdir` (nothing is trained).

  Every mistake the config can hold is an error here, before the first step: names, batch size
  against the devices, loss hyperparameters, data not prepared, `eval.ks` against the
  evaluation set, `checkpoint.best_metric`.

  Args:
    config: the run's config.
    workdir: the run's directory (made absolute; created by the caller when it writes).
    data: the dataset handle, if the caller resolved it already.

  Example:
    >>> import tempfile
    >>> from configs import quickstart
    >>> config = quickstart.get_config("mpa,smoke")   # small_cnn + MPA on the 8x8 digits
    >>> run = setup(config, tempfile.mkdtemp())
    >>> run.total_steps, run.image_shape, run.best_metric, run.best_mode
    (6, (8, 8, 1), 'recall@1', 'max')
    >>> sorted(run.schedules), sorted(run.state.params)
    (['backbone', 'head'], ['loss', 'model'])
    >>> config.batch_size = 0
    >>> setup(config, tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    ValueError: config.batch_size=0 must be a positive multiple of the ...
  """
  checks.check_config(config)
  data = data or RunData.resolve(config)
  info = data.info
  image_shape = checks.expected_image_shape(config, info)
  spe = steps_per_epoch(config, info)
  total = total_steps(config, spe)
  make_model = _model_factory(config)
  model = make_model(None)
  objective = objectives_lib.build_objective(config, num_classes=info.num_classes,
                                             steps_per_epoch=spe)
  mesh = Mesh(np.asarray(jax.devices()), (step_lib.AXIS,))
  train_mesh, class_axes = mesh, {}
  if config.parallel == "shard_map":
    data_size, model_size = class_parallel.mesh_shape(config)
    objectives_lib.check_class_sharding(config, model=model_size, num_classes=info.num_classes)
    if model_size > 1:
      train_mesh = class_parallel.make_mesh(data_size, model_size)
      class_axes = objective.class_axes
  best_metric, best_mode = evaluate_lib.headline_metric(
      info.protocol, verification=config.eval.verification_dataset)
  if config.checkpoint.best_metric:
    best_metric, best_mode = config.checkpoint.best_metric, config.checkpoint.best_mode
  evaluator = evaluate_lib.Evaluator(data, model, objective, ks=config.eval.ks,
                                     batch_size=config.eval.batch_size, mesh=mesh,
                                     verification=config.eval.verification_dataset,
                                     class_mesh=train_mesh if class_axes else None)
  checks.check_evaluation(config, evaluator, best_metric)
  rng = jax.random.PRNGKey(config.seed)
  init_rng, loss_rng, step_rng = jax.random.split(rng, 3)
  dummy = jnp.zeros((2,) + image_shape, jnp.float32)
  variables = jax.jit(functools.partial(model.init, train=False))(init_rng, dummy)
  if config.model.pretrained:
    from dmlax import models  # pylint: disable=g-import-not-at-top
    pretrained = models.load_pretrained(config.model.name, config.model.pretrained)
    variables = _merge_pretrained(variables, pretrained)
  features = model.apply(variables, dummy, train=False)
  batch_stats = variables.get("batch_stats", {})
  if class_axes:
    # The loss's class arrays and their optimiser state are created in their shards.
    loss_params = jax.eval_shape(objective.init, loss_rng, features)
  else:
    loss_params = objective.init(loss_rng, features)
  params = {"model": variables["params"], "loss": loss_params}
  tx, schedules = optimizers_lib.build_optimizer(config, params=params, batch_stats=batch_stats,
                                                 steps_per_epoch=spe, total_steps=total)

  def make_state(model_params, stats, key, feats):
    return TrainState.create(
        apply_fn=model.apply, params={"model": model_params, "loss": objective.init(key, feats)},
        tx=tx, batch_stats=stats, memory=objective.init_memory(feats))

  if class_axes:
    state = class_parallel.sharded_state(
        make_state, (variables["params"], batch_stats, loss_rng, features), mesh=train_mesh,
        class_axes=class_axes)
    state = state.replace(apply_fn=model.apply)
  else:
    state = TrainState.create(apply_fn=model.apply, params=params, tx=tx,
                              batch_stats=batch_stats, memory=objective.init_memory(features))
  driver = step_lib.make_driver(config.parallel, make_model, objective, rng=step_rng,
                                # A backbone-only freeze trains the head's BatchNorm: the
                                # model (frozen_backbone_bn) keeps the backbone's.
                                frozen_bn=(config.model.frozen_bn and
                                           config.model.frozen_bn_scope == "all"),
                                mesh=train_mesh)
  return Run(config=config, workdir=os.path.abspath(workdir), data=data, model=model,
             make_model=make_model, objective=objective, state=state, driver=driver,
             evaluator=evaluator, schedules=schedules, image_shape=image_shape,
             steps_per_epoch=spe, total_steps=total,
             local_batch=config.batch_size // jax.process_count(), mesh=mesh,
             best_metric=best_metric, best_mode=best_mode, train_mesh=train_mesh)
