"""`train_and_evaluate(config, workdir)`: the whole run, restartable from its workdir.

What happens, in order (flax examples/imagenet's shape):
  1. `dmlax.train.run.setup` checks the config and builds everything: every config mistake
     is an error here naming the field, before anything is written;
  2. the config is compared with the one saved in `workdir/config.json` (`run_config`), and
     the newest readable checkpoint in `workdir/checkpoints` is restored (state, data iterator
     position, best-so-far), else the state is initialised. A finished run reports its results
     and returns; a longer `num_epochs` continues it;
  3. training steps, each batch checked (label range, image shape) before it reaches a device;
     a non-finite loss or gradient stops the run with `NonFiniteError` naming the step (the
     step leaves the state unchanged and no later checkpoint is written); SIGTERM saves a
     checkpoint and returns; progress and metrics go through `reporting.Reporter`; periodic
     evaluation and checkpoints;
  4. final evaluation, `results.json` and `results.md` in the workdir.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from absl import logging
import jax
import ml_collections
import numpy as np

from dmlax.train import checks
from dmlax.train import reporting
from dmlax.train import run_config
from dmlax.train import run as run_lib

# Entry points and tests reach these through the loop.
check_batch = checks.check_batch
check_config = checks.check_config
quiet_library_logs = reporting.quiet_library_logs
write_results = reporting.write_results


class NonFiniteError(FloatingPointError):
  """A training step produced a non-finite loss or gradient."""


class _Sigterm:
  """Records SIGTERM so that the loop can save and return at the next step boundary.

  With several processes, each receives its own signal, possibly at different steps, while a
  checkpoint save is collective (orbax: every process writes its shards and they meet at
  barriers): a process saving alone would wait forever for the others. So every process calls
  `agreed()` once per step and the flags are all-gathered: any process's SIGTERM stops all of
  them after the same step. It costs one small host collective per step (the host then waits for
  the step it just dispatched), only when `jax.process_count() > 1`.
  """

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

  def agreed(self) -> bool:
    """Whether any process has received SIGTERM (every process calls this at every step)."""
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      flags = multihost_utils.process_allgather(np.int32(self.received))
      self.received = bool(np.any(flags))
    return self.received

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


class TrainMetrics:
  """Per-step metrics read back one step behind the device (so the host never waits on the step
  it just dispatched), checked for non-finite values and averaged between log lines."""

  def __init__(self, checkpoint_dir: str, last_good: int | None):
    self.checkpoint_dir, self.last_good = checkpoint_dir, last_good
    self._pending: list[tuple[int, Any]] = []
    self._sums: dict[str, float] = {}
    self._count = 0

  def add(self, step: int, metrics) -> None:
    self._pending.append((step, metrics))
    self.drain(keep=1)

  def drain(self, keep: int = 0) -> None:
    """Reads back all but the newest `keep` pending steps; raises `NonFiniteError`."""
    while len(self._pending) > keep:
      step, m = self._pending.pop(0)
      m = jax.device_get(m)
      if not bool(m["finite"]):
        raise NonFiniteError(
            f"non-finite loss or gradient in training step {step} (loss={float(m['loss'])}, "
            f"grad_norm={float(m['grad_norm'])}); the state was not updated and the run stopped. "
            f"Last good checkpoint: step {self.last_good} in {self.checkpoint_dir}")
      for k, v in m.items():
        if k != "finite":
          self._sums[k] = self._sums.get(k, 0.0) + float(v)
      self._count += 1

  def means(self) -> dict[str, float]:
    """Averages since the last call, as "train/<name>" scalars."""
    self.drain()
    out = {f"train/{k}": v / max(self._count, 1) for k, v in self._sums.items()}
    self._sums, self._count = {}, 0
    return out


class BestTracker:
  """The best evaluation so far by `metric` ("max" or "min" `mode`)."""

  def __init__(self, metric: str, mode: str, best: dict | None = None):
    self.metric, self.mode, self.best = metric, mode, best

  def offer(self, step: int, metrics: dict[str, float]) -> bool:
    """Records `metrics` of `step` if they beat the best so far; whether they did."""
    value = metrics[self.metric]
    old = None if self.best is None else self.best.get(self.metric)
    better = old is None or (value > old if self.mode == "max" else value < old)
    if better:
      self.best = {"step": int(step), **metrics}
    return better


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       allow_config_change: bool = False) -> dict[str, Any]:
  """Trains and evaluates `config`, resuming from `workdir` if it holds a checkpoint.

  Args:
    config: the run's config (`configs/common.py` lists every field).
    workdir: the run's directory; a relative path is taken from the current directory.
    allow_config_change: resume even when fields outside `run_config.ALLOWED_CHANGES` differ
      from the saved config; `results.json` records each change and its step.

  Returns:
    The results (also written to `workdir/results.json`): "final" and "best" evaluation
    metrics, "steps", "wall_time_s", "workdir", "checkpoints", "config_changes"; or, when
    SIGTERM arrived, {"status": "preempted", "step": ...} after saving a checkpoint. A finished
    workdir returns its results without training.

  Example:
    Two steps of the smoke config (`quickstart.get_config("mpa")` is the real 600-step run):

    >>> import tempfile
    >>> from configs import quickstart
    >>> config = quickstart.get_config("mpa,smoke")
    >>> config.num_train_steps = 2
    >>> results = train_and_evaluate(config, tempfile.mkdtemp())
    >>> results["status"], results["steps"]
    ('done', 2)
    >>> 0.0 <= results["final"]["recall@1"] <= 1.0
    True
  """
  start_time = time.time()
  run = run_lib.setup(config, os.path.abspath(workdir))
  os.makedirs(run.workdir, exist_ok=True)
  ckpt = run.checkpoints()
  reporter = None
  try:
    saved_step = ckpt.latest_step()
    if saved_step is None:
      run_config.save(run.workdir, config)
      changes = []
    else:
      changes = run_config.reconcile(run.workdir, config, step=saved_step,
                                     allow_change=allow_config_change)
    meta = {"best": None, "history": [], "wall_time_s": 0.0, "config_changes": []}
    state, data_state = run.state, None
    restored = ckpt.restore_latest(run.state)
    if restored is not None:
      state, data_state, meta = restored
      meta.setdefault("config_changes", [])
    step = int(state.step)
    for change in changes:
      change["step"] = step
    meta["config_changes"] = list(meta["config_changes"]) + changes
    finished = reporting.read_results(run.workdir)
    if (step >= run.total_steps and finished and finished.get("status") == "done"
        and finished.get("steps") == step and not changes):
      logging.info("%s holds a finished run of %d steps; its results:", run.workdir, step)
      reporting.log_results(finished)
      return finished
    if step > run.total_steps:
      logging.warning("the config asks for %d steps; %s holds %d: evaluating step %d",
                      run.total_steps, run.workdir, step, step)
    reporter = reporting.Reporter(run)
    reporter.summary(resumed_from=step if restored is not None else None)
    if restored is None:
      reporter.hparams()
    iterator = run.data.train_iterator(local_batch=run.local_batch)
    if data_state is not None:
      iterator.set_state(data_state)
      logging.info("Restored step %d from %s", step, ckpt.directory)
    return _train(run, ckpt, reporter, iterator, state, meta, start_time)
  finally:
    if reporter is not None:
      reporter.close()
    ckpt.close()


def _train(run, ckpt, reporter, iterator, state, meta, start_time) -> dict[str, Any]:
  config, driver, total = run.config, run.driver, run.total_steps
  step = int(state.step)
  best = BestTracker(run.best_metric, run.best_mode, meta["best"])
  wall_before = meta.get("wall_time_s", 0.0)

  def evaluate(host_state):
    metrics = run.evaluator(host_state)
    s = int(host_state.step)
    reporter.evaluation(s, metrics)
    meta["history"].append({"step": s, **metrics})
    best.offer(s, metrics)
    meta["best"] = best.best
    ckpt.save_best(s, host_state, metrics=metrics, meta=meta)
    return metrics

  def save(host_state):
    meta["wall_time_s"] = wall_before + time.time() - start_time
    if ckpt.latest_step() != int(host_state.step):
      ckpt.save(int(host_state.step), host_state, data_state=iterator.get_state(), meta=meta)

  dstate = driver.put_state(state)
  metrics = TrainMetrics(ckpt.directory, ckpt.latest_step())
  rate_t, rate_step = time.time(), step
  with _Sigterm() as sigterm:
    while step < total:
      batch = next(iterator)
      batch = {"image": batch["image"], "label": batch["label"]}
      check_batch(batch, image_shape=run.image_shape, num_classes=run.data.num_classes,
                  batch_size=run.local_batch, dataset=config.dataset.name)
      dstate, step_metrics = driver.step(dstate, driver.put_batch(batch))
      metrics.add(step, step_metrics)
      step += 1
      is_last = step == total
      if step % config.log_every_steps == 0 or is_last:
        scalars = metrics.means()
        now = time.time()
        rate = (step - rate_step) / max(now - rate_t, 1e-9)
        scalars.update({f"train/lr_{g}": float(fn(step - 1)) for g, fn in run.schedules.items()})
        scalars["train/steps_per_sec"] = rate
        reporter.progress(step, scalars, rate)
        rate_t, rate_step = now, step
      do_eval = config.eval.every_steps and step % config.eval.every_steps == 0 and not is_last
      stop = sigterm.agreed()  # the same on every process (see _Sigterm)
      do_save = step % config.checkpoint.every_steps == 0 or is_last or stop
      if do_eval or do_save:
        metrics.drain()
        host_state = driver.get_state(dstate)
        if do_eval:
          evaluate(host_state)
        if do_save and not is_last:
          save(host_state)
          metrics.last_good = step
      if stop and not is_last:
        ckpt.wait()
        reporter.flush()
        logging.info("SIGTERM: saved step %d to %s; exiting", step, ckpt.directory)
        return {"status": "preempted", "step": step, "checkpoints": ckpt.directory}

  metrics.drain()
  host_state = driver.get_state(dstate)
  history = meta["history"]
  final = history[-1] if history and history[-1]["step"] == step else evaluate(host_state)
  save(host_state)
  ckpt.wait()
  reporter.flush()
  results = {
      "status": "done",
      "config": config.to_dict(),
      "protocol": run.data.info.protocol,
      "steps": step,
      "final": final,
      "best": meta["best"],
      "best_metric": run.best_metric,
      "history": history,
      "config_changes": meta["config_changes"],
      "wall_time_s": meta["wall_time_s"],
      "workdir": run.workdir,
      "checkpoints": ckpt.directory,
      "best_checkpoint": ckpt.best_directory,
  }
  results = reporting.jsonable(results)
  if jax.process_index() == 0:
    write_results(run.workdir, results)
  reporting.log_results(results)
  return results


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str, *,
                        which: str = "latest") -> dict[str, Any]:
  """Restores the `which` ("latest" or "best") checkpoint of `workdir` and evaluates it.

  Example:
    >>> import tempfile
    >>> from configs import quickstart
    >>> config = quickstart.get_config("mpa,smoke")
    >>> config.num_train_steps = 2
    >>> workdir = tempfile.mkdtemp()
    >>> _ = train_and_evaluate(config, workdir)
    >>> metrics = evaluate_checkpoint(config, workdir, which="best")
    >>> metrics["step"], 0.0 <= metrics["recall@1"] <= 1.0
    (2, True)
  """
  if which not in ("latest", "best"):
    raise ValueError(f"which must be 'latest' or 'best', got {which!r}")
  run = run_lib.setup(config, workdir)
  state = restore(run, which=which)
  return {"step": int(state.step), **run.evaluator(state)}


def restore(run: run_lib.Run, *, which: str = "latest"):
  """The train state of `run.workdir`'s `which` checkpoint ("latest" or "best").

  Raises:
    FileNotFoundError: the workdir holds no such checkpoint.
  """
  ckpt = run.checkpoints()
  try:
    restored = (ckpt.restore_latest(run.state) if which == "latest"
                else ckpt.restore_best(run.state))
  finally:
    ckpt.close()
  if restored is None:
    raise FileNotFoundError(f"no {which} checkpoint in {run.workdir}")
  return restored[0]
