"""tiles.best_positive_rank (the one-pass rank of each query's best positive) against a float64
reference with exact ties, and against the two-pass blocked_topk it replaces."""

import chex
import jax.numpy as jnp
import numpy as np
import pytest

from dmlax.metrics import tiles


def tied_set(seed, n=300, d=6, num_classes=25):
  """Small-integer embeddings (float32 products are exact, so float64 decides every tie the same
  way) with many exact ties, and exact copies of items under other labels."""
  rng = np.random.default_rng(seed)
  x = rng.integers(-2, 3, size=(n, d)).astype(np.float32)
  y = rng.integers(0, num_classes, size=n)
  dst = rng.choice(n, size=40, replace=False)
  x[dst] = x[rng.integers(0, n, size=40)]
  return x, y


def np_rank(q, r, q_ids, q_labels, r_labels, metric, exclude_self):
  """Best positive by (similarity, lower index); count of other-label references before it."""
  q, r = q.astype(np.float64), r.astype(np.float64)
  if metric == "euclidean":
    sims = -((q[:, None, :] - r[None, :, :]) ** 2).sum(-1)
  else:
    sims = q @ r.T
  counts, best = [], []
  for i in range(len(q)):
    pos = np.nonzero(r_labels == q_labels[i])[0]
    if exclude_self:
      pos = pos[pos != q_ids[i]]
    b = pos[np.lexsort((pos, -sims[i, pos]))[0]]
    other = r_labels != q_labels[i]
    cols = np.arange(len(r))
    ahead = (sims[i] > sims[i, b]) | ((sims[i] == sims[i, b]) & (cols < b))
    counts.append(int(np.sum(ahead & other)))
    best.append(int(b))
  return np.array(counts), np.array(best)


@pytest.mark.parametrize("metric", ["dot", "euclidean"])
@pytest.mark.parametrize("exclude_self", [True, False])
def test_matches_float64_reference_with_exact_ties(metric, exclude_self):
  x, y = tied_set(0)
  rows = np.nonzero(np.bincount(y)[y] > 1)[0][::3].astype(np.int32)  # queries with a positive
  q = x[rows]
  counts, best = tiles.best_positive_rank(
      jnp.asarray(q), jnp.asarray(x), jnp.asarray(rows), tiles.label_members(y[rows], y),
      metric=metric, exclude_self=exclude_self, block_size=16)  # several query blocks, padded
  want_counts, want_best = np_rank(q, x, rows, y[rows], y, metric, exclude_self)
  chex.assert_trees_all_equal((np.asarray(counts), np.asarray(best)), (want_counts, want_best))
  assert np.any(want_counts > 0) and np.any(want_counts == 0)


@pytest.mark.parametrize("seed", [1, 2])
def test_equals_the_two_pass_search_on_cosine(seed):
  x, y = tied_set(seed)
  xp = tiles.prepare(jnp.asarray(x), "cosine")
  rows = np.nonzero(np.bincount(y)[y] > 1)[0].astype(np.int32)
  q, ids, qy, ry = xp[rows], jnp.asarray(rows), jnp.asarray(y[rows]), jnp.asarray(y)
  bq, br = tiles.block_sizes(len(rows), len(x), 1, None)
  best_v, best_i, _ = tiles.blocked_topk(q, xp, ids, None, (qy, ry), k=1, metric="cosine",
                                         exclude_self=True, block_size=bq, ref_block=br)
  _, _, before = tiles.blocked_topk(q, xp, ids, tiles.Beat(best_v, best_i, qy, ry), k=0,
                                    metric="cosine", exclude_self=True, block_size=bq,
                                    ref_block=br)
  counts, best = tiles.best_positive_rank(q, xp, ids, tiles.label_members(y[rows], y),
                                          metric="cosine", exclude_self=True, block_size=bq)
  chex.assert_trees_all_equal((counts, best), (before[:, 0], best_i[:, 0]))


def test_more_references_than_one_tile_is_an_error():
  r = jnp.zeros((tiles._MAX_REF_BLOCK + 1, 2))
  with pytest.raises(ValueError, match="one tile"):
    tiles.best_positive_rank(r[:2], r, jnp.arange(2), jnp.zeros((2, 1), jnp.int32),
                             metric="dot", exclude_self=True, block_size=2)


def test_label_members():
  members = tiles.label_members(np.array([2, 0, 5]), np.array([0, 2, 2, 1, 0, 2]))
  chex.assert_trees_all_equal(members, np.array([[1, 2, 5], [0, 4, -1], [-1, -1, -1]], np.int32))
