"""Cross-batch memory (XBM; Wang et al., "Cross-Batch Memory for Embedding Learning", CVPR 2020)
as a functional fixed-size queue.

The state is a plain pytree (a NamedTuple of arrays), so it lives in a train state and
checkpoints with it. One step, equal to pytorch-metric-learning's ``CrossBatchMemory`` (which
enqueues the batch first and then compares the batch with the whole memory, leaving out each
anchor's own slot):

  >>> from dmlax.losses import contrastive_loss
  >>> state = xbm_init(8, 2)
  >>> e, y = jnp.array([[1.0, 0.0], [0.0, 1.0]]), jnp.array([0, 1])
  >>> state = xbm_update(state, e, y)
  >>> refs = xbm_references(state, batch_size=2)
  >>> loss = contrastive_loss(e, y, references=refs)
  >>> int(state.pointer), int(state.filled), refs[2].shape
  (2, 2, (2, 8))

The stored embeddings carry no gradient (pml detaches them too); the loss's gradient reaches the
batch through the anchors. With a miner, mine against ``xbm_references(state)`` (self slots
included, as pml's miner sees them) and pass the masks with ``xbm_references(state,
batch_size)``: the loss drops the self pairs, as pml's ``remove_self_comparisons`` does.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from dmlax import checks


class XBMState(NamedTuple):
  """embeddings (S, D), labels (S,) int32, pointer () next slot, filled () slots in use."""
  embeddings: jax.Array
  labels: jax.Array
  pointer: jax.Array
  filled: jax.Array


def xbm_init(size: int, dim: int, dtype=jnp.float32) -> XBMState:
  """An empty memory of `size` slots for `dim`-dimensional embeddings."""
  if int(size) != size or size < 1:
    raise ValueError(f"size must be a positive integer (memory slots), got {size!r}")
  if int(dim) != dim or dim < 1:
    raise ValueError(f"dim must be a positive integer (embedding dimension), got {dim!r}")
  return XBMState(jnp.zeros((size, dim), dtype), jnp.zeros((size,), jnp.int32),
                  jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def _replicated_gather(x: jax.Array, axis_name: str | None) -> jax.Array:
  """The global batch in device order, as a value shard_map knows to be replicated.

  A psum of each device's block placed in zeros (not all_gather, whose result shard_map's
  replication check treats as device-varying), so the new state can leave a shard_map as P().
  """
  if axis_name is None:
    return x
  devices = jax.lax.axis_size(axis_name)
  blocks = jnp.zeros((devices,) + x.shape, x.dtype).at[jax.lax.axis_index(axis_name)].set(x)
  return jax.lax.psum(blocks, axis_name).reshape((devices * x.shape[0],) + x.shape[1:])


def xbm_update(state: XBMState, features, labels, *, axis_name: str | None = None) -> XBMState:
  """Enqueues a batch, overwriting the oldest slots (ring buffer); no gradient is stored.

  With `axis_name`, the global batch (gathered over that axis, device order) is enqueued, so
  every device keeps the same memory.
  """
  _, dim = checks.check_features_labels(features, labels)
  size, mem_dim = state.embeddings.shape
  if dim != mem_dim:
    raise ValueError(f"features have dimension {dim} but the memory holds {mem_dim}")
  x = _replicated_gather(jax.lax.stop_gradient(jnp.asarray(features)), axis_name)
  y = _replicated_gather(jnp.asarray(labels), axis_name)
  if x.shape[0] > size:
    raise ValueError(f"the (global) batch of {x.shape[0]} does not fit a memory of {size} slots")
  slots = (state.pointer + jnp.arange(x.shape[0])) % size
  return XBMState(
      state.embeddings.at[slots].set(x.astype(state.embeddings.dtype)),
      state.labels.at[slots].set(y.astype(state.labels.dtype)),
      (state.pointer + x.shape[0]) % size,
      jnp.minimum(state.filled + x.shape[0], size))


def xbm_references(state: XBMState, batch_size: int | None = None, *,
                   axis_name: str | None = None):
  """``(embeddings, labels, valid)`` for a loss's ``references=``.

  `valid` marks the filled slots; with `batch_size` (the local batch of the last
  `xbm_update`) it is (B, S) and also leaves out each anchor's own slot. Under `axis_name` the
  anchors of device k are rows k * batch_size ... of the enqueued global batch.
  """
  size = state.embeddings.shape[0]
  valid = jnp.arange(size) < state.filled
  if batch_size is None:
    return jax.lax.stop_gradient(state.embeddings), state.labels, valid
  if int(batch_size) != batch_size or batch_size < 1:
    raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
  devices = 1 if axis_name is None else jax.lax.axis_size(axis_name)
  offset = 0 if axis_name is None else jax.lax.axis_index(axis_name) * batch_size
  first = state.pointer - batch_size * devices
  own = (first + offset + jnp.arange(batch_size)) % size
  valid = valid[None, :] & (own[:, None] != jnp.arange(size)[None, :])
  return jax.lax.stop_gradient(state.embeddings), state.labels, valid
