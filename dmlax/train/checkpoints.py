"""Checkpoints with orbax `CheckpointManager`: the last N states and the best one, restorable.

Layout in the workdir:
  checkpoints/<step>/{state, data, meta}   the last `keep` saves (periodic, on SIGTERM, final)
  best/<step>/{state, meta}                the state with the best `best_metric` so far

`state` is the train state's arrays (`TrainState.to_checkpoint`), `data` the training
iterator's `get_state()` (JSON), `meta` the loop's own bookkeeping (JSON: best metrics so far,
evaluation history, accumulated wall time), so that a restarted run continues exactly where the
saved one was: same parameters, same next batch, same best-so-far.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from dmlax.train.state import TrainState


def _host(tree):
  return jax.tree.map(np.asarray, jax.device_get(tree))


class Checkpoints:
  """The run's latest-N and best checkpoint managers.

  Args:
    workdir: the run's directory.
    keep: how many of the latest checkpoints to keep.
    best_metric: evaluation metric that ranks the best checkpoint (None: no best checkpoint).
    best_mode: "max" or "min" for `best_metric`.
    async_save: write in a background thread (orbax's async checkpointing).

  Example:
    >>> ckpt = Checkpoints(workdir, keep=2, best_metric="recall@1")
    >>> ckpt.save(step, state, data_state=iterator.get_state(), meta={})
    >>> restored = ckpt.restore_latest(state)   # None when the workdir has none
  """

  def __init__(self, workdir: str, *, keep: int = 3, best_metric: str | None = None,
               best_mode: str = "max", async_save: bool = False):
    if best_mode not in ("max", "min"):
      raise ValueError(f"config.checkpoint.best_mode must be 'max' or 'min', got {best_mode!r}")
    if keep < 1:
      raise ValueError(f"config.checkpoint.keep must be >= 1, got {keep}")
    workdir = os.path.abspath(workdir)
    self.directory = os.path.join(workdir, "checkpoints")
    self.best_directory = os.path.join(workdir, "best")
    self.best_metric = best_metric
    self._latest = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                             cleanup_tmp_directories=True,
                                             enable_async_checkpointing=async_save),
        item_names=("state", "data", "meta"))
    self._best = None
    if best_metric:
      self._best = ocp.CheckpointManager(
          self.best_directory,
          options=ocp.CheckpointManagerOptions(
              max_to_keep=1, create=True, best_fn=lambda m: float(m[best_metric]),
              best_mode=best_mode, keep_checkpoints_without_metrics=False,
              cleanup_tmp_directories=True, enable_async_checkpointing=async_save),
          item_names=("state", "meta"))

  def latest_step(self) -> int | None:
    return self._latest.latest_step()

  def save(self, step: int, state: TrainState, *, data_state: Any, meta: dict) -> None:
    """Saves the state, the data iterator's state and the loop's metadata at `step`."""
    self._latest.save(
        int(step),
        args=ocp.args.Composite(state=ocp.args.StandardSave(_host(state.to_checkpoint())),
                                data=ocp.args.JsonSave(data_state),
                                meta=ocp.args.JsonSave(meta)),
        force=True)

  def save_best(self, step: int, state: TrainState, *, metrics: dict, meta: dict) -> None:
    """Offers the state evaluated at `step` to the best-checkpoint manager."""
    if self._best is None or int(step) in self._best.all_steps():
      return  # a restarted run re-evaluates the step it resumed from
    if self.best_metric not in metrics:
      raise ValueError(f"config.checkpoint.best_metric={self.best_metric!r} is not among the "
                       f"evaluation metrics {sorted(metrics)}")
    self._best.save(
        int(step),
        args=ocp.args.Composite(state=ocp.args.StandardSave(_host(state.to_checkpoint())),
                                meta=ocp.args.JsonSave(meta)),
        metrics={k: float(v) for k, v in metrics.items()}, force=True)

  def restore_latest(self, template: TrainState) -> tuple[TrainState, Any, dict] | None:
    """(state, data_state, meta) of the latest checkpoint, or None if there is none."""
    step = self._latest.latest_step()
    if step is None:
      return None
    return self._restore(self._latest, step, template, with_data=True)

  def restore_best(self, template: TrainState) -> tuple[TrainState, dict] | None:
    """(state, meta) of the best checkpoint, or None."""
    if self._best is None or self._best.best_step() is None:
      return None
    state, _, meta = self._restore(self._best, self._best.best_step(), template, with_data=False)
    return state, meta

  def _restore(self, manager, step, template, *, with_data):
    abstract = _host(template.to_checkpoint())
    items = dict(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
    if with_data:
      items["data"] = ocp.args.JsonRestore()
    restored = manager.restore(step, args=ocp.args.Composite(**items))
    state = template.from_checkpoint(restored["state"])
    return state, (restored["data"] if with_data else None), restored["meta"]

  def wait(self) -> None:
    """Blocks until any asynchronous save has finished."""
    self._latest.wait_until_finished()
    if self._best is not None:
      self._best.wait_until_finished()

  def close(self) -> None:
    self._latest.close()
    if self._best is not None:
      self._best.close()
