"""The bfloat16 screen of the neighbour search (`screen.screened_topk`): its error bound,
its certificate, and that knn / retrieval_metrics give the same result with and without it."""

import chex
import jax.numpy as jnp
import numpy as np
import pytest

from dmlax import metrics
from dmlax.metrics import neighbours, screen
from tests.metrics.test_neighbours import np_knn
from tests.metrics.test_retrieval import assert_metrics_close, np_reference


def clustered(seed, n, d, num_classes, noise):
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(num_classes, d))
  y = rng.integers(0, num_classes, size=n)
  x = centres[y] + noise * rng.normal(size=(n, d))
  return x.astype(np.float32), y


def test_bound_covers_every_pair():
  # |s16 - s| <= delta for every pair, s16 the bfloat16 product accumulated in float32, s the
  # exact (float64) product of the float32 vectors: here the vectors put many components
  # right below the bfloat16 rounding midpoints, where the rounding error is largest.
  rng = np.random.default_rng(0)
  base = rng.normal(size=(300, 64)).astype(np.float32)
  b16 = np.asarray(jnp.asarray(base).astype(jnp.bfloat16).astype(jnp.float32))
  ulp = np.abs(b16) * 2.0**-7
  x = (b16 + 0.499 * ulp * rng.choice([-1, 1], size=base.shape)).astype(np.float32)
  x[::3] = base[::3]
  q, r = x[:100], x[100:].copy()
  # One reference along the rounding error of query 0: there |e_x.y| = |e_x||y|, the
  # Cauchy-Schwarz term of the bound is reached.
  e0 = x[0].astype(np.float64) - b16[0]
  r[0] = (e0 / np.linalg.norm(e0) * np.linalg.norm(r, axis=1).max()).astype(np.float32)
  q16, r16 = (jnp.asarray(a).astype(jnp.bfloat16) for a in (q, r))
  s16 = np.asarray(jnp.einsum("qd,rd->qr", q16, r16, preferred_element_type=jnp.float32))
  exact = q.astype(np.float64) @ r.astype(np.float64).T
  stats = screen._reference_stats(jnp.asarray(r), r16)
  delta = np.asarray(screen._screen_delta(jnp.asarray(q), q16, stats))
  err = np.abs(s16 - exact)
  assert np.all(err <= delta[:, None]), float(np.max(err - delta[:, None]))
  # ... and it is not loose where the error is largest.
  assert err[0, 0] > 0.3 * delta[0], (err[0, 0], delta[0])


@pytest.mark.parametrize("metric, exclude_self", [("cosine", True), ("dot", False),
                                                  ("euclidean", True)])
def test_knn_screened_equals_float32_pass_and_reference(metric, exclude_self):
  x, _ = clustered(1, 700, 24, 60, 0.6)
  got_idx, got_sims = metrics.knn(x, x, k=9, metric=metric, exclude_self=exclude_self,
                                  screen=True)
  plain_idx, plain_sims = metrics.knn(x, x, k=9, metric=metric, exclude_self=exclude_self,
                                      screen=False)
  want_idx, want_sims = np_knn(x, x, 9, metric, exclude_self)
  np.testing.assert_array_equal(np.asarray(got_idx), want_idx)
  np.testing.assert_array_equal(np.asarray(got_idx), np.asarray(plain_idx))
  chex.assert_trees_all_close(np.asarray(got_sims), want_sims, atol=2e-5, rtol=1e-5)
  chex.assert_trees_all_close(np.asarray(got_sims), np.asarray(plain_sims), atol=2e-5,
                              rtol=1e-5)


def test_screen_certifies_separated_rows_and_refuses_near_ties():
  x, _ = clustered(2, 500, 16, 40, 0.5)
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  xj = jnp.asarray(x)
  ids = jnp.arange(500, dtype=jnp.int32)
  _, _, complete, _ = screen.screened_topk(xj, xj, ids, k=5, exclude_self=True)
  assert np.mean(np.asarray(complete)) > 0.9
  # Every item within 1e-4 of one point: all similarities are within the bfloat16 error of
  # each other, so no row can be certified and every one is searched again in float32.
  rng = np.random.default_rng(3)
  near = (x[0] + 1e-4 * rng.normal(size=(300, 16))).astype(np.float32)
  near /= np.linalg.norm(near, axis=1, keepdims=True)
  nj = jnp.asarray(near)
  _, _, complete, _ = screen.screened_topk(nj, nj, ids[:300], k=5, exclude_self=True)
  assert not np.any(np.asarray(complete))
  got_idx, got_sims = metrics.knn(near, near, k=5, exclude_self=True, screen=True)
  plain_idx, plain_sims = metrics.knn(near, near, k=5, exclude_self=True, screen=False)
  np.testing.assert_array_equal(np.asarray(got_idx), np.asarray(plain_idx))
  chex.assert_trees_all_close(got_sims, plain_sims)


