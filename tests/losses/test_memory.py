"""Cross-batch memory: the ring buffer against a NumPy simulation, the references' masks, the
state as a checkpointable pytree, and a loss on it against the loss on the concatenation."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmlax import losses


def test_ring_buffer_references_and_loss():
  size, dim, b = 10, 3, 4
  rng = np.random.default_rng(0)
  state = losses.xbm_init(size, dim)
  mem_e, mem_y = np.zeros((size, dim), np.float32), np.zeros(size, np.int32)
  pointer = filled = 0
  update = jax.jit(losses.xbm_update)
  for _ in range(4):  # fills after 3 batches and wraps mid-batch
    x = rng.normal(size=(b, dim)).astype(np.float32)
    y = rng.integers(0, 3, size=b).astype(np.int32)
    state = update(state, x, y)
    slots = (pointer + np.arange(b)) % size
    mem_e[slots], mem_y[slots] = x, y
    pointer, filled = (pointer + b) % size, min(filled + b, size)
    chex.assert_trees_all_close(state, losses.XBMState(mem_e, mem_y, pointer, filled))
    e, ly, valid = losses.xbm_references(state, b)
    want_valid = (np.arange(size) < filled)[None] & (slots[:, None] != np.arange(size)[None])
    np.testing.assert_array_equal(valid, want_valid)
    # The loss against the memory equals the loss on [batch; other filled entries] with the
    # memory's copy of the batch detached.
    others = np.array([j for j in range(filled) if j not in slots], int)
    got = losses.contrastive_loss(x, y, references=(e, ly, valid), reduction="sum")
    d = np.linalg.norm(x[:, None] / np.linalg.norm(x, axis=1)[:, None, None]
                       - mem_e[None, :filled] / np.linalg.norm(mem_e[:filled], axis=1)[None, :,
                                                                                      None],
                       axis=-1)
    same = y[:, None] == mem_y[None, :filled]
    mask = want_valid[:, :filled]
    want = np.where(mask & same, d, 0).sum() + np.where(mask & ~same, np.maximum(1 - d, 0),
                                                        0).sum()
    chex.assert_trees_all_close(got, want, rtol=1e-5)
    assert len(others) == filled - b
  # A plain pytree: flattens, and round-trips through NumPy (what a checkpoint stores).
  leaves, tree = jax.tree_util.tree_flatten(state)
  restored = jax.tree_util.tree_unflatten(tree, [np.asarray(v) for v in leaves])
  chex.assert_trees_all_close(restored, state)
  # No gradient reaches the stored copy.
  g = jax.grad(lambda a: jnp.sum(losses.xbm_update(state, a, y).embeddings))(x)
  assert not np.any(g)
  with pytest.raises(ValueError, match="does not fit"):
    losses.xbm_update(losses.xbm_init(2, dim), x, y)
  with pytest.raises(ValueError, match="dimension"):
    losses.xbm_update(state, x[:, :2], y)
  with pytest.raises(ValueError, match="size"):
    losses.xbm_init(0, dim)
