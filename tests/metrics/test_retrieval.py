"""retrieval_metrics against hand-planted rankings, the MPA paper's Table 3, a float64 NumPy
reference written from the definitions, and pytorch-metric-learning's AccuracyCalculator."""

import chex
import numpy as np
import pytest

from dmlax import metrics
from dmlax.metrics import tiles


def np_reference(refs, ref_labels, ks, queries=None, query_labels=None, metric="dot"):
  """Every metric from the full float64 ranking (stable sort: ties to the lower index)."""
  self_mode = queries is None
  if self_mode:
    queries, query_labels = refs, ref_labels
  q = np.asarray(queries, np.float64)
  r = np.asarray(refs, np.float64)
  if metric == "cosine":
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    r = r / np.linalg.norm(r, axis=1, keepdims=True)
  sims = q @ r.T
  values = {f"{m}@{k}": [] for k in ks for m in ("recall", "precision", "ndcg", "map")}
  values.update({"map@r": [], "r_precision": [], "mrr": []})
  lone = 0
  for i in range(len(q)):
    order = np.argsort(-sims[i], kind="stable")
    if self_mode:
      order = order[order != i]
    rel = (np.asarray(ref_labels)[order] == query_labels[i]).astype(float)
    big_r = int(rel.sum())
    if big_r == 0:
      lone += 1
      continue
    prec = np.cumsum(rel) / np.arange(1, len(rel) + 1)
    for k in ks:
      values[f"recall@{k}"].append(float(rel[:k].sum() > 0))
      values[f"precision@{k}"].append(rel[:k].sum() / k)
      dcg = sum((2 ** rel[j] - 1) / np.log2(j + 2) for j in range(k))
      best = sum(1 / np.log2(j + 2) for j in range(min(k, big_r)))
      values[f"ndcg@{k}"].append(dcg / best)
      values[f"map@{k}"].append(sum(prec[j] * rel[j] for j in range(k)) / k)
    values["map@r"].append(sum(prec[j] * rel[j] for j in range(big_r)) / big_r)
    values["r_precision"].append(rel[:big_r].sum() / big_r)
    values["mrr"].append(1.0 / (np.argmax(rel) + 1))
  out = {name: float(np.mean(v)) if v else float("nan") for name, v in values.items()}
  out["num_queries"] = len(q) - lone
  out["num_lone_queries"] = lone
  return out


def assert_metrics_close(got, want, atol=1e-5):
  assert set(got) == set(want), set(got) ^ set(want)
  for name in want:
    chex.assert_trees_all_close(got[name], want[name], atol=atol, custom_message=name)


# MPA paper (multi_proxy_anchor_family_2023), Table 3: four positives, top-10 search results.
TABLE3 = [
    # results, Recall@10, Precision@10, MAP@R, MAP@10, nDCG@10
    ([1, 0, 0, 0, 0, 0, 0, 0, 0, 0], 100, 10, 25.0, 10.0, 39.0),
    ([1, 0, 0, 0, 0, 0, 0, 0, 0, 1], 100, 20, 25.0, 12.0, 50.3),
    ([1, 0, 1, 0, 0, 0, 0, 0, 0, 0], 100, 20, 41.7, 16.7, 58.6),
    ([1, 0, 1, 0, 0, 0, 1, 0, 0, 1], 100, 40, 41.7, 25.0, 82.9),
    ([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], 100, 40, 100.0, 40.0, 100.0),
]


@pytest.mark.parametrize("row", TABLE3, ids=lambda row: "".join(map(str, row[0])))
def test_mpa_table3(row):
  results, recall, precision, map_r, map_10, ndcg = row
  # Gallery ranked by angle from the query; the positives not in the top 10 come right after.
  relevant = results + [1] * (4 - sum(results))
  relevant += [0] * (16 - len(relevant))
  angles = np.linspace(0.1, 1.4, len(relevant))
  gallery = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
  got = metrics.retrieval_metrics(
      gallery, np.array([0 if r else 1 for r in relevant]), ks=(10,),
      query_embeddings=np.array([[1.0, 0.0]], np.float32), query_labels=np.array([0]))
  printed = {"recall@10": recall, "precision@10": precision, "map@r": map_r, "map@10": map_10,
             "ndcg@10": ndcg}
  for name, value in printed.items():
    assert round(100 * got[name], 1) == value, (name, got[name])


