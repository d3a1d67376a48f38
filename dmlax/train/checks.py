"""Checks that run before the first step: every config mistake is one `ValueError` naming the
field, what is wrong and the valid choices; every training batch is checked on the host before it
reaches a device."""

from __future__ import annotations

import jax
import ml_collections
import numpy as np

from dmlax.train import class_parallel
from dmlax.train import objectives
from dmlax.train import optimizers
from dmlax.train import step as step_lib


def check_names(config: ml_collections.ConfigDict) -> None:
  """Names that need no data or model: each error names its config field and the known values."""
  if config.parallel not in step_lib.DRIVERS:
    raise ValueError(f"config.parallel must be one of {step_lib.DRIVERS}, got {config.parallel!r}")
  if config.optimizer.name not in optimizers.OPTIMIZERS:
    raise ValueError(f"config.optimizer.name must be one of {optimizers.OPTIMIZERS}, got "
                     f"{config.optimizer.name!r}")
  if config.schedule.name not in optimizers.SCHEDULES:
    raise ValueError(f"config.schedule.name must be one of {optimizers.SCHEDULES}, got "
                     f"{config.schedule.name!r}")
  objectives.lookup(config.loss.name, "config.loss.name")
  if config.loss.aux_name:
    objectives.lookup(config.loss.aux_name, "config.loss.aux_name")
  from dmlax import models  # pylint: disable=g-import-not-at-top
  if config.model.name not in models.MODEL_NAMES:
    raise ValueError(f"config.model.name must be one of {models.MODEL_NAMES}, got "
                     f"{config.model.name!r}")
  if config.checkpoint.best_mode not in ("max", "min"):
    raise ValueError("config.checkpoint.best_mode must be 'max' or 'min', got "
                     f"{config.checkpoint.best_mode!r}")
  if int(config.checkpoint.keep) < 1:
    raise ValueError(f"config.checkpoint.keep must be >= 1, got {config.checkpoint.keep}")
  if not config.eval.ks or any(int(k) < 1 for k in config.eval.ks):
    raise ValueError(f"config.eval.ks must be positive cut-offs, got {tuple(config.eval.ks)}")


def num_devices(config: ml_collections.ConfigDict) -> int:
  """Devices the driver `config.parallel` splits the batch over (the data axis of
  `config.mesh`)."""
  if config.parallel == "single":
    return 1
  return class_parallel.mesh_shape(config)[0]


def check_batch_size(config: ml_collections.ConfigDict) -> None:
  devices = num_devices(config)
  if config.parallel == "single" and jax.process_count() > 1:
    raise ValueError('config.parallel="single" runs on one device of one process; use "pmap" '
                     'or "shard_map" for a multi-process run')
  if config.batch_size <= 0 or config.batch_size % devices:
    raise ValueError(f"config.batch_size={config.batch_size} must be a positive multiple of the "
                     f"number of devices ({devices}, config.parallel={config.parallel!r}, the "
                     f"data axis of config.mesh), so that every device gets an equal share of "
                     "the global batch")
  if config.batch_size % jax.process_count():
    raise ValueError(f"config.batch_size={config.batch_size} must divide over the "
                     f"{jax.process_count()} processes")


def check_mesh(config: ml_collections.ConfigDict) -> None:
  """`config.mesh` against the devices and driver; model > 1 needs losses that split classes."""
  if config.parallel == "single":
    return
  _, model = class_parallel.mesh_shape(config)
  # The class count is checked with the data (`objectives.check_class_sharding` in setup).
  if model > 1:
    objectives.check_class_sharding(config, model=model)
    if float(config.optimizer.get("grad_clip_norm", 0.0) or 0.0) > 0:
      # optax's clip_by_global_norm would take each device's norm of its own class block.
      raise ValueError(f"config.optimizer.grad_clip_norm={config.optimizer.grad_clip_norm} "
                       f"clips by the global norm, which the optimiser computes per device; with "
                       f"the classes split over the model axis (config.mesh="
                       f"{tuple(config.mesh)}) each device holds only its block of classes. Set "
                       "it to 0 (config.optimizer.grad_clip_value clips element-wise and works)")


def check_config(config: ml_collections.ConfigDict) -> None:
  """What can be checked from the config alone (names, mesh and batch size against the
  devices)."""
  check_names(config)
  check_mesh(config)
  check_batch_size(config)


def check_evaluation(config: ml_collections.ConfigDict, evaluator, best_metric: str) -> None:
  """`config.eval.ks` against the evaluation set, `config.checkpoint.best_metric` against the
  metrics the evaluation returns."""
  too_large = [int(k) for k in config.eval.ks if int(k) > evaluator.max_k()]
  if too_large:
    raise ValueError(f"config.eval.ks={tuple(config.eval.ks)}: {too_large} exceed the "
                     f"{evaluator.max_k()} neighbours each query of the evaluation set of "
                     f"{config.dataset.name!r} has; use ks <= {evaluator.max_k()}")
  if best_metric not in evaluator.metric_names:
    raise ValueError(f"config.checkpoint.best_metric={best_metric!r} is not a metric of this "
                     f"evaluation ({evaluator.data.info.protocol}, config.eval.ks="
                     f"{tuple(config.eval.ks)}); choose one of {list(evaluator.metric_names)}")


def expected_image_shape(config, info) -> tuple[int, int, int]:
  """(H, W, C) of the training images the pipeline yields for this config."""
  h, w, c = info.image_shape
  if config.dataset.image_size:
    return (config.dataset.image_size, config.dataset.image_size, c)
  if h is None or w is None:
    raise ValueError(f"config.dataset.image_size must be set: dataset "
                     f"{config.dataset.name!r} stores images of varying size")
  return (h, w, c)


def check_batch(batch: dict, *, image_shape, num_classes: int, batch_size: int,
                dataset: str) -> None:
  """A training batch from the pipeline: shapes, dtypes and label range, on the host.

  Raises:
    ValueError naming the problem and the config field behind it.
  """
  for key in ("image", "label"):
    if key not in batch:
      raise ValueError(f"the training batch of config.dataset.name={dataset!r} has no {key!r}")
  images, labels = np.asarray(batch["image"]), np.asarray(batch["label"])
  expected = (batch_size,) + tuple(image_shape)
  if images.shape != expected:
    raise ValueError(f"training images have shape {images.shape}, expected {expected} "
                     f"(config.batch_size per process, config.dataset.image_size, dataset "
                     f"{dataset!r}); the model was built for {tuple(image_shape)}")
  if labels.shape != (batch_size,) or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"training labels must be integers of shape ({batch_size},), got "
                     f"{labels.dtype} {labels.shape} (config.dataset.name={dataset!r})")
  bad = labels[(labels < 0) | (labels >= num_classes)]
  if bad.size:
    raise ValueError(f"training labels must lie in [0, {num_classes}) (the classes of "
                     f"config.dataset.name={dataset!r}, which size the loss parameters); found "
                     f"{np.unique(bad)[:10].tolist()}")
