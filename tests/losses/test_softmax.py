"""softmax_cross_entropy against a float64 NumPy reference."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmlax import losses


def np_smoothed_ce(logits, labels, eps):
  z = np.asarray(logits, np.float64)
  z = z - z.max(axis=1, keepdims=True)
  logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
  q = np.full_like(z, eps / z.shape[1])
  q[np.arange(len(labels)), labels] += 1.0 - eps
  return -(q * logp).sum(axis=1)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_matches_numpy_reference(eps):
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(16, 7)).astype(np.float32) * 5
  labels = rng.integers(0, 7, size=16)
  got = losses.softmax_cross_entropy(logits, labels, label_smoothing=eps, reduction="none")
  chex.assert_trees_all_close(got, np_smoothed_ce(logits, labels, eps), rtol=1e-5, atol=1e-5)
  chex.assert_trees_all_close(
      losses.softmax_cross_entropy(logits, labels, label_smoothing=eps),
      np_smoothed_ce(logits, labels, eps).mean(), rtol=1e-5)
  chex.assert_trees_all_close(
      losses.softmax_cross_entropy(logits, labels, label_smoothing=eps, reduction="sum"),
      np_smoothed_ce(logits, labels, eps).sum(), rtol=1e-5)


def test_jit_vmap_and_large_logits():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(3, 8, 5)).astype(np.float32) * 1e4
  labels = rng.integers(0, 5, size=(3, 8))
  fn = jax.jit(jax.vmap(lambda z, y: losses.softmax_cross_entropy(z, y, label_smoothing=0.1)))
  got = fn(logits, labels)
  want = [np_smoothed_ce(z, y, 0.1).mean() for z, y in zip(logits, labels)]
  chex.assert_tree_all_finite(got)
  chex.assert_trees_all_close(got, np.array(want), rtol=1e-5)


def test_bad_input():
  z = jnp.zeros((4, 3))
  with pytest.raises(ValueError, match="labels"):
    losses.softmax_cross_entropy(z, jnp.zeros((4,), jnp.float32))
  with pytest.raises(ValueError, match="labels"):
    losses.softmax_cross_entropy(z, jnp.zeros((5,), jnp.int32))
  with pytest.raises(ValueError, match="reduction"):
    losses.softmax_cross_entropy(z, jnp.zeros((4,), jnp.int32), reduction="avg")
  with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
    losses.softmax_cross_entropy(z, jnp.array([0, 1, 2, 3]))
  # Under jit the values are unknown at trace time: out-of-range rows become NaN, never a
  # silently clamped class.
  got = jax.jit(lambda y: losses.softmax_cross_entropy(z, y, reduction="none"))(jnp.array([0, 1, 2, 3]))
  assert np.isnan(np.asarray(got)[3]) and np.isfinite(np.asarray(got)[:3]).all()


def np_normalized_softmax(x, y, w, temperature):
  x, w = np.float64(x), np.float64(w)
  logits = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=0))
  return np_smoothed_ce(logits / temperature, y, 0.0)


def test_normalized_softmax_matches_numpy_reference():
  rng = np.random.default_rng(2)
  x = (rng.normal(size=(3, 8, 6)) * 10).astype(np.float32)
  w = rng.normal(size=(6, 5)).astype(np.float32)
  y = rng.integers(0, 5, size=(3, 8))
  fn = jax.jit(lambda x, y: (
      losses.normalized_softmax_loss(x[0], y[0], w, reduction="none"),
      losses.normalized_softmax_loss(x[0], y[0], w, temperature=0.5, reduction="sum"),
      jax.vmap(lambda x, y: losses.normalized_softmax_loss(x, y, w))(x, y),
      jax.grad(lambda x: losses.normalized_softmax_loss(x, y[0], w))(x[0] * 0.0)))
  per_example, total, batched, zero_grad = fn(x, y)
  chex.assert_trees_all_close(per_example, np_normalized_softmax(x[0], y[0], w, 0.05),
                              rtol=1e-5, atol=1e-5)
  chex.assert_trees_all_close(total, np_normalized_softmax(x[0], y[0], w, 0.5).sum(), rtol=1e-5)
  want = [np_normalized_softmax(xi, yi, w, 0.05).mean() for xi, yi in zip(x, y)]
  chex.assert_trees_all_close(batched, np.array(want), rtol=1e-5)
  chex.assert_tree_all_finite(zero_grad)  # all-zero features: x / max(||x||, eps), no NaN


def test_normalized_softmax_bad_input():
  x, w = jnp.zeros((4, 3)), jnp.ones((3, 5))
  y = jnp.zeros((4,), jnp.int32)
  with pytest.raises(ValueError, match="temperature"):
    losses.normalized_softmax_loss(x, y, w, temperature=0.0)
  with pytest.raises(ValueError, match="weights"):
    losses.normalized_softmax_loss(x, y, w.T)
  with pytest.raises(ValueError, match="labels"):
    losses.normalized_softmax_loss(x, y.astype(jnp.float32), w)
