"""knn against a stable float64 NumPy sort of every similarity row."""

import chex
import numpy as np
import pytest

from dmlax import metrics
from dmlax.metrics import tiles


def np_knn(q, r, k, metric, exclude_self):
  q = np.asarray(q, np.float64)
  r = np.asarray(r, np.float64)
  if metric == "cosine":
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    r = r / np.linalg.norm(r, axis=1, keepdims=True)
  sims = -((q[:, None] - r[None]) ** 2).sum(-1) if metric == "euclidean" else q @ r.T
  if exclude_self:
    np.fill_diagonal(sims, -np.inf)
  idx = np.argsort(-sims, axis=1, kind="stable")[:, :k]
  return idx, np.take_along_axis(sims, idx, axis=1)


@pytest.mark.parametrize("metric, exclude_self", [("dot", True), ("euclidean", False)])
def test_matches_stable_sort_with_ties_across_uneven_blocks(metric, exclude_self, monkeypatch):
  # Small-integer embeddings: exact float32 similarities with many ties, so the lower-index
  # tie-break is checked; 317 items split into blocks of 48 queries x 160 references.
  monkeypatch.setattr(tiles, "_MAX_REF_BLOCK", 160)
  rng = np.random.default_rng(0)
  x = rng.integers(-2, 3, size=(317, 3)).astype(np.float32)
  for k in (1, 7):  # k=1: chunks of 32 (two-stage); k=7: the chunk halves to 8
    idx, sims = metrics.knn(x, x, k=k, metric=metric, exclude_self=exclude_self, block_size=48)
    want_idx, want_sims = np_knn(x, x, k, metric, exclude_self)
    np.testing.assert_array_equal(np.asarray(idx), want_idx)
    chex.assert_trees_all_close(np.asarray(sims), want_sims, atol=1e-4)


def test_query_reference_mode_cosine():
  rng = np.random.default_rng(1)
  q = rng.normal(size=(50, 6)).astype(np.float32)
  r = rng.normal(size=(230, 6)).astype(np.float32)
  idx, sims = metrics.knn(q, r, k=9)
  want_idx, want_sims = np_knn(q, r, 9, "cosine", False)
  np.testing.assert_array_equal(np.asarray(idx), want_idx)
  chex.assert_trees_all_close(np.asarray(sims), want_sims, atol=1e-5)


def test_exclude_self_keeps_duplicates():
  x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
  idx, sims = metrics.knn(x, x, k=2, exclude_self=True)
  np.testing.assert_array_equal(np.asarray(idx), [[1, 2], [0, 2], [0, 1]])
  chex.assert_trees_all_close(np.asarray(sims)[:2, 0], np.ones(2, np.float32))


@pytest.mark.parametrize("kwargs, message", [
    (dict(queries=np.ones((3, 2)), references=np.ones((3, 2)), k=4), "k must be an integer in"),
    (dict(queries=np.ones((3, 2)), references=np.ones((3, 2)), k=3, exclude_self=True),
     "other than the query"),
    (dict(queries=np.ones(3), references=np.ones((3, 2)), k=1), "queries must have 2 dim"),
    (dict(queries=np.ones((3, 2)), references=np.ones((3, 4)), k=1), "feature dimension"),
    (dict(queries=np.ones((2, 2)), references=np.ones((3, 2)), k=1, exclude_self=True),
     "exclude_self"),
    (dict(queries=np.ones((3, 2)), references=np.array([[np.nan, 1.0]]), k=1), "NaN"),
    (dict(queries=np.ones((3, 2), int), references=np.ones((3, 2)), k=1), "floating"),
    (dict(queries=np.ones((3, 2)), references=np.ones((3, 2)), k=1, metric="l1"), "metric"),
])
def test_bad_input(kwargs, message):
  with pytest.raises(ValueError, match=message):
    metrics.knn(**kwargs)


@pytest.mark.parametrize("ref_block", [64, 32])  # one tile holds every reference / two tiles
def test_short_rows_end_in_minus_inf_with_index_num_refs(ref_block):
  # With a label restriction a query of a small class has fewer than k candidates: the list
  # ends in -inf values with index Nr, whether or not the tiles are merged.
  rng = np.random.default_rng(3)
  x = rng.normal(size=(40, 4)).astype(np.float32)
  y = np.arange(40) % 8  # classes of 5
  ids = np.arange(40, dtype=np.int32)
  values, indices, _ = tiles.blocked_topk(
      x, x, ids, None, (y, y), k=7, metric="dot", exclude_self=True, block_size=16,
      ref_block=ref_block)
  values, indices = np.asarray(values), np.asarray(indices)
  assert np.all(np.isfinite(values[:, :4])) and np.all(values[:, 4:] == -np.inf)
  chex.assert_trees_all_equal(indices[:, 4:], np.full((40, 3), 40, np.int32))
  sims = x @ x.T
  for i in range(40):
    same = [j for j in np.argsort(-sims[i], kind="stable") if y[j] == y[i] and j != i]
    chex.assert_trees_all_equal(indices[i, :4], np.array(same, np.int32))
