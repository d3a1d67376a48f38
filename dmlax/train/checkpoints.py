"""Checkpoints with orbax `CheckpointManager`: the last N states and the best one, restorable.

Layout in the workdir:
  checkpoints/<step>/{state, data, meta}   the last `keep` saves (periodic, on SIGTERM, final)
  best/<step>/{state, meta}                the state with the best `best_metric` so far

`state` is the train state's arrays (`TrainState.to_checkpoint`), `data` the training
iterator's `get_state()` (JSON), `meta` the loop's own bookkeeping (JSON: best metrics so far,
evaluation history, accumulated wall time), so that a restarted run continues exactly where the
saved one was: same parameters, same next batch, same best-so-far.

An unreadable latest checkpoint (truncated or garbage files) is set aside, with a warning naming
it and the reason, into `workdir/unreadable_checkpoints/`, and the newest readable one restored;
none readable is an `UnreadableCheckpointError`. A readable checkpoint whose arrays do not fit the
state the config builds (another loss, model or optimiser) is a `CheckpointMismatchError` listing
the differing arrays.

Class-split arrays (the classifier/proxies and their optimiser state on a (data, model) mesh,
`dmlax.train.class_parallel`) stay global `jax.Array`s: orbax writes each shard from the device
that holds it and restores them straight into the template's sharding, so neither the host nor
any device gathers the whole array. Everything else is saved from, and restored to, host NumPy.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp

from dmlax.train.class_parallel import is_sharded
from dmlax.train.state import TrainState


def _host(tree):
  """Host NumPy copies of `tree`'s arrays, class-split `jax.Array`s left in their shards."""
  return jax.tree.map(lambda x: x if is_sharded(x) else np.asarray(jax.device_get(x)), tree)


def _abstract(tree):
  """The restore target of `tree`: host arrays as today, class-split arrays as their shape,
  dtype and sharding (orbax then reads each device's shard into place)."""
  return jax.tree.map(
      lambda x: (jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding) if is_sharded(x)
                 else np.asarray(jax.device_get(x))), tree)


class UnreadableCheckpointError(RuntimeError):
  """No checkpoint of the workdir can be read."""


class CheckpointMismatchError(ValueError):
  """A checkpoint holds arrays that do not fit the state the config builds."""


def _shapes(tree) -> dict[str, tuple]:
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {jax.tree_util.keystr(path): tuple(getattr(leaf, "shape", ())) for path, leaf in flat}


def _mismatch(template: dict, saved_tree) -> list[str]:
  """The arrays of `template` and of a checkpoint's metadata tree that differ (name or shape)."""
  want, have = _shapes(template), _shapes(saved_tree)
  out = [f"{k}: checkpoint {have[k]}, config {want[k]}" for k in sorted(set(want) & set(have))
         if have[k] != want[k]]
  out += [f"{k}: only in the checkpoint" for k in sorted(set(have) - set(want))]
  out += [f"{k}: only in the config's state" for k in sorted(set(want) - set(have))]
  return out


