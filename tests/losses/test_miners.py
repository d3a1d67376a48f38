"""Miners against float64 NumPy loops written from the papers' / pml's definitions, and the
masks' use by the losses."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmlax import losses
from dmlax import miners


def _problem(seed=0, b=12, c=3):
  rng = np.random.default_rng(seed)
  return rng.normal(size=(b, 4)).astype(np.float64), rng.integers(0, c, size=b).astype(np.int32)


def _cos(x):
  x = x / np.linalg.norm(x, axis=1, keepdims=True)
  return x @ x.T


def _dist(x):
  return np.sqrt(np.maximum(2 - 2 * _cos(x), 0))


def np_ms_miner(x, y, eps):
  s, n = _cos(x), len(y)
  pos, neg = np.zeros((n, n), bool), np.zeros((n, n), bool)
  for a in range(n):
    ps = [p for p in range(n) if p != a and y[p] == y[a]]
    ns = [q for q in range(n) if y[q] != y[a]]
    for p in ps:
      pos[a, p] = bool(ns) and s[a, p] - eps < max(s[a, ns])
    for q in ns:
      neg[a, q] = bool(ps) and s[a, q] + eps > min(s[a, ps])
  return pos, neg


def np_triplet_miner(x, y, margin, kind):
  d, n = _dist(x), len(y)
  out = np.zeros((n, n, n), bool)
  for a in range(n):
    for p in range(n):
      for q in range(n):
        if p == a or y[p] != y[a] or y[q] == y[a]:
          continue
        t = d[a, q] - d[a, p]
        out[a, p, q] = {"all": t <= margin, "hard": t <= 0, "semihard": 0 < t <= margin,
                        "easy": t > margin}[kind]
  return out


def np_batch_hard(x, y):
  d, n = _dist(x), len(y)
  out = np.zeros((n, n, n), bool)
  for a in range(n):
    ps = [p for p in range(n) if p != a and y[p] == y[a]]
    ns = [q for q in range(n) if y[q] != y[a]]
    if ps and ns:
      out[a, ps[np.argmax(d[a, ps])], ns[np.argmin(d[a, ns])]] = True
  return out


def test_miners_match_float64_loops():
  x, y = _problem(0)
  with jax.enable_x64(True):
    got = jax.jit(lambda x, y: (
        miners.multi_similarity_miner(x, y, epsilon=0.1),
        [miners.triplet_margin_miner(x, y, margin=0.3, type_of_triplets=k)
         for k in ("all", "hard", "semihard", "easy")],
        miners.batch_hard_miner(x, y),
        miners.pair_margin_miner(x, y, pos_margin=0.9, neg_margin=1.1)))(x, y)
  np.testing.assert_array_equal(np.asarray(got[0]), np.stack(np_ms_miner(x, y, 0.1)))
  for k, mask in zip(("all", "hard", "semihard", "easy"), got[1]):
    want = np_triplet_miner(x, y, 0.3, k)
    assert want.any()
    np.testing.assert_array_equal(np.asarray(mask), want, err_msg=k)
  np.testing.assert_array_equal(np.asarray(got[2]), np_batch_hard(x, y))
  d = _dist(x)
  same = y[:, None] == y[None]
  np.testing.assert_array_equal(np.asarray(got[3][0]), same & ~np.eye(12, dtype=bool) & (d > 0.9))
  np.testing.assert_array_equal(np.asarray(got[3][1]), ~same & (d < 1.1))


def test_losses_use_only_the_mined_pairs_and_triplets():
  x, y = _problem(1)
  x = x.astype(np.float32)
  pos, neg = miners.multi_similarity_miner(x, y)
  assert 0 < int(pos.sum()) < int(((y[:, None] == y[None]).sum() - 12))
  # Mining all pairs is the same as no mining; mining none gives 0.
  every = ((y[:, None] == y[None]) & ~np.eye(12, dtype=bool), y[:, None] != y[None])
  none = (np.zeros((12, 12), bool),) * 2
  for fn in (losses.contrastive_loss, losses.multi_similarity_loss, losses.ntxent_loss,
             losses.supcon_loss, losses.circle_loss, losses.lifted_structure_loss):
    chex.assert_trees_all_close(fn(x, y, pairs=every), fn(x, y), rtol=1e-6)
    assert float(fn(x, y, pairs=none)) == 0.0
  # Only the mined pairs: the MS loss with masks equals the loss written on the mined sets.
  s = _cos(x.astype(np.float64))
  want = np.mean([np.log1p(np.exp(-2 * (s[a, pos[a]] - 0.5)).sum()) / 2
                  + np.log1p(np.exp(50 * (s[a, neg[a]] - 0.5)).sum()) / 50 for a in range(12)])
  chex.assert_trees_all_close(losses.multi_similarity_loss(x, y, pairs=(pos, neg)), want,
                              rtol=1e-5)
  trip = miners.triplet_margin_miner(x, y, margin=0.3, type_of_triplets="semihard")
  d = _dist(x.astype(np.float64))
  v = np.where(np.asarray(trip), d[:, :, None] - d[:, None, :] + 0.2, 0)
  v = np.maximum(v, 0)
  chex.assert_trees_all_close(losses.triplet_margin_loss(x, y, triplets=trip),
                              v.sum() / (v > 0).sum(), rtol=1e-5)
  with pytest.raises(ValueError, match="type_of_triplets"):
    miners.triplet_margin_miner(x, y, type_of_triplets="medium")
  with pytest.raises(ValueError, match="semihard"):
    miners.batch_easy_hard_miner(x, y, pos_strategy="semihard", neg_strategy="semihard")
  with pytest.raises(ValueError, match="distance"):
    miners.batch_hard_miner(x, y, distance="hamming")
  grads = jax.grad(lambda a: jnp.sum(miners.multi_similarity_miner(a, y)[0] * 1.0))(x)
  assert not np.any(grads)
