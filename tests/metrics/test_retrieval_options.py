"""retrieval_metrics' options: masked (padded) rows, a fixed k for the MAP@R-style metrics,
per-class averaging and full-ranking mean average precision, against a float64 NumPy reference
and pytorch-metric-learning's AccuracyCalculator."""

import chex
import numpy as np
import pytest

from dmlax import metrics
from tests.metrics.test_retrieval import assert_metrics_close, np_reference

NAMES = ("precision@1", "map@r", "r_precision", "mrr", "map")


def np_ranked(refs, ref_labels, queries=None, query_labels=None):
  """Per non-lone query: its relevance along the full float64 cosine ranking (stable sort),
  its label, and R."""
  self_mode = queries is None
  if self_mode:
    queries, query_labels = refs, ref_labels
  q = np.asarray(queries, np.float64)
  r = np.asarray(refs, np.float64)
  q = q / np.linalg.norm(q, axis=1, keepdims=True)
  r = r / np.linalg.norm(r, axis=1, keepdims=True)
  sims = q @ r.T
  rows = []
  for i in range(len(q)):
    order = np.argsort(-sims[i], kind="stable")
    if self_mode:
      order = order[order != i]
    rel = (np.asarray(ref_labels)[order] == query_labels[i]).astype(float)
    if rel.sum() > 0:
      rows.append((rel, query_labels[i], int(rel.sum())))
  return rows


def np_options(rows, k=None, average="queries"):
  """The definitions with a fixed k (PML's AccuracyCalculator semantics) or the whole ranking."""
  values = {name: [] for name in NAMES}
  labels = []
  for rel, label, big_r in rows:
    depth = len(rel) if k is None else k
    rel_k = rel[:depth]
    prec = np.cumsum(rel_k) / np.arange(1, depth + 1)
    r_cut = min(big_r, depth)
    values["precision@1"].append(rel[0])
    values["map@r"].append(np.sum((prec * rel_k)[:r_cut]) / big_r)
    values["r_precision"].append(rel_k[:r_cut].sum() / r_cut)
    values["mrr"].append(1.0 / (np.argmax(rel_k) + 1) if rel_k.any() else 0.0)
    values["map"].append(np.sum(prec * rel_k) / big_r)
    labels.append(label)
  labels = np.asarray(labels)
  if average == "queries":
    return {name: float(np.mean(v)) for name, v in values.items()}
  return {name: float(np.mean([np.mean(np.asarray(v)[labels == c]) for c in np.unique(labels)]))
          for name, v in values.items()}


def noisy_set(seed, n, d, num_classes):
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(num_classes, d))
  y = rng.integers(0, num_classes, size=n)
  x = (centres[y] + 1.5 * rng.normal(size=(n, d))).astype(np.float32)
  return x, y


def test_mask_leaves_padding_out_as_queries_and_references():
  # Padding rows are copies of real items (so they would be retrieved first) under label -1.
  x, y = noisy_set(0, 300, 12, 40)
  q, qy = noisy_set(1, 80, 12, 45)
  rng = np.random.default_rng(2)
  pad = rng.integers(0, 300, size=25)
  xp, yp = np.concatenate([x, x[pad]]), np.concatenate([y, -np.ones(25, int)])
  keep = np.arange(325) < 300
  order = rng.permutation(325)  # padding spread through the array, not only at the end
  xp, yp, keep = xp[order], yp[order], keep[order]
  got = metrics.retrieval_metrics(xp, yp, ks=(1, 4), mask=keep, full_map=True)
  assert_metrics_close(got, metrics.retrieval_metrics(x[order[keep]], y[order[keep]], ks=(1, 4),
                                                      full_map=True), atol=1e-6)
  assert_metrics_close(
      {n: got[n] for n in ("recall@1", "map@r", "mrr", "num_queries")},
      {n: v for n, v in np_reference(x, y, (1, 4), metric="cosine").items()
       if n in ("recall@1", "map@r", "mrr", "num_queries")}, atol=1e-6)
  qp, qyp = np.concatenate([q, q[:10]]), np.concatenate([qy, -np.ones(10, int)])
  got = metrics.retrieval_metrics(xp, yp, ks=(1, 4), mask=keep, query_embeddings=qp,
                                  query_labels=qyp, query_mask=np.arange(90) < 80)
  assert_metrics_close(got, np_reference(x, y, (1, 4), q, qy, metric="cosine"), atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(labels=np.array([0, 0, 1, -1])), "negative labels.*pass mask="),
    (dict(labels=np.array([0, 0, 1, 1]), mask=np.array([1, 1, 1, 0])), "mask must be a boolean"),
    (dict(labels=np.array([0, 0, 1, 1]), mask=np.array([True, False])), r"shape \(4,\)"),
    (dict(labels=np.array([0, 0, 1, 1]), mask=np.zeros(4, bool)), "no embeddings"),
    (dict(labels=np.array([0, 0, 1, 1]), query_mask=np.ones(4, bool)), "query_mask needs"),
    (dict(labels=np.array([0, 0, 1, 1]), k=4), "k must be None or an integer"),
    (dict(labels=np.array([0, 0, 1, 1]), average="labels"), "average"),
])
def test_bad_input(kwargs, message):
  x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]], np.float32)
  with pytest.raises(ValueError, match=message):
    metrics.retrieval_metrics(x, ks=(1,), **kwargs)