class Checkpoints:
  """The run's latest-N and best checkpoint managers.

  Args:
    workdir: the run's directory.
    keep: how many of the latest checkpoints to keep.
    best_metric: evaluation metric that ranks the best checkpoint (None: no best checkpoint).
    best_mode: "max" or "min" for `best_metric`.
    async_save: write in a background thread (orbax's async checkpointing).

  Example:
    >>> import tempfile
    >>> import jax.numpy as jnp
    >>> import optax
    >>> from dmlax.train.state import TrainState
    >>> state = TrainState.create(apply_fn=None, params={"w": jnp.ones((2, 3))},
    ...                           tx=optax.sgd(0.1, momentum=0.9), batch_stats={})
    >>> ckpt = Checkpoints(tempfile.mkdtemp(), keep=2, best_metric="recall@1")
    >>> ckpt.restore_latest(state) is None   # a fresh workdir holds none
    True
    >>> # The loop passes the data iterator's state (`iterator.get_state()`, a JSON dict).
    >>> ckpt.save(10, state, data_state={"epoch": 0, "index": 160}, meta={"note": "demo"})
    >>> ckpt.save_best(10, state, metrics={"recall@1": 0.5}, meta={})
    >>> ckpt.latest_step()
    10
    >>> restored, data_state, meta = ckpt.restore_latest(state)   # `state` is the template
    >>> restored.params["w"].shape, data_state, meta
    ((2, 3), {'epoch': 0, 'index': 160}, {'note': 'demo'})
    >>> ckpt.restore_best(state) is not None
    True
    >>> ckpt.close()
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
    self.unreadable_directory = os.path.join(workdir, "unreadable_checkpoints")
    self.best_metric = best_metric
    self._latest_options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=True, cleanup_tmp_directories=True,
        enable_async_checkpointing=async_save)
    self._latest = self._latest_manager()
    self._best = None
    if best_metric:
      self._best = ocp.CheckpointManager(
          self.best_directory,
          options=ocp.CheckpointManagerOptions(
              max_to_keep=1, create=True, best_fn=lambda m: float(m[best_metric]),
              best_mode=best_mode, keep_checkpoints_without_metrics=False,
              cleanup_tmp_directories=True, enable_async_checkpointing=async_save),
          item_handlers={"state": ocp.StandardCheckpointHandler(),
                         "meta": ocp.JsonCheckpointHandler()})

  def _latest_manager(self):
    # Handlers named up front: a fresh process can then read a step's metadata before restoring.
    return ocp.CheckpointManager(
        self.directory, options=self._latest_options,
        item_handlers={"state": ocp.StandardCheckpointHandler(),
                       "data": ocp.JsonCheckpointHandler(),
                       "meta": ocp.JsonCheckpointHandler()})

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
    """(state, data_state, meta) of the newest readable checkpoint, or None if there is none.

    Raises:
      UnreadableCheckpointError: there are checkpoints, and none can be read.
      CheckpointMismatchError: the newest readable one does not fit `template`.
    """
    steps = sorted(self._latest.all_steps(), reverse=True)
    failed = []
    for step in steps:
      path = os.path.join(self.directory, str(step))
      try:
        restored = self._restore(self._latest, step, template, with_data=True)
      except CheckpointMismatchError:
        raise
      except Exception as e:  # pylint: disable=broad-except
        # orbax and tensorstore raise many types for truncated or garbage files.
        reason = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
        logging.warning("checkpoint %s is unreadable (%s); trying the previous one", path,
                        reason)
        failed.append((step, path, reason))
        continue
      if failed:
        self._set_aside([s for s, _, _ in failed])
      return restored
    if failed:
      raise UnreadableCheckpointError(
          f"no readable checkpoint in {self.directory}: " +
          "; ".join(f"{p} ({r})" for _, p, r in failed) +
          ". Delete the directory (or the workdir) to start the run again")
    return None

  def _set_aside(self, steps) -> None:
    """Moves unreadable steps out of the manager's directory, so later saves can use them."""
    self._latest.close()
    if jax.process_index() == 0:
      os.makedirs(self.unreadable_directory, exist_ok=True)
      for step in steps:
        dest = os.path.join(self.unreadable_directory, f"{step}-{int(time.time())}")
        shutil.move(os.path.join(self.directory, str(step)), dest)
        logging.warning("moved the unreadable checkpoint of step %d to %s", step, dest)
    self._latest = self._latest_manager()

  def restore_best(self, template: TrainState) -> tuple[TrainState, dict] | None:
    """(state, meta) of the best checkpoint, or None."""
    if self._best is None or self._best.best_step() is None:
      return None
    state, _, meta = self._restore(self._best, self._best.best_step(), template, with_data=False)
    return state, meta

  def _restore(self, manager, step, template, *, with_data):
    abstract = _abstract(template.to_checkpoint())
    saved = manager.item_metadata(step)["state"]
    saved = getattr(saved, "tree", saved)
    if not saved:
      raise OSError("the state item has no readable metadata")
    mismatch = _mismatch(abstract, saved)
    if mismatch:
      raise CheckpointMismatchError(
          f"the checkpoint of step {step} in {manager.directory} does not fit the state this "
          f"config builds (another loss, model or optimiser?): " + "; ".join(mismatch[:10]) +
          (f"; and {len(mismatch) - 10} more" if len(mismatch) > 10 else ""))
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