def test_planted_clusters_hand_values():
  # Two tight classes of three along the axes, one lone item: each query's two class-mates are
  # its two nearest neighbours.
  x = np.array([[1, 0, 0], [0.99, 0.01, 0], [0.98, 0.0, 0.02],
                [0, 1, 0], [0.01, 0.99, 0], [0.0, 0.98, 0.02],
                [0, 0, 1]], np.float32)
  y = np.array([5, 5, 5, 9, 9, 9, 2])
  got = metrics.retrieval_metrics(x, y, ks=(1, 2, 4))
  want = {"recall@1": 1, "recall@2": 1, "recall@4": 1, "precision@1": 1, "precision@2": 1,
          "precision@4": 0.5, "ndcg@1": 1, "ndcg@2": 1, "ndcg@4": 1,
          "map@1": 1, "map@2": 1, "map@4": 0.5, "map@r": 1, "r_precision": 1, "mrr": 1,
          "num_queries": 6, "num_lone_queries": 1}
  assert_metrics_close(got, want)


def test_planted_reversed_ranking_hand_values():
  # On a line, the query's positives are first its nearest two of five references, then its
  # farthest two.
  refs = np.array([[1, 0.0], [1, 0.1], [1, 0.2], [1, 0.3], [1, 0.4]], np.float32)
  got = metrics.retrieval_metrics(
      refs, np.array([1, 1, 1, 0, 0]), ks=(1, 3), query_embeddings=np.array([[1, 0.5]]),
      query_labels=np.array([0]), metric="euclidean")
  want = {"recall@1": 1, "precision@1": 1, "ndcg@1": 1, "map@1": 1,
          "recall@3": 1, "precision@3": 2 / 3, "ndcg@3": 1, "map@3": 2 / 3,
          "map@r": 1, "r_precision": 1, "mrr": 1, "num_queries": 1, "num_lone_queries": 0}
  assert_metrics_close(got, want)
  got = metrics.retrieval_metrics(
      refs, np.array([0, 0, 1, 1, 1]), ks=(1, 3), query_embeddings=np.array([[1, 0.5]]),
      query_labels=np.array([0]), metric="euclidean")
  dcg3 = 0.0
  best3 = 1 + 1 / np.log2(3)
  want = {"recall@1": 0, "precision@1": 0, "ndcg@1": 0, "map@1": 0,
          "recall@3": 0, "precision@3": 0, "ndcg@3": dcg3 / best3, "map@3": 0,
          "map@r": 0, "r_precision": 0, "mrr": 1 / 4, "num_queries": 1, "num_lone_queries": 0}
  assert_metrics_close(got, want)


@pytest.fixture
def small_blocks(monkeypatch):
  """Tiles small enough that neither queries nor references divide into whole blocks."""
  monkeypatch.setattr(tiles, "_MAX_REF_BLOCK", 160)
  monkeypatch.setattr(tiles, "_TILE_ENTRIES", 160 * 48)


def integer_set(seed, n, d, num_classes):
  rng = np.random.default_rng(seed)
  # Small integers: every dot product is exact in float32, and ties are frequent, so the
  # comparison with the stable float64 ranking also checks the tie-break by index.
  x = rng.integers(-2, 3, size=(n, d)).astype(np.float32)
  y = rng.integers(0, num_classes, size=n)
  return x, y


@pytest.mark.parametrize("blocks", ["default", "small"])
def test_self_mode_matches_reference_with_ties_and_lone_queries(blocks, request):
  if blocks == "small":
    request.getfixturevalue("small_blocks")
  x, y = integer_set(0, 413, 3, 120)
  ks = (1, 2, 5, 16)
  got = metrics.retrieval_metrics(x, y, ks=ks, metric="dot")
  want = np_reference(x, y, ks)
  assert want["num_lone_queries"] > 0
  assert_metrics_close(got, want)


def test_query_mode_matches_reference(small_blocks):
  x, y = integer_set(1, 350, 3, 60)
  q, qy = integer_set(2, 97, 3, 70)  # labels 60..69 have no reference: lone queries
  ks = (1, 4, 10)
  got = metrics.retrieval_metrics(x, y, ks=ks, query_embeddings=q, query_labels=qy, metric="dot")
  want = np_reference(x, y, ks, q, qy)
  assert want["num_lone_queries"] > 0
  assert_metrics_close(got, want)