def test_padding_label_in_queries_needs_query_mask():
  x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]], np.float32)
  with pytest.raises(ValueError, match="query_labels contains negative labels.*query_mask="):
    metrics.retrieval_metrics(x, np.array([0, 0, 1, 1]), ks=(1,), query_embeddings=x[:2],
                              query_labels=np.array([0, -1]))


@pytest.mark.parametrize("mode", ["self", "query"])
def test_fixed_k_class_average_and_full_map_match_float64_reference(mode):
  x, y = noisy_set(3, 260, 10, 30)  # classes of ~9: many positives past any short list
  q, qy = noisy_set(4, 70, 10, 33) if mode == "query" else (None, None)
  rows = np_ranked(x, y, q, qy)
  kw = {} if mode == "self" else dict(query_embeddings=q, query_labels=qy)
  for k in (None, 3, 20):
    for average in ("queries", "classes"):
      if k is not None and k < max(r for _, _, r in rows):
        with pytest.warns(UserWarning, match=f"k={k} is smaller"):
          got = metrics.retrieval_metrics(x, y, ks=(1,), k=k, average=average, full_map=True,
                                          **kw)
      else:
        got = metrics.retrieval_metrics(x, y, ks=(1,), k=k, average=average, full_map=True, **kw)
      want = np_options(rows, k, average)
      for name in NAMES:
        chex.assert_trees_all_close(got[name], want[name], atol=2e-6,
                                    custom_message=f"{name} k={k} {average}")


def test_full_map_screened_equals_float32_pass():
  x, y = noisy_set(5, 700, 24, 70)
  screened = metrics.retrieval_metrics(x, y, ks=(1,), full_map=True, screen=True)
  plain = metrics.retrieval_metrics(x, y, ks=(1,), full_map=True, screen=False)
  assert screened == plain
  chex.assert_trees_all_close(plain["map"], np_options(np_ranked(x, y))["map"], atol=2e-6)


def test_pytorch_metric_learning_accuracy_calculator_options():
  torch = pytest.importorskip("torch", reason="parity needs torch==2.13.0 (DMLAX_PARITY=1)")
  pml = pytest.importorskip(
      "pytorch_metric_learning.utils.accuracy_calculator",
      reason="parity needs pytorch-metric-learning==2.9.0 (DMLAX_PARITY=1)")
  from pytorch_metric_learning.distances import CosineSimilarity
  from pytorch_metric_learning.utils.inference import CustomKNN

  x, y = noisy_set(6, 300, 12, 35)
  y[:2] = [1000, 1001]  # lone queries
  q, qy = noisy_set(7, 90, 12, 38)
  ours_to_pml = {"precision@1": "precision_at_1", "map@r": "mean_average_precision_at_r",
                 "r_precision": "r_precision", "mrr": "mean_reciprocal_rank",
                 "map": "mean_average_precision"}
  for k in (None, 4):
    for avg_of_avgs in (False, True):
      calc = pml.AccuracyCalculator(
          include=tuple(ours_to_pml.values()), k=k, avg_of_avgs=avg_of_avgs,
          device=torch.device("cpu"), knn_func=CustomKNN(CosineSimilarity()))
      average = "classes" if avg_of_avgs else "queries"
      for kwargs, want in [({}, calc.get_accuracy(x, y)),
                           ({"query_embeddings": q, "query_labels": qy},
                            calc.get_accuracy(q, qy, x, y))]:
        with pytest.warns(UserWarning) if k else _no_warning():
          got = metrics.retrieval_metrics(x, y, ks=(1,), k=k, average=average, full_map=True,
                                          **kwargs)
        for ours, theirs in ours_to_pml.items():
          chex.assert_trees_all_close(got[ours], want[theirs], atol=1e-6,
                                      custom_message=f"{ours} k={k} avg_of_avgs={avg_of_avgs}")


class _no_warning:
  def __enter__(self):
    import warnings
    self._catch = warnings.catch_warnings()
    self._catch.__enter__()
    warnings.simplefilter("error")

  def __exit__(self, *exc):
    return self._catch.__exit__(*exc)
