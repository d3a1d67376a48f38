"""`train_and_evaluate(config, workdir)`: the whole run, restartable from its workdir.

What happens, in order (flax examples/imagenet's shape):
  1. the config is checked (names of dataset, model, loss, optimiser, schedule, driver; batch
     size against the devices) and everything is built: an error here names the config field;
  2. the latest checkpoint in `workdir/checkpoints` is restored (state, data iterator position,
     best-so-far), else the state is initialised;
  3. training steps, each batch checked (label range, image shape) before it reaches a device;
     a non-finite loss or gradient stops the run with `NonFiniteError` naming the step (the
     step leaves the state unchanged and no later checkpoint is written); SIGTERM saves a
     checkpoint and returns; progress (steps/s, ETA) and training metrics go to clu metric
     writers (stdout and TensorBoard files in the workdir); periodic evaluation and checkpoints;
  4. final evaluation, `results.json` and `results.md` in the workdir.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import time
from typing import Any

from absl import logging
from clu import metric_writers
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dmlax.train import checkpoints as checkpoints_lib
from dmlax.train import evaluate as evaluate_lib
from dmlax.train import objectives as objectives_lib
from dmlax.train import optimizers as optimizers_lib
from dmlax.train import step as step_lib
from dmlax.train.state import TrainState


class NonFiniteError(FloatingPointError):
  """A training step produced a non-finite loss or gradient."""


# ----------------------------------------------------------------------------------------------
# Checks that run before the first step.


def check_config(config: ml_collections.ConfigDict) -> None:
  """Names that need no data or model: each error names its config field and the known values."""
  if config.parallel not in step_lib.DRIVERS:
    raise ValueError(f"config.parallel must be one of {step_lib.DRIVERS}, got {config.parallel!r}")
  if config.optimizer.name not in optimizers_lib.OPTIMIZERS:
    raise ValueError(f"config.optimizer.name must be one of {optimizers_lib.OPTIMIZERS}, got "
                     f"{config.optimizer.name!r}")
  if config.schedule.name not in optimizers_lib.SCHEDULES:
    raise ValueError(f"config.schedule.name must be one of {optimizers_lib.SCHEDULES}, got "
                     f"{config.schedule.name!r}")
  for field, name in (("config.loss.name", config.loss.name),
                      ("config.loss.aux_name", config.loss.aux_name)):
    if name and name not in objectives_lib.LOSSES:
      raise ValueError(f"{field} must be one of {objectives_lib.known_losses()}, got {name!r}")
  from dmlax import models
  if config.model.name not in models.MODEL_NAMES:
    raise ValueError(f"config.model.name must be one of {models.MODEL_NAMES}, got "
                     f"{config.model.name!r}")
  devices = 1 if config.parallel == "single" else jax.device_count()
  if config.parallel == "single" and jax.process_count() > 1:
    raise ValueError('config.parallel="single" runs on one device of one process; use "pmap" '
                     'or "shard_map" for a multi-process run')
  if config.batch_size <= 0 or config.batch_size % devices:
    raise ValueError(f"config.batch_size={config.batch_size} must be a positive multiple of the "
                     f"number of devices ({devices}, config.parallel={config.parallel!r}), so "
                     "that every device gets an equal share of the global batch")
  if config.batch_size % jax.process_count():
    raise ValueError(f"config.batch_size={config.batch_size} must divide over the "
                     f"{jax.process_count()} processes")


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


# ----------------------------------------------------------------------------------------------
# Building the pieces.


def _model_factory(config):
  from dmlax import models
  dtype = jnp.bfloat16 if config.half_precision else jnp.float32
  kwargs = config.model.kwargs.to_dict()

  def make(bn_axis_name):
    try:
      return models.get_model(config.model.name, dtype=dtype, bn_axis_name=bn_axis_name,
                              **kwargs)
    except ValueError as e:
      raise ValueError(f"config.model.name={config.model.name!r} / config.model.kwargs: "
                       f"{e}") from e

  return make


def _dataset_info(config):
  from dmlax import data
  try:
    info = data.info(config.dataset.name, data_dir=config.dataset.data_dir,
                     task=config.dataset.task)
    if info.num_examples is None and config.dataset.prepare:
      # Only when missing: preparing imports TensorFlow, seconds even when there is nothing to do.
      data.prepare(config.dataset.name, data_dir=config.dataset.data_dir, task=info.task)
      info = data.info(config.dataset.name, data_dir=config.dataset.data_dir, task=info.task)
    return info
  except ValueError as e:
    raise ValueError(f"config.dataset.name={config.dataset.name!r} / config.dataset.task="
                     f"{config.dataset.task!r}: {e}") from e


def _train_iterator(config, info):
  from dmlax import data
  return data.train_iterator(
      config.dataset.name, batch_size=config.batch_size // jax.process_count(),
      seed=config.seed, data_dir=config.dataset.data_dir, image_size=config.dataset.image_size,
      augment=config.dataset.augment, sampler=config.dataset.sampler,
      m_per_class=config.dataset.m_per_class, process_index=jax.process_index(),
      process_count=jax.process_count(), task=info.task)


def steps_per_epoch(config, info) -> int:
  if config.steps_per_epoch:
    return int(config.steps_per_epoch)
  sizes = info.num_examples or {}
  if info.train_split not in sizes:
    raise ValueError("config.steps_per_epoch must be set: the size of the training split of "
                     f"{config.dataset.name!r} is unknown (not prepared?)")
  return max(1, sizes[info.train_split] // config.batch_size)


def build(config: ml_collections.ConfigDict, info) -> dict[str, Any]:
  """Model factory, objective, optimiser, initial state and driver for `config`."""
  image_shape = expected_image_shape(config, info)
  spe = steps_per_epoch(config, info)
  total = int(config.num_train_steps or round(config.num_epochs * spe))
  if total <= 0:
    raise ValueError(f"config.num_train_steps / num_epochs give {total} steps; need > 0")
  make_model = _model_factory(config)
  model = make_model(None)
  objective = objectives_lib.build_objective(config, num_classes=info.num_classes,
                                             steps_per_epoch=spe)
  rng = jax.random.PRNGKey(config.seed)
  init_rng, loss_rng, step_rng = jax.random.split(rng, 3)
  dummy = jnp.zeros((2,) + image_shape, jnp.float32)
  variables = jax.jit(functools.partial(model.init, train=False))(init_rng, dummy)
  if config.model.pretrained:
    from dmlax import models
    pretrained = models.load_pretrained(config.model.name, config.model.pretrained)
    variables = _merge_pretrained(variables, pretrained)
  features = model.apply(variables, dummy, train=False)
  params = {"model": variables["params"], "loss": objective.init(loss_rng, features)}
  batch_stats = variables.get("batch_stats", {})
  tx, schedules = optimizers_lib.build_optimizer(config, params=params, batch_stats=batch_stats,
                                                 steps_per_epoch=spe, total_steps=total)
  state = TrainState.create(apply_fn=model.apply, params=params, tx=tx, batch_stats=batch_stats)
  driver = step_lib.make_driver(config.parallel, make_model, objective, rng=step_rng,
                                frozen_bn=config.model.frozen_bn)
  return dict(model=model, objective=objective, state=state, driver=driver, schedules=schedules,
              image_shape=image_shape, steps_per_epoch=spe, total_steps=total)


def _merge_pretrained(variables, pretrained):
  """Backbone variables from a converted checkpoint; the head keeps its initialisation."""
  out = jax.tree.map(lambda x: x, dict(variables))
  for col in ("params", "batch_stats"):
    if col in pretrained and "backbone" in pretrained[col]:
      out[col] = dict(out[col])
      out[col]["backbone"] = pretrained[col]["backbone"]
  return out


# ----------------------------------------------------------------------------------------------
# The loop.


class _Sigterm:
  """Records SIGTERM so that the loop can save and return at the next step boundary."""

  def __init__(self):
    self.received = False
    self._previous = None

  def __enter__(self):
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # not the main thread: leave signals to the caller
      self._previous = None
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self.received = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def quiet_library_logs() -> None:
  """Keeps orbax's per-save INFO chatter out of the run's log (its warnings still show)."""
  import logging as py_logging  # pylint: disable=g-import-not-at-top

  class _DropOrbaxInfo(py_logging.Filter):

    def filter(self, record):
      return record.levelno >= py_logging.WARNING or "/orbax/" not in record.pathname

  for handler in (logging.get_absl_handler(),):
    handler.addFilter(_DropOrbaxInfo())


def _fmt_time(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains and evaluates `config`, resuming from `workdir` if it holds a checkpoint.

  Returns:
    The results (also written to `workdir/results.json`): "final" and "best" evaluation
    metrics, "steps", "wall_time_s", "workdir", "checkpoints"; or, when SIGTERM arrived,
    {"status": "preempted", "step": ...} after saving a checkpoint.

  Example:
    >>> from configs import quickstart
    >>> results = train_and_evaluate(quickstart.get_config("mpa"), "/tmp/digits_mpa")
    >>> results["final"]["recall@1"]
  """
  start_time = time.time()
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  check_config(config)
  info = _dataset_info(config)
  if info.protocol not in ("retrieval", "classification"):
    raise ValueError(f"config.dataset.name={config.dataset.name!r} (task {info.task!r}) has "
                     f"protocol {info.protocol!r}; the trainer trains retrieval or "
                     "classification tasks")
  built = build(config, info)
  state, driver, total = built["state"], built["driver"], built["total_steps"]
  best_metric, best_mode = evaluate_lib.headline_metric(info.protocol)
  if config.checkpoint.best_metric:
    best_metric, best_mode = config.checkpoint.best_metric, config.checkpoint.best_mode
  ckpt = checkpoints_lib.Checkpoints(workdir, keep=config.checkpoint.keep,
                                     best_metric=best_metric, best_mode=best_mode,
                                     async_save=config.checkpoint.async_save)
  iterator = _train_iterator(config, info)
  meta = {"best": None, "history": [], "wall_time_s": 0.0}
  restored = ckpt.restore_latest(state)
  if restored is not None:
    state, data_state, meta = restored
    iterator.set_state(data_state)
    logging.info("Restored step %d from %s", int(state.step), ckpt.directory)
  step = int(state.step)
  local_batch = config.batch_size // jax.process_count()
  embedder = evaluate_lib.Embedder(built["model"])
  writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
  if step == 0:
    writer.write_hparams(_flat_hparams(config))

  def run_eval(host_state):
    metrics = evaluate_lib.evaluate(config, info, built["model"], host_state,
                                    built["objective"], embedder=embedder)
    writer.write_scalars(int(host_state.step), {f"eval/{k}": v for k, v in metrics.items()})
    meta["history"].append({"step": int(host_state.step), **metrics})
    better = (meta["best"] is None or best_metric not in meta["best"] or
              (metrics[best_metric] > meta["best"][best_metric] if best_mode == "max"
               else metrics[best_metric] < meta["best"][best_metric]))
    if best_metric not in metrics:
      raise ValueError(f"config.checkpoint.best_metric={best_metric!r} is not an evaluation "
                       f"metric of this protocol; they are {sorted(metrics)}")
    if better:
      meta["best"] = {"step": int(host_state.step), **metrics}
    ckpt.save_best(int(host_state.step), host_state, metrics=metrics, meta=meta)
    return metrics

  def save(host_state):
    meta["wall_time_s"] = wall_before + time.time() - start_time
    ckpt.save(int(host_state.step), host_state, data_state=iterator.get_state(), meta=meta)

  wall_before = meta.get("wall_time_s", 0.0)
  dstate = driver.put_state(state)
  unchecked: list[tuple[int, dict]] = []
  sums: dict[str, float] = {}
  count = 0
  rate_t, rate_step = time.time(), step
  last_good = ckpt.latest_step()

  def check(upto_all: bool):
    nonlocal count
    keep = 0 if upto_all else 1
    while len(unchecked) > keep:
      s, m = unchecked.pop(0)
      m = jax.device_get(m)
      if not bool(m["finite"]):
        raise NonFiniteError(
            f"non-finite loss or gradient in training step {s} (loss={float(m['loss'])}, "
            f"grad_norm={float(m['grad_norm'])}); the state was not updated and the run stopped. "
            f"Last good checkpoint: step {last_good} in {ckpt.directory}")
      for k, v in m.items():
        if k != "finite":
          sums[k] = sums.get(k, 0.0) + float(v)
      count += 1

  with _Sigterm() as sigterm:
    while step < total:
      batch = next(iterator)
      batch = {"image": batch["image"], "label": batch["label"]}
      check_batch(batch, image_shape=built["image_shape"], num_classes=info.num_classes,
                  batch_size=local_batch, dataset=config.dataset.name)
      dstate, metrics = driver.step(dstate, driver.put_batch(batch))
      unchecked.append((step, metrics))
      step += 1
      check(upto_all=False)
      is_last = step == total
      if step % config.log_every_steps == 0 or is_last:
        check(upto_all=True)
        now = time.time()
        rate = (step - rate_step) / max(now - rate_t, 1e-9)
        scalars = {f"train/{k}": v / max(count, 1) for k, v in sums.items()}
        scalars.update({f"train/lr_{g}": float(fn(step - 1))
                        for g, fn in built["schedules"].items()})
        scalars["train/steps_per_sec"] = rate
        writer.write_scalars(step, scalars)
        logging.info("step %d/%d  loss %.4f  %.2f steps/s  ETA %s", step, total,
                     scalars.get("train/loss", float("nan")), rate,
                     _fmt_time((total - step) / max(rate, 1e-9)))
        sums.clear()
        count = 0
        rate_t, rate_step = now, step
      do_eval = config.eval.every_steps and step % config.eval.every_steps == 0 and not is_last
      do_save = step % config.checkpoint.every_steps == 0 or is_last or sigterm.received
      if do_eval or do_save:
        check(upto_all=True)
        host_state = driver.get_state(dstate)
        if do_eval:
          run_eval(host_state)
        if do_save and not is_last:
          save(host_state)
          last_good = step
      if sigterm.received and not is_last:
        ckpt.wait()
        writer.flush()
        logging.info("SIGTERM: saved step %d to %s; exiting", step, ckpt.directory)
        return {"status": "preempted", "step": step, "checkpoints": ckpt.directory}

  check(upto_all=True)
  host_state = driver.get_state(dstate)
  final = run_eval(host_state) if not (meta["history"] and meta["history"][-1]["step"] == step
                                       ) else meta["history"][-1]
  save(host_state)
  ckpt.wait()
  writer.flush()
  results = {
      "status": "done",
      "config": config.to_dict(),
      "protocol": info.protocol,
      "steps": step,
      "final": final,
      "best": meta["best"],
      "best_metric": best_metric,
      "history": meta["history"],
      "wall_time_s": meta["wall_time_s"],
      "workdir": workdir,
      "checkpoints": ckpt.directory,
      "best_checkpoint": ckpt.best_directory,
  }
  if jax.process_index() == 0:
    write_results(workdir, results)
  ckpt.close()
  return results


