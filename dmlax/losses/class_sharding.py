"""Reductions over a class axis that may be sharded across devices (`class_axis_name`).

With ``class_axis_name``, inside ``shard_map`` over that mesh axis, a loss's classifier holds
only the local contiguous block of ``C_local`` classes (device ``k`` holds classes
``[k C_local, (k + 1) C_local)``), labels are global class indices, and these helpers combine
the per-shard pieces so that the loss is exactly its full-class value: no device holds the full
classifier or a (B, C) array of the full C. Without it they are the ordinary single-device
operations. Inside ``shard_map``, ``jax.grad`` gives the local block of the weights' gradient and
the full features' gradient (tested in ``tests/losses/test_class_sharding.py``).

Every loss that takes `class_axis_name` is tested against its one-device value and gradients in
``tests/losses/test_class_sharding*.py`` (shared harness: ``tests/losses/class_sharding_harness.py``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dmlax import checks


def num_classes(num_local: int, class_axis_name: str | None):
  """The global class count (the local count times the axis size)."""
  if class_axis_name is None:
    return num_local
  return num_local * jax.lax.psum(1, class_axis_name)


def local_mask(labels: jax.Array, num_local: int, class_axis_name: str | None) -> jax.Array:
  """(B, C_local) one-hot of the global `labels` restricted to this shard's classes."""
  if class_axis_name is None:
    return checks.class_mask(labels, num_local)
  offset = jax.lax.axis_index(class_axis_name) * num_local
  return checks.class_mask(labels - offset, num_local)


def label_column(matrix: jax.Array, labels: jax.Array, class_axis_name: str | None) -> jax.Array:
  """(B,) entry of each row of (B, C_local) `matrix` at its label, from the shard holding it."""
  mask = local_mask(labels, matrix.shape[1], class_axis_name)
  out = jnp.sum(jnp.where(mask, matrix, 0.0), axis=1)
  return out if class_axis_name is None else jax.lax.psum(out, class_axis_name)


def logsumexp(z: jax.Array, class_axis_name: str | None) -> jax.Array:
  """(B,) log-sum-exp over all classes of (B, C_local) logits."""
  if class_axis_name is None:
    return jax.nn.logsumexp(z, axis=1)
  # The shift is a constant for differentiation (it cancels exactly).
  shift = jax.lax.pmax(jax.lax.stop_gradient(jnp.max(z, axis=1)), class_axis_name)
  total = jax.lax.psum(jnp.sum(jnp.exp(z - shift[:, None]), axis=1), class_axis_name)
  return shift + jnp.log(total)


def psum(x: jax.Array, class_axis_name: str | None) -> jax.Array:
  """Sum of the per-shard `x` over the class axis (identity without one)."""
  return x if class_axis_name is None else jax.lax.psum(x, class_axis_name)


def pmax(x: jax.Array, class_axis_name: str | None) -> jax.Array:
  """Maximum of the per-shard `x` over the class axis (identity without one)."""
  return x if class_axis_name is None else jax.lax.pmax(x, class_axis_name)


def offset(num_local: int, class_axis_name: str | None):
  """Global index of this shard's first class (0 without a class axis)."""
  if class_axis_name is None:
    return 0
  return jax.lax.axis_index(class_axis_name) * num_local


def take_classes(table: jax.Array, labels: jax.Array, class_axis_name: str | None,
                 axis: int = 0) -> jax.Array:
  """Entries of `table` at the global class `labels`, its class `axis` replaced by the batch.

  `table` holds this shard's ``C_local`` classes on `axis` (e.g. (C_local, D) proxies with
  ``axis=0``, (D, C_local) weights with ``axis=1``). The local one-hot contracts the class axis,
  so each shard contributes the rows it holds (zeros elsewhere) and one psum assembles them; the
  gradient reaches only the local rows. Returns (B, ...rest of table's shape) in table's order
  with the class axis moved to the front. An out-of-range label yields a zero row.
  """
  mask = local_mask(labels, table.shape[axis], class_axis_name).astype(table.dtype)
  out = jnp.tensordot(mask, jnp.moveaxis(table, axis, 0), axes=(1, 0))
  return psum(out, class_axis_name)


def argmax(logits: jax.Array, class_axis_name: str | None) -> jax.Array:
  """(B,) global index of each row's largest logit over all shards (ties: lowest index)."""
  local = jnp.argmax(logits, axis=1)
  if class_axis_name is None:
    return local
  best = jnp.max(logits, axis=1)
  top = jax.lax.pmax(best, class_axis_name)
  index = local + offset(logits.shape[1], class_axis_name)
  big = jnp.iinfo(index.dtype).max
  return jax.lax.pmin(jnp.where(best == top, index, big), class_axis_name)
