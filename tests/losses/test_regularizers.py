"""Regularisers against float64 NumPy references of their formulas."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmlax import losses


def np_proxy_reg(w):
  w = np.asarray(w, np.float64)
  w = w / np.linalg.norm(w, axis=-1, keepdims=True)
  c, k, _ = w.shape
  total = 0.0
  for j in range(c):
    for t in range(k):
      for s in range(t + 1, k):
        total += np.sqrt(2 + 1e-5 - 2 * w[j, s] @ w[j, t])
  return total / (c * k * (k - 1)) if k > 1 else 0.0


@jax.jit
def _all(x, y, centers, radius, w):
  return (losses.proxy_regularizer(w), losses.proxy_regularizer(w[:, :1]),
          losses.center_loss(x, y, centers, reduction="none"), losses.center_loss(x, y, centers),
          losses.ring_loss(x, radius, loss_weight=0.3, reduction="none"),
          losses.ring_loss(x, radius, loss_weight=0.3, reduction="sum"))


def test_regularizers_match_reference():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(9, 6)).astype(np.float32)
  y = rng.integers(0, 4, size=9).astype(np.int32)
  centers = rng.normal(size=(4, 6)).astype(np.float32)
  w = rng.normal(size=(5, 3, 6)).astype(np.float32)
  x64 = x.astype(np.float64)
  center = 0.5 * np.sum((x64 - centers[y]) ** 2, axis=1)
  ring = 0.15 * (np.linalg.norm(x64, axis=1) - 2.5) ** 2
  expected = (np_proxy_reg(w), 0.0, center, center.mean(), ring, ring.sum())
  chex.assert_trees_all_close(_all(x, y, centers, 2.5, w), expected, rtol=2e-5, atol=1e-7)


def test_finite_gradients_at_degenerate_points():
  w = jnp.ones((2, 3, 4))  # coincident proxies: sqrt(1e-5), still a finite derivative
  g = jax.jit(jax.grad(losses.proxy_regularizer))(w)
  assert np.all(np.isfinite(g))
  x = jnp.zeros((2, 4), jnp.bfloat16)  # zero features: the norm's gradient is capped
  gx, gr = jax.jit(jax.grad(losses.ring_loss, argnums=(0, 1)))(x, jnp.float32(1.0))
  assert np.all(np.isfinite(np.asarray(gx, np.float32))) and np.isfinite(gr)


def test_bad_input_raises():
  with pytest.raises(ValueError, match="proxies"):
    losses.proxy_regularizer(jnp.ones((3, 4)))
  with pytest.raises(ValueError, match="centers"):
    losses.center_loss(jnp.ones((2, 4)), jnp.array([0, 1]), jnp.ones((3, 5)))
  with pytest.raises(ValueError, match="radius"):
    losses.ring_loss(jnp.ones((2, 4)), jnp.ones(2))