def _flat_hparams(config) -> dict:
  flat = {}

  def walk(prefix, d):
    for k, v in d.items():
      if isinstance(v, dict):
        walk(f"{prefix}{k}.", v)
      else:
        flat[prefix + k] = v if isinstance(v, (int, float, str, bool)) else str(v)

  walk("", config.to_dict())
  return flat


def write_results(workdir: str, results: dict) -> None:
  """`results.json` (everything) and `results.md` (a short human summary) in `workdir`."""
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(_jsonable(results), f, indent=2, sort_keys=True)
  final, best = results["final"], results["best"] or {}
  cfg = results["config"]
  names = [k for k in final if k != "step"]
  lines = [
      f"# {cfg['dataset']['name']} / {cfg['model']['name']} / {cfg['loss']['name']}",
      "",
      f"{results['steps']} steps, {results['wall_time_s']:.1f} s wall time; protocol "
      f"{results['protocol']}; best by `{results['best_metric']}` at step {best.get('step')}.",
      "",
      "| metric | final | best |",
      "|---|---|---|",
  ]
  for k in names:
    lines.append(f"| {k} | {final[k]:.4f} | {best.get(k, float('nan')):.4f} |")
  lines += ["", f"Checkpoints: `{results['checkpoints']}` (best: `{results['best_checkpoint']}`)",
            "", "## Config", "", "```json", json.dumps(_jsonable(cfg), indent=2, sort_keys=True),
            "```", ""]
  with open(os.path.join(workdir, "results.md"), "w") as f:
    f.write("\n".join(lines))


