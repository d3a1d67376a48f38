"""Pair losses against float64 NumPy references written from the papers' definitions."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmlax import losses


def _dist(x):
  x = np.asarray(x, np.float64)
  x = x / np.linalg.norm(x, axis=1, keepdims=True)
  return np.sqrt(np.maximum(((x[:, None] - x[None]) ** 2).sum(-1), 0)), x @ x.T


def _hinge(v, soft):
  return np.log1p(np.exp(v)) if soft else max(v, 0.0)


def np_triplet(x, y, margin, mining, soft):
  d, _ = _dist(x)
  n = len(y)
  terms = []
  for a in range(n):
    pos = [p for p in range(n) if y[p] == y[a] and p != a]
    neg = [q for q in range(n) if y[q] != y[a]]
    if not pos or not neg:
      continue
    if mining == "all":
      terms += [_hinge(d[a, p] - d[a, q] + margin, soft) for p in pos for q in neg]
    elif mining == "hard":
      terms.append(_hinge(max(d[a, pos]) - min(d[a, neg]) + margin, soft))
    else:
      for p in pos:
        farther = [d[a, q] for q in neg if d[a, q] > d[a, p]]
        chosen = min(farther) if farther else max(d[a, neg])
        terms.append(_hinge(d[a, p] - chosen + margin, soft))
  if mining == "all":  # mean over the non-zero triplets
    nonzero = [t for t in terms if t > 0]
    return np.mean(nonzero) if nonzero else 0.0
  return np.mean(terms) if terms else 0.0


def np_contrastive(x, y, pos_margin, neg_margin):
  d, _ = _dist(x)
  n = len(y)
  pos = [max(d[i, j] - pos_margin, 0) for i in range(n) for j in range(n) if i != j and y[i] == y[j]]
  neg = [max(neg_margin - d[i, j], 0) for i in range(n) for j in range(n) if y[i] != y[j]]
  mean_nz = lambda v: np.mean([t for t in v if t > 0]) if any(t > 0 for t in v) else 0.0
  return mean_nz(pos) + mean_nz(neg)


def np_ms(x, y, alpha, beta, base):
  _, s = _dist(x)
  out = []
  for i in range(len(y)):
    pos = [np.exp(-alpha * (s[i, j] - base)) for j in range(len(y)) if j != i and y[j] == y[i]]
    neg = [np.exp(beta * (s[i, j] - base)) for j in range(len(y)) if y[j] != y[i]]
    out.append(np.log1p(np.sum(pos)) / alpha + np.log1p(np.sum(neg)) / beta)
  return np.array(out)


_CONFIGS = [("all", False, 0.2), ("all", True, 0.0), ("hard", False, 0.2), ("hard", True, 0.1),
            ("semihard", False, 0.3), ("semihard", True, 0.2)]


@jax.jit
def _all(x, y):
  out = [losses.triplet_margin_loss(x, y, margin=m, mining=mi, soft=so) for mi, so, m in _CONFIGS]
  out.append(losses.contrastive_loss(x, y, pos_margin=0.1, neg_margin=0.9))
  out.append(losses.multi_similarity_loss(x, y, reduction="none"))
  return out


def test_pair_losses_match_reference():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(12, 5)).astype(np.float32)
  y = rng.integers(0, 4, size=12).astype(np.int32)
  y[0] = 9  # an anchor without positives
  expected = [np_triplet(x, y, m, mi, so) for mi, so, m in _CONFIGS]
  expected += [np_contrastive(x, y, 0.1, 0.9), np_ms(x, y, 2.0, 50.0, 0.5)]
  chex.assert_trees_all_close(_all(x, y), expected, rtol=2e-5, atol=1e-6)


def _grads(x, y):
  fns = [functools.partial(losses.triplet_margin_loss, mining=mi, soft=so) for mi, so, _ in
         _CONFIGS] + [losses.contrastive_loss, losses.multi_similarity_loss]
  return [jax.value_and_grad(f)(x, y) for f in fns]


_grads_jit = jax.jit(_grads)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_degenerate_batches_are_finite(dtype):
  rng = np.random.default_rng(1)
  x = rng.normal(size=(6, 4))
  cases = {
      "one_class": (x, np.zeros(6)),
      "one_per_class": (x, np.arange(6)),
      "duplicates": (np.repeat(x[:3], 2, axis=0), np.array([0, 0, 1, 1, 2, 2])),
  }
  for name, (xc, yc) in cases.items():
    for value, grad in _grads_jit(jnp.asarray(xc, dtype), jnp.asarray(yc, jnp.int32)):
      assert np.isfinite(float(value)), name
      assert grad.dtype == dtype
      assert np.all(np.isfinite(np.asarray(grad, np.float32))), name
  # No valid triplet or pair: exactly 0.
  values = [v for v, _ in _grads_jit(jnp.asarray(x, dtype), jnp.zeros(6, jnp.int32))]
  assert all(float(v) == 0.0 for v in values[:6])


def test_vmap_and_bad_input():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(2, 8, 3)).astype(np.float32)
  y = rng.integers(0, 3, size=(2, 8)).astype(np.int32)
  batched = jax.jit(jax.vmap(losses.multi_similarity_loss))(x, y)
  expected = np.array([np_ms(x[i], y[i], 2, 50, 0.5).mean() for i in range(2)])
  chex.assert_trees_all_close(batched, expected, rtol=2e-5)
  with pytest.raises(ValueError, match="mining"):
    losses.triplet_margin_loss(x[0], y[0], mining="easy")
  with pytest.raises(ValueError, match="labels"):
    losses.contrastive_loss(x[0], y[0, :3])


def test_large_batch_all_path_matches_dense_reference():
  """B >= 128 takes the sorted O(B^2 log B) path: same value and gradient as the dense form."""
  rng = np.random.default_rng(3)
  x = rng.normal(size=(130, 6)).astype(np.float32)
  y = rng.integers(0, 20, size=130).astype(np.int32)
  d, _ = _dist(x)
  same = y[:, None] == y[None]
  pos = same & ~np.eye(130, dtype=bool)
  v = d[:, :, None] - d[:, None, :] + 0.2
  v = np.where(pos[:, :, None] & ~same[:, None, :] & (v > 0), v, 0.0)
  expected = v.sum() / (v > 0).sum()

  def dense(a):  # the triplet tensor, in JAX, for the gradient
    a = a / jnp.linalg.norm(a, axis=1, keepdims=True)
    dd = jnp.sqrt(jnp.maximum(jnp.sum((a[:, None] - a[None]) ** 2, -1), 1e-12))
    viol = jax.nn.relu(dd[:, :, None] - dd[:, None, :] + 0.2)
    viol = jnp.where(pos[:, :, None] & ~same[:, None, :], viol, 0.0)
    return viol.sum() / (viol > 0).sum()

  value, grad = jax.jit(jax.value_and_grad(losses.triplet_margin_loss))(x, y)
  chex.assert_trees_all_close(value, expected, rtol=1e-5)
  chex.assert_trees_all_close(grad, jax.jit(jax.grad(dense))(x), rtol=1e-3, atol=1e-7)