def test_screened_ties_go_to_the_lower_index():
  # Small integers are exact in bfloat16 and float32: many exact ties, and duplicates of each
  # query (found by index, not excluded with it).
  rng = np.random.default_rng(4)
  x = rng.integers(-2, 3, size=(400, 4)).astype(np.float32)
  got_idx, _ = metrics.knn(x, x, k=6, metric="dot", exclude_self=True, screen=True)
  want_idx, _ = np_knn(x, x, 6, "dot", True)
  np.testing.assert_array_equal(np.asarray(got_idx), want_idx)


def test_retrieval_metrics_screened_equals_reference():
  # (A seed whose float32 rankings have no near-ties that float64 orders differently.)
  x, y = clustered(9, 600, 20, 90, 0.8)
  q, qy = clustered(6, 150, 20, 90, 0.8)
  got = metrics.retrieval_metrics(x, y, ks=(1, 4), metric="cosine", screen=True)
  assert_metrics_close(got, np_reference(x, y, (1, 4), metric="cosine"))
  got = metrics.retrieval_metrics(x, y, ks=(1, 4), query_embeddings=q, query_labels=qy,
                                  metric="cosine", screen=True)
  assert_metrics_close(got, np_reference(x, y, (1, 4), q, qy, metric="cosine"))


def test_deep_reciprocal_ranks_from_the_ranked_candidates(monkeypatch):
  # Noisy classes: many queries have no positive among their K neighbours. After the screen,
  # those whose first positive is a candidate above the row's ceiling get their rank from the
  # ranked candidates; only the rest go to the second pass, and the MRR is still exact.
  from dmlax.metrics import retrieval
  x, y = clustered(10, 800, 24, 160, 2.0)
  second_pass = []
  original = retrieval._positive_counts

  def counting(q, *args, **kwargs):
    second_pass.append(q.shape[0])
    return original(q, *args, **kwargs)

  monkeypatch.setattr(retrieval, "_positive_counts", counting)
  got = metrics.retrieval_metrics(x, y, ks=(1, 2), metric="cosine", screen=True)
  want = np_reference(x, y, (1, 2), metric="cosine")
  assert_metrics_close(got, want)
  _, idx = neighbours.exact_topk(
      neighbours.prepare(x, "cosine"), neighbours.prepare(x, "cosine"),
      np.arange(800, dtype=np.int32), k=int(np.bincount(y).max() - 1), metric="cosine",
      exclude_self=True, screen=False)
  not_lone = np.bincount(y)[y] > 1
  missed = int(np.sum(~np.any(y[np.asarray(idx)] == y[:, None], axis=1) & not_lone))
  assert missed > 20
  assert sum(second_pass) < missed  # some ranks came from the candidates ...
  assert sum(second_pass) > 0       # ... and not all could


def with_copies(seed, n=600, d=32, num_classes=40, copies=150):
  """Clustered items, `copies` of them overwritten by exact copies of others under random
  labels (exact duplicates with different labels)."""
  rng = np.random.default_rng(seed)
  x, y = clustered(seed, n, d, num_classes, 0.7)
  src = rng.integers(0, n, size=copies)
  dst = rng.choice(n, size=copies, replace=False)
  x[dst] = x[src]
  y[dst] = rng.integers(0, num_classes, size=copies)
  return x, y


@pytest.mark.parametrize("seed", [0, 4])
def test_exact_copies_with_different_labels_screened_equals_float32_pass(seed):
  # Copies tie exactly and rank by index with and without the screen; every metric is the
  # same bit for bit, and equal to the float64 reference (a stable sort).
  x, y = with_copies(seed)
  got_idx, got_sims = metrics.knn(x, x, k=8, exclude_self=True, screen=True)
  plain_idx, plain_sims = metrics.knn(x, x, k=8, exclude_self=True, screen=False)
  want_idx, _ = np_knn(x, x, 8, "cosine", True)
  np.testing.assert_array_equal(np.asarray(plain_idx), want_idx)
  np.testing.assert_array_equal(np.asarray(got_idx), want_idx)
  chex.assert_trees_all_close(got_sims, plain_sims, atol=2e-6)
  screened = metrics.retrieval_metrics(x, y, ks=(1, 4), screen=True)
  plain = metrics.retrieval_metrics(x, y, ks=(1, 4), screen=False)
  assert screened == plain, {k: (screened[k], plain[k]) for k in plain if screened[k] != plain[k]}
  assert_metrics_close(plain, np_reference(x, y, (1, 4), metric="cosine"), atol=1e-6)


def test_copies_found_exactly():
  x = np.array([[1.0, 2.0], [0.5, 0.5], [1.0, 2.0], [-0.0, 1.0], [0.0, 1.0], [1.0, 2.0]],
               np.float32)
  np.testing.assert_array_equal(screen.duplicate_representatives(x), [0, 1, 0, 3, 3, 0])
  assert screen.duplicate_representatives(x[:2]) is None