def _jsonable(x):
  if isinstance(x, dict):
    return {str(k): _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if isinstance(x, (np.integer,)):
    return int(x)
  if isinstance(x, (np.floating,)):
    return float(x)
  return x


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str, *,
                        which: str = "latest") -> dict[str, Any]:
  """Restores the `which` ("latest" or "best") checkpoint of `workdir` and evaluates it.

  Example:
    >>> evaluate_checkpoint(config, "/tmp/digits_mpa", which="best")["recall@1"]
  """
  if which not in ("latest", "best"):
    raise ValueError(f"which must be 'latest' or 'best', got {which!r}")
  check_config(config)
  info = _dataset_info(config)
  built = build(config, info)
  best_metric, best_mode = evaluate_lib.headline_metric(info.protocol)
  if config.checkpoint.best_metric:
    best_metric, best_mode = config.checkpoint.best_metric, config.checkpoint.best_mode
  ckpt = checkpoints_lib.Checkpoints(workdir, keep=config.checkpoint.keep,
                                     best_metric=best_metric, best_mode=best_mode)
  restored = (ckpt.restore_latest(built["state"]) if which == "latest"
              else ckpt.restore_best(built["state"]))
  if restored is None:
    raise FileNotFoundError(f"no {which} checkpoint in {os.path.abspath(workdir)}")
  state = restored[0]
  metrics = evaluate_lib.evaluate(config, info, built["model"], state, built["objective"])
  ckpt.close()
  return {"step": int(state.step), **metrics}