def test_cosine_matches_reference_and_deep_reciprocal_rank():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(300, 16)).astype(np.float32)
  y = rng.integers(0, 100, size=300)  # ~3 per class: first positives are often past rank 10
  got = metrics.retrieval_metrics(x, y, ks=(1, 10), metric="cosine")
  want = np_reference(x, y, (1, 10), metric="cosine")
  assert want["recall@10"] < 0.5
  assert_metrics_close(got, want)


def test_duplicates_exclude_self_by_index():
  # Every item has an exact duplicate of the same label and nothing else of it: each query's
  # best neighbour is that duplicate (similarity tied with itself, excluded by index).
  rng = np.random.default_rng(4)
  base = rng.normal(size=(20, 8)).astype(np.float32)
  x = np.concatenate([base, base])
  y = np.concatenate([np.arange(20), np.arange(20)])
  got = metrics.retrieval_metrics(x, y, ks=(1,))
  for name in ("recall@1", "precision@1", "map@r", "r_precision", "mrr", "ndcg@1"):
    assert got[name] == 1.0, name
  idx, _ = metrics.knn(x, x, k=1, exclude_self=True)
  np.testing.assert_array_equal(np.asarray(idx)[:, 0], np.concatenate([np.arange(20, 40),
                                                                      np.arange(20)]))


def test_all_queries_lone_gives_nan():
  got = metrics.retrieval_metrics(np.eye(3, dtype=np.float32), np.array([0, 1, 2]), ks=(1,))
  assert got["num_queries"] == 0 and got["num_lone_queries"] == 3
  assert np.isnan(got["map@r"]) and np.isnan(got["recall@1"])


def test_pytorch_metric_learning_parity():
  torch = pytest.importorskip("torch", reason="parity needs torch==2.13.0 (DMLAX_PARITY=1)")
  pml = pytest.importorskip(
      "pytorch_metric_learning.utils.accuracy_calculator",
      reason="parity needs pytorch-metric-learning==2.9.0 (DMLAX_PARITY=1)")
  from pytorch_metric_learning.distances import CosineSimilarity
  from pytorch_metric_learning.utils.inference import CustomKNN

  rng = np.random.default_rng(5)
  x = rng.normal(size=(400, 12)).astype(np.float32)
  y = rng.integers(0, 90, size=400)
  y[:3] = [1000, 1001, 1002]  # lone queries
  q = rng.normal(size=(150, 12)).astype(np.float32)
  qy = rng.integers(0, 95, size=150)
  calc = pml.AccuracyCalculator(
      include=("precision_at_1", "r_precision", "mean_average_precision_at_r",
               "mean_reciprocal_rank"),
      k=None, device=torch.device("cpu"), knn_func=CustomKNN(CosineSimilarity()))
  for kwargs, want in [
      ({}, calc.get_accuracy(x, y)),
      ({"query_embeddings": q, "query_labels": qy}, calc.get_accuracy(q, qy, x, y))]:
    got = metrics.retrieval_metrics(x, y, ks=(1,), **kwargs)
    for ours, theirs in [("precision@1", "precision_at_1"), ("r_precision", "r_precision"),
                         ("map@r", "mean_average_precision_at_r"),
                         ("mrr", "mean_reciprocal_rank")]:
      chex.assert_trees_all_close(got[ours], want[theirs], atol=1e-6, custom_message=ours)


@pytest.mark.parametrize("kwargs, message", [
    (dict(embeddings=np.ones((5, 2)), labels=np.zeros(4, int)), "labels has 4 entries"),
    (dict(embeddings=np.ones(5), labels=np.zeros(5, int)), "embeddings must have 2 dim"),
    (dict(embeddings=np.ones((5, 2)), labels=np.zeros(5, int), ks=(1, 5)), "k=5, larger"),
    (dict(embeddings=np.array([[1.0, np.nan], [1, 0]]), labels=np.zeros(2, int)), "NaN"),
    (dict(embeddings=np.ones((5, 2)), labels=np.zeros(5, int), query_embeddings=np.ones((2, 2))),
     "given together"),
    (dict(embeddings=np.ones((5, 2)), labels=np.zeros(5, int), query_embeddings=np.ones((2, 3)),
          query_labels=np.zeros(2, int)), "dimension"),
    (dict(embeddings=np.ones((5, 2)), labels=np.zeros(5, int), ks=(0,)), "positive integers"),
    (dict(embeddings=np.ones((5, 2)), labels=np.zeros(5, int), metric="l1"), "metric"),
])
def test_bad_input(kwargs, message):
  with pytest.raises(ValueError, match=message):
    metrics.retrieval_metrics(**kwargs)
