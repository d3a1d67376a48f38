"""Every ranking metric of the retrieval protocol (SPEC.md section 6) from one blocked pass.

One jitted pass over tiles of the similarity matrix (`neighbours.exact_topk`: the float32
pass, or for large searches a bfloat16 screen with float32 rescoring, same result) yields, per
query, its K nearest references, K = max(max(ks), largest R), R being the number of
same-label references of the query (itself excluded): enough for Recall/Precision/nDCG/MAP at
every k and for MAP@R and R-precision. The reciprocal rank is exact at any depth: for the
queries with no positive among their K neighbours (every positive ranks past K), a second pass
over just those queries finds their best positive and counts the other-label references ranked
before it.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from dmlax.checks import check_in, check_labels
from dmlax.metrics.neighbours import exact_topk, prepare_references
from dmlax.metrics.tiles import (METRICS, Beat, block_sizes, blocked_topk, check_embeddings,
                                 prepare)

def _check_ks(ks) -> tuple[int, ...]:
  if isinstance(ks, (int, np.integer)):
    ks = (ks,)
  ks = tuple(ks)
  if not ks or any(not isinstance(k, (int, np.integer)) or k < 1 for k in ks):
    raise ValueError(f"ks must be a non-empty sequence of positive integers, got {ks!r}")
  return tuple(sorted(set(int(k) for k in ks)))


@functools.partial(jax.jit, static_argnames=("ks",))
def _scores(indices, before, ref_labels, query_labels, num_relevant, *, ks):
  """Mean of each metric over the queries from their top-K neighbour indices (Nq, K)."""
  depth = indices.shape[1]
  match = (ref_labels[indices] == query_labels[:, None]).astype(jnp.float32)
  rank = jnp.arange(1, depth + 1, dtype=jnp.float32)
  hits = jnp.cumsum(match, axis=1)
  precision_at_hit = hits * match / rank
  discount = 1.0 / jnp.log2(rank + 1.0)
  ideal = jnp.cumsum(discount)
  r = num_relevant.astype(jnp.float32)
  out = {}
  for k in ks:
    out[f"recall@{k}"] = jnp.mean(hits[:, k - 1] > 0)
    out[f"precision@{k}"] = jnp.mean(hits[:, k - 1] / k)
    dcg = jnp.sum(match[:, :k] * discount[:k], axis=1)
    out[f"ndcg@{k}"] = jnp.mean(dcg / ideal[jnp.minimum(num_relevant, k) - 1])
    out[f"map@{k}"] = jnp.mean(jnp.sum(precision_at_hit[:, :k], axis=1) / k)
  within_r = rank[None, :] <= r[:, None]
  out["map@r"] = jnp.mean(jnp.sum(precision_at_hit * within_r, axis=1) / r)
  out["r_precision"] = jnp.mean(jnp.sum(match * within_r, axis=1) / r)
  found = hits[:, -1] > 0
  first = jnp.argmax(match, axis=1) + 1
  # Past the list, the pass's count of other-label references ranked before the best positive
  # gives the rank; at least depth + 1, which float rounding of near-ties cannot undercut.
  deep = jnp.maximum(before + 1, depth + 1)
  out["mrr"] = jnp.mean(1.0 / jnp.where(found, first, deep).astype(jnp.float32))
  return out


def _rank_of_best_positive(q, r, query_ids, q_labels, ref_labels, *, metric,
                           self_mode) -> np.ndarray:
  """Number of other-label references ranked before each query's best positive.

  Two float32 passes with the same tiles: the best positive (largest similarity among the
  query's label, lower index on ties), then the count against it. Both compare values of the
  same tile products, so an exact tie (a copy of the positive under another label) is decided
  by index and not by the rounding of two different computations.
  """
  ids, q_lab, r_lab = (jnp.asarray(a) for a in (query_ids, q_labels, ref_labels))
  bq, br = block_sizes(len(query_ids), r.shape[0], 1, None)
  best, best_index, _ = blocked_topk(q, r, ids, None, (q_lab, r_lab), k=1, metric=metric,
                                     exclude_self=self_mode, block_size=bq, ref_block=br)
  _, _, before = blocked_topk(q, r, ids, Beat(best[:, 0], best_index[:, 0], q_lab, r_lab), k=0,
                              metric=metric, exclude_self=self_mode, block_size=bq, ref_block=br)
  return np.asarray(before)


def retrieval_metrics(embeddings: ArrayLike, labels: ArrayLike, *,
                      ks: Sequence[int] = (1, 2, 4, 8),
                      query_embeddings: ArrayLike | None = None,
                      query_labels: ArrayLike | None = None,
                      metric: str = "cosine",
                      screen: bool | None = None) -> dict[str, float]:
  """Exact retrieval metrics from one blocked pass over the similarity matrix.

  Without queries every item queries all the others (CUB, Cars, SOP: itself excluded by
  index); with `query_embeddings`/`query_labels` the queries search `embeddings` (In-shop).
  For a query, `r_i = 1` if its i-th neighbour has its label, `R` is its number of same-label
  references. Queries with `R = 0` ("lone") are left out of every mean and counted. All values
  are fractions in [0, 1] (papers print them x100):

    recall@k     = [sum_{i<=k} r_i > 0]                      (SPEC.md section 6)
    precision@k  = sum_{i<=k} r_i / k
    ndcg@k       = DCG(k) / DCG_best(k), DCG(k) = sum_{i<=k} (2^r_i - 1) / log2(i + 1), the best
                   ranking having min(k, R) positives first   (MPA paper eqs. 19-20)
    map@k        = sum_{i<=k} P(i) r_i / k, P(i) = sum_{j<=i} r_j / i   (MPA paper Table 3)
    map@r        = sum_{i<=R} P(i) r_i / R                   (Musgrave et al. 2020)
    r_precision  = sum_{i<=R} r_i / R
    mrr          = 1 / rank of the first same-label neighbour, over the whole ranking

  `map@r`, `r_precision`, `precision@1` and (with `k=None`) `mrr` equal those of
  pytorch-metric-learning's `AccuracyCalculator` (avg_of_avgs=False, lone queries excluded);
  `map@k` and `ndcg@k` reproduce the MPA paper's Table 3.

  Args:
    embeddings: (N, D) floating, the references (and the queries when none are given).
    labels: (N,) integer labels of `embeddings`.
    ks: the cut-offs k of recall/precision/ndcg/map@k.
    query_embeddings: optional (Nq, D) separate queries.
    query_labels: (Nq,) labels of `query_embeddings`.
    metric: "cosine" (default), "dot" or "euclidean", as in `knn`.
    screen: bfloat16 screening of the neighbour search, as in `knn` (the values do not
      depend on it).

  Returns:
    A dict of floats: `recall@k`, `precision@k`, `ndcg@k`, `map@k` for each k, `map@r`,
    `r_precision`, `mrr`, and ints `num_queries` (queries scored) and `num_lone_queries`.
    With no query left, the metrics are NaN.

  Example:
    >>> x = jnp.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> m = retrieval_metrics(x, jnp.array([0, 0, 1, 1]), ks=(1,))
    >>> m["recall@1"], m["map@r"], m["num_queries"]
    (1.0, 1.0, 4)
  """
  check_in(metric, METRICS, "metric")
  ks = _check_ks(ks)
  num_refs = check_embeddings(embeddings, "embeddings")
  check_labels(labels, num_refs, "labels")
  self_mode = query_embeddings is None
  if self_mode != (query_labels is None):
    raise ValueError("query_embeddings and query_labels must be given together")
  if self_mode:
    num_queries = num_refs
  else:
    num_queries = check_embeddings(query_embeddings, "query_embeddings")
    check_labels(query_labels, num_queries, "query_labels")
    if np.shape(query_embeddings)[1] != np.shape(embeddings)[1]:
      raise ValueError(
          f"query_embeddings have dimension {np.shape(query_embeddings)[1]} but embeddings "
          f"have {np.shape(embeddings)[1]}")
  available = num_refs - int(self_mode)
  if ks[-1] > available:
    raise ValueError(
        f"ks contains k={ks[-1]}, larger than the {available} references each query can "
        f"retrieve{' (all items but itself)' if self_mode else ''}")

  ref_np = np.asarray(labels)
  query_np = ref_np if self_mode else np.asarray(query_labels)
  _, dense = np.unique(np.concatenate([ref_np, query_np]), return_inverse=True)
  ref_dense = dense[:num_refs].astype(np.int32)
  query_dense = dense[num_refs:].astype(np.int32)
  class_size = np.bincount(ref_dense, minlength=int(dense.max()) + 1)
  relevant = class_size[query_dense] - int(self_mode)
  kept = np.nonzero(relevant > 0)[0].astype(np.int32)
  result = {"num_queries": int(kept.size), "num_lone_queries": int(num_queries - kept.size)}
  names = [f"{m}@{k}" for k in ks for m in ("recall", "precision", "ndcg", "map")]
  names += ["map@r", "r_precision", "mrr"]
  if kept.size == 0:
    return {**{name: float("nan") for name in names}, **result}

  depth = int(max(ks[-1], relevant[kept].max()))
  r, rep = prepare_references(embeddings, metric)
  q = r[jnp.asarray(kept)] if self_mode else prepare(query_embeddings, metric, jnp.asarray(kept))
  q_labels = query_dense[kept]

  ref_labels = jnp.asarray(ref_dense)
  _, indices, ranked = exact_topk(q, r, jnp.asarray(kept), k=depth, metric=metric,
                                  exclude_self=self_mode, screen=screen, return_ranked=True,
                                  rep=rep)
  # Queries with no positive among their K neighbours: the rank of their first positive comes
  # from a second pass over just them, counting the other-label references ranked before their
  # best positive.
  missed = np.nonzero(~np.any(ref_dense[np.asarray(indices)] == q_labels[:, None], axis=1))[0]
  before = np.zeros(kept.size, np.int32)
  if missed.size and ranked is not None:
    # After a screen, a rescored candidate above the row's ceiling outranks every column outside
    # the candidates (`neighbours.screened_topk`): if the first positive among the ranked
    # candidates is one, its position is its rank, and that query needs no second pass.
    values, cands, ceiling = (np.asarray(a)[missed] for a in ranked)
    positive = (ref_dense[cands] == q_labels[missed, None]) & (values > ceiling[:, None])
    known = positive.any(axis=1)
    before[missed[known]] = np.argmax(positive[known], axis=1)
    missed = missed[~known]
  if missed.size:
    before[missed] = _rank_of_best_positive(
        q[jnp.asarray(missed)], r, kept[missed], q_labels[missed], ref_dense, metric=metric,
        self_mode=self_mode)
  scores = _scores(indices, jnp.asarray(before), ref_labels, jnp.asarray(q_labels),
                   jnp.asarray(relevant[kept]), ks=ks)
  return {**{name: float(scores[name]) for name in names}, **result}
