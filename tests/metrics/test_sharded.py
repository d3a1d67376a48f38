"""knn and retrieval_metrics with the references sharded over a mesh axis of 8 fake CPU devices:
the merged top-k equals the single-device result and the float64 reference, and each device
holds one block."""

import chex
import jax
import numpy as np
import pytest

from dmlax import metrics
from dmlax.metrics import sharded
from tests.metrics.test_neighbours import np_knn
from tests.metrics.test_retrieval import assert_metrics_close, np_reference


@pytest.fixture(scope="module")
def mesh():
  assert jax.device_count() == 8
  return jax.make_mesh((8,), ("refs",))


def integers(seed, n, d, num_classes):
  # Exact float32 products with many ties: the merge's tie-break by index is checked too.
  rng = np.random.default_rng(seed)
  return (rng.integers(-2, 3, size=(n, d)).astype(np.float32),
          rng.integers(0, num_classes, size=n))


@pytest.mark.parametrize("metric, exclude_self", [("dot", True), ("euclidean", False),
                                                  ("cosine", True)])
def test_knn_equals_single_device_and_reference(mesh, metric, exclude_self):
  x, _ = integers(0, 301, 3, 1)  # 301 = 8 blocks of 38, the last one of 35
  if metric == "cosine":  # normalised integer rows tie in exact arithmetic only
    x = np.random.default_rng(0).normal(size=(301, 8)).astype(np.float32)
  idx, sims = metrics.knn(x, x, k=7, metric=metric, exclude_self=exclude_self, mesh=mesh,
                          axis_name="refs")
  one_idx, one_sims = metrics.knn(x, x, k=7, metric=metric, exclude_self=exclude_self)
  want_idx, want_sims = np_knn(x, x, 7, metric, exclude_self)
  np.testing.assert_array_equal(np.asarray(idx), want_idx)
  np.testing.assert_array_equal(np.asarray(idx), np.asarray(one_idx))
  chex.assert_trees_all_close(np.asarray(sims), np.asarray(one_sims), atol=1e-5)
  chex.assert_trees_all_close(np.asarray(sims), want_sims, atol=1e-4)


def test_knn_query_mode_with_shards_smaller_than_k(mesh):
  # 20 references over 8 devices: blocks of 3 (the last two with 1 and 0 valid rows), k = 9.
  q, _ = integers(1, 45, 4, 1)
  r, _ = integers(2, 20, 4, 1)
  idx, _ = metrics.knn(q, r, k=9, metric="dot", mesh=mesh, axis_name="refs")
  want_idx, _ = np_knn(q, r, 9, "dot", False)
  np.testing.assert_array_equal(np.asarray(idx), want_idx)


def test_retrieval_metrics_equal_single_device_on_a_2d_mesh():
  # The reference axis of a (data, refs) = (2, 4) mesh; blocks replicated over "data".
  mesh = jax.make_mesh((2, 4), ("data", "refs"))
  x, y = integers(3, 413, 3, 120)  # lone queries, deep first positives, ties
  got = metrics.retrieval_metrics(x, y, ks=(1, 5), metric="dot", mesh=mesh, axis_name="refs")
  assert_metrics_close(got, np_reference(x, y, (1, 5)))
  for kwargs in ({}, {"k": 2, "average": "classes"}):
    with pytest.warns(UserWarning) if kwargs else _nothing():
      got = metrics.retrieval_metrics(x, y, ks=(1, 5), metric="dot", full_map=True, mesh=mesh,
                                      axis_name="refs", **kwargs)
    with pytest.warns(UserWarning) if kwargs else _nothing():
      one = metrics.retrieval_metrics(x, y, ks=(1, 5), metric="dot", full_map=True, **kwargs)
    assert got == one, {k: (got[k], one[k]) for k in one if got[k] != one[k]}


def test_retrieval_metrics_query_mode_random_embeddings(mesh):
  rng = np.random.default_rng(4)
  x = rng.normal(size=(500, 16)).astype(np.float32)
  y = rng.integers(0, 90, size=500)
  q = rng.normal(size=(130, 16)).astype(np.float32)
  qy = rng.integers(0, 95, size=130)
  got = metrics.retrieval_metrics(x, y, ks=(1, 4), query_embeddings=q, query_labels=qy,
                                  mesh=mesh, axis_name="refs", full_map=True)
  one = metrics.retrieval_metrics(x, y, ks=(1, 4), query_embeddings=q, query_labels=qy,
                                  full_map=True)
  assert_metrics_close(got, one, atol=1e-6)
  assert_metrics_close({k: got[k] for k in one if k != "map"},
                       np_reference(x, y, (1, 4), q, qy, metric="cosine"), atol=1e-5)


def test_each_device_holds_one_block(mesh):
  # Per-device buffers of the compiled ring: the arguments are one block of queries and of
  # references (an eighth), the temporaries well under the single-device pass's.
  n, d = 4000, 64
  rng = np.random.default_rng(5)
  x = rng.normal(size=(n, d)).astype(np.float32)
  ids, labels = np.arange(n, dtype=np.int32), np.zeros(n, np.int32)
  args = [sharded._place(a, mesh, "refs", n // 8) for a in (x, ids, labels, x, labels)]
  per_device = sharded._ring.lower(
      *args, mesh=mesh, axis_name="refs", k=11, width=0, metric="cosine", exclude_self=True,
      num_refs=n, mode="topk").compile().memory_analysis()
  block = (n // 8) * d * 4
  assert per_device.argument_size_in_bytes <= 2 * block + 3 * (n // 8) * 4
  from dmlax.metrics import tiles
  bq, br = tiles.block_sizes(n, n, 11, None)
  xj = jax.numpy.asarray(x)
  single = tiles.blocked_topk.lower(xj, xj, jax.numpy.asarray(ids), k=11, metric="cosine",
                                    exclude_self=True, block_size=bq,
                                    ref_block=br).compile().memory_analysis()
  assert per_device.temp_size_in_bytes < single.temp_size_in_bytes / 4


@pytest.mark.parametrize("kwargs, message", [
    (dict(mesh="refs", axis_name="refs"), "jax.sharding.Mesh"),
    (dict(axis_name="model"), "not an axis"),
    (dict(axis_name="refs", screen=True), "screen=True is not available"),
])
def test_bad_input(mesh, kwargs, message):
  kwargs = {"mesh": mesh, **kwargs}
  x = np.eye(4, dtype=np.float32)
  with pytest.raises(ValueError, match=message):
    metrics.knn(x, x, k=1, **kwargs)
  with pytest.raises(ValueError, match=message):
    metrics.retrieval_metrics(x, np.array([0, 0, 1, 1]), ks=(1,), **kwargs)


class _nothing:
  def __enter__(self):
    return self

  def __exit__(self, *exc):
    return False
