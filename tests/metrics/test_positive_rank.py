"""tiles.positive_ranks (the one-pass ranks of each query's best positives) against a float64
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


def np_ranks(q, r, q_ids, q_labels, r_labels, width, metric, exclude_self):
  """The width best positives by (similarity, lower index) and the count of other-label
  references before each; past the label's positives index Nr and every other-label one."""
  q, r = q.astype(np.float64), r.astype(np.float64)
  if metric == "euclidean":
    sims = -((q[:, None, :] - r[None, :, :]) ** 2).sum(-1)
  else:
    sims = q @ r.T
  nr = len(r)
  cols = np.arange(nr)
  counts = np.zeros((len(q), width), np.int32)
  best = np.full((len(q), width), nr, np.int32)
  for i in range(len(q)):
    pos = np.nonzero(r_labels == q_labels[i])[0]
    if exclude_self:
      pos = pos[pos != q_ids[i]]
    pos = pos[np.lexsort((pos, -sims[i, pos]))][:width]
    other = r_labels != q_labels[i]
    counts[i] = int(np.sum(other))
    for w, b in enumerate(pos):
      ahead = (sims[i] > sims[i, b]) | ((sims[i] == sims[i, b]) & (cols < b))
      counts[i, w] = int(np.sum(ahead & other))
      best[i, w] = b
  return counts, best


@pytest.mark.parametrize("metric", ["dot", "euclidean"])
@pytest.mark.parametrize("exclude_self", [True, False])
@pytest.mark.parametrize("widest", [False, True])
def test_matches_float64_reference_with_exact_ties(metric, exclude_self, widest):
  x, y = tied_set(0)
  rows = np.nonzero(np.bincount(y)[y] > 1)[0][::3].astype(np.int32)  # queries with a positive
  # 1, or every positive of the largest class (the smaller ones then end in padding).
  width = int(np.bincount(y)[y[rows]].max()) - int(exclude_self) if widest else 1
  q = x[rows]
  counts, best = tiles.positive_ranks(
      jnp.asarray(q), jnp.asarray(x), jnp.asarray(rows), tiles.label_members(y[rows], y),
      width=width, metric=metric, exclude_self=exclude_self, block_size=16)  # padded blocks
  want_counts, want_best = np_ranks(q, x, rows, y[rows], y, width, metric, exclude_self)
  chex.assert_trees_all_equal((np.asarray(counts), np.asarray(best)), (want_counts, want_best))
  assert np.any(want_counts[:, 0] > 0) and np.any(want_counts[:, 0] == 0)
  if widest:
    assert np.any(want_best == len(x))  # some classes have fewer positives than width


@pytest.mark.parametrize("seed, width", [(1, 1), (2, 3)])
def test_equals_the_two_pass_search_on_cosine(seed, width):
  x, y = tied_set(seed)
  xp = tiles.prepare(jnp.asarray(x), "cosine")
  rows = np.nonzero(np.bincount(y)[y] > 1)[0].astype(np.int32)
  q, ids, qy, ry = xp[rows], jnp.asarray(rows), jnp.asarray(y[rows]), jnp.asarray(y)
  bq, br = tiles.block_sizes(len(rows), len(x), width, None)
  best_v, best_i, _ = tiles.blocked_topk(q, xp, ids, None, (qy, ry), k=width, metric="cosine",
                                         exclude_self=True, block_size=bq, ref_block=br)
  _, _, before = tiles.blocked_topk(q, xp, ids, tiles.Beat(best_v, best_i, qy, ry), k=0,
                                    metric="cosine", exclude_self=True, block_size=bq,
                                    ref_block=br)
  counts, best = tiles.positive_ranks(q, xp, ids, tiles.label_members(y[rows], y), width=width,
                                      metric="cosine", exclude_self=True, block_size=bq)
  chex.assert_trees_all_equal((counts, best), (before, best_i))


def test_bad_sizes_are_errors():
  r = jnp.zeros((tiles._MAX_REF_BLOCK + 1, 2))
  with pytest.raises(ValueError, match="one tile"):
    tiles.positive_ranks(r[:2], r, jnp.arange(2), jnp.zeros((2, 1), jnp.int32), width=1,
                         metric="dot", exclude_self=True, block_size=2)
  with pytest.raises(ValueError, match="width"):
    tiles.positive_ranks(r[:2, :], r[:5], jnp.arange(2), jnp.zeros((2, 2), jnp.int32), width=3,
                         metric="dot", exclude_self=True, block_size=2)


def test_label_members():
  members = tiles.label_members(np.array([2, 0, 5]), np.array([0, 2, 2, 1, 0, 2]))
  chex.assert_trees_all_equal(members, np.array([[1, 2, 5], [0, 4, -1], [-1, -1, -1]], np.int32))
