"""Every ranking metric of the retrieval protocol (docs/spec.md section 6) from one blocked pass.

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
import warnings
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from dmlax.checks import check_floating, check_in, check_labels
from dmlax.metrics.neighbours import exact_topk, prepare_references
from dmlax.metrics.sharded import check_mesh, sharded_search
from dmlax.metrics.tiles import (METRICS, Beat, block_sizes, blocked_topk,
                                 check_embeddings, label_members, positive_ranks, prepare)

def _check_ks(ks) -> tuple[int, ...]:
  if isinstance(ks, (int, np.integer)):
    ks = (ks,)
  ks = tuple(ks)
  if not ks or any(not isinstance(k, (int, np.integer)) or k < 1 for k in ks):
    raise ValueError(f"ks must be a non-empty sequence of positive integers, got {ks!r}")
  return tuple(sorted(set(int(k) for k in ks)))


@functools.partial(jax.jit, static_argnames=("ks", "cap"))
def _per_query(indices, before, ref_labels, query_labels, num_relevant, *, ks, cap):
  """Each metric per query (Nq,) from their top-K neighbour indices (Nq, K); `cap` is the
  fixed number of neighbours k of the MAP@R-style metrics (None: all of them)."""
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
    out[f"recall@{k}"] = (hits[:, k - 1] > 0).astype(jnp.float32)
    out[f"precision@{k}"] = hits[:, k - 1] / k
    dcg = jnp.sum(match[:, :k] * discount[:k], axis=1)
    out[f"ndcg@{k}"] = dcg / ideal[jnp.minimum(num_relevant, k) - 1]
    out[f"map@{k}"] = jnp.sum(precision_at_hit[:, :k], axis=1) / k
  r_cut = r if cap is None else jnp.minimum(r, cap)
  within_r = rank[None, :] <= r_cut[:, None]
  out["map@r"] = jnp.sum(precision_at_hit * within_r, axis=1) / r
  out["r_precision"] = jnp.sum(match * within_r, axis=1) / r_cut
  if cap is None:
    found = hits[:, -1] > 0
    first = jnp.argmax(match, axis=1) + 1
    # Past the list, the pass's count of other-label references ranked before the best positive
    # gives the rank; at least depth + 1, which float rounding of near-ties cannot undercut.
    deep = jnp.maximum(before + 1, depth + 1)
    out["mrr"] = 1.0 / jnp.where(found, first, deep).astype(jnp.float32)
    out["map"] = jnp.sum(precision_at_hit, axis=1) / r
  else:
    in_cap = (rank <= cap).astype(jnp.float32)[None, :]
    found = jnp.any(match * in_cap > 0, axis=1)
    first = jnp.argmax(match * in_cap, axis=1) + 1
    out["mrr"] = jnp.where(found, 1.0 / first.astype(jnp.float32), 0.0)
    out["map"] = jnp.sum(precision_at_hit * in_cap, axis=1) / r
  return out


@jax.jit
def _query_means(values):
  return {name: jnp.mean(v) for name, v in values.items()}


def _class_means(values, query_labels) -> dict[str, float]:
  """The mean over the queries' classes of each class's mean (pytorch-metric-learning's
  `avg_of_avgs`), in float64."""
  _, cls = np.unique(query_labels, return_inverse=True)
  counts = np.bincount(cls)
  return {name: float(np.mean(np.bincount(cls, np.asarray(v, np.float64)) / counts))
          for name, v in values.items()}


def _positive_counts(q, r, query_ids, q_labels, ref_labels, width, *, metric,
                     self_mode) -> tuple[np.ndarray, np.ndarray]:
  """For each query's `width` best positives (largest similarity among the query's label,
  lower index on ties): the number of other-label references ranked before each, (Nq, width),
  and their indices (Nr where the class has fewer).

  When one tile holds every reference, one float32 pass (`tiles.positive_ranks`); else two with
  the same reference blocks: the positives, then the counts against them. Either way the counts
  compare values of the same tile products, so an exact tie (a copy of a positive under another
  label) is decided by index and not by the rounding of two computations.
  """
  ids, q_lab, r_lab = (jnp.asarray(a) for a in (query_ids, q_labels, ref_labels))
  nq, nr = len(query_ids), r.shape[0]
  bq, br = block_sizes(nq, nr, width, None)
  if br >= nr:
    # One tile holds every reference: the positives and their counts in one pass (fewer
    # products than the two below, and cheaper counts; `python -m
    # experiments.bench_positive_ranks` times both).
    members = label_members(q_labels, ref_labels)
    before, best_index = positive_ranks(q, r, ids, jnp.asarray(members), width=width,
                                        metric=metric, exclude_self=self_mode, block_size=bq)
    return np.asarray(before), np.asarray(best_index)
  best, best_index, _ = blocked_topk(q, r, ids, None, (q_lab, r_lab), k=width, metric=metric,
                                     exclude_self=self_mode, block_size=bq, ref_block=br)
  # (rows, width, columns) comparisons per tile: width times fewer rows keep the tile's size.
  bq = max(1, min(nq, bq // width))
  _, _, before = blocked_topk(q, r, ids, Beat(best, best_index, q_lab, r_lab), k=0,
                              metric=metric, exclude_self=self_mode, block_size=bq,
                              ref_block=br)
  return np.asarray(before), np.asarray(best_index)


def _check_mask(mask, n: int, name: str) -> np.ndarray:
  if mask is None:
    return np.arange(n)
  m = np.asarray(mask)
  if m.shape != (n,) or m.dtype != np.bool_:
    raise ValueError(f"{name} must be a boolean array of shape ({n},), got dtype {m.dtype} and "
                     f"shape {m.shape}")
  return np.nonzero(m)[0]


def _rows(x, keep, n):
  if keep.size == n:
    return x
  return x[jnp.asarray(keep)] if isinstance(x, jax.Array) else np.asarray(x)[keep]


def _check_no_padding_labels(labels, name: str, mask_name: str) -> None:
  if labels.size and labels.min() < 0:
    raise ValueError(
        f"{name} contains negative labels ({int(np.sum(labels < 0))} rows, e.g. "
        f"{int(labels.min())}); `data.eval_batches` marks padding rows with label -1: pass "
        f"{mask_name}= (the batches' `mask`) to leave them out")


def retrieval_metrics(embeddings: ArrayLike, labels: ArrayLike, *,
                      ks: Sequence[int] = (1, 2, 4, 8),
                      query_embeddings: ArrayLike | None = None,
                      query_labels: ArrayLike | None = None,
                      metric: str = "cosine",
                      screen: bool | None = None,
                      mask: ArrayLike | None = None,
                      query_mask: ArrayLike | None = None,
                      k: int | None = None,
                      average: str = "queries",
                      full_map: bool = False,
                      mesh: jax.sharding.Mesh | None = None,
                      axis_name: str | None = None) -> dict[str, float]:
  """Exact retrieval metrics from one blocked pass over the similarity matrix.

  Without queries every item queries all the others (CUB, Cars, SOP: itself excluded by
  index); with `query_embeddings`/`query_labels` the queries search `embeddings` (In-shop).
  For a query, `r_i = 1` if its i-th neighbour has its label, `R` is its number of same-label
  references. Queries with `R = 0` ("lone") are left out of every mean and counted. All values
  are fractions in [0, 1] (papers print them x100):

    recall@k     = [sum_{i<=k} r_i > 0]
    precision@k  = sum_{i<=k} r_i / k
    ndcg@k       = DCG(k) / DCG_best(k), DCG(k) = sum_{i<=k} (2^r_i - 1) / log2(i + 1), the best
                   ranking having min(k, R) positives first   (MPA paper eqs. 19-20)
    map@k        = sum_{i<=k} P(i) r_i / k, P(i) = sum_{j<=i} r_j / i   (MPA paper Table 3)
    map@r        = sum_{i<=R'} P(i) r_i / R                  (Musgrave et al. 2020, Sec. 3.2)
    r_precision  = sum_{i<=R'} r_i / R'
    mrr          = 1 / rank of the first same-label neighbour among the first K' (0 if none)
    map          = sum_{i<=K'} P(i) r_i / R  (with `full_map`: mean average precision)

  with R' = min(R, k) and K' = k for a fixed `k`; by default (`k=None`) R' = R and K' is the
  whole ranking (every reference), so `mrr` and `map` are exact at any depth.

  `map@r`, `r_precision`, `precision@1`, `mrr` and `map` equal those of pytorch-metric-learning's
  `AccuracyCalculator` ("mean_average_precision_at_r", "r_precision", "precision_at_1",
  "mean_reciprocal_rank", "mean_average_precision") with the same `k` (None there is the whole
  ranking too) and `avg_of_avgs = (average == "classes")`, lone queries excluded; `map@k` and
  `ndcg@k` reproduce the MPA paper's Table 3.

  Args:
    embeddings: (N, D) floating, the references (and the queries when none are given).
    labels: (N,) integer labels of `embeddings`, non-negative where `mask` keeps the row.
    ks: the cut-offs k of recall/precision/ndcg/map@k.
    query_embeddings: optional (Nq, D) separate queries.
    query_labels: (Nq,) labels of `query_embeddings`.
    metric: "cosine" (default), "dot" or "euclidean", as in `knn`.
    screen: bfloat16 screening of the neighbour search, as in `knn` (the values do not
      depend on it).
    mask: optional (N,) boolean: the rows of `embeddings` to use, neither queries nor
      references elsewhere (`data.eval_batches` pads its last batch with `mask = False` rows
      of label -1). Labels of kept rows must be non-negative.
    query_mask: optional (Nq,) boolean, the same for `query_embeddings`.
    k: a fixed number of neighbours for `map@r`, `r_precision`, `mrr` and `map`, as
      `AccuracyCalculator(k=...)`; a warning is given when it is smaller than a query's R (then
      `map@r` and `r_precision` are not the full-R values). None: R for `map@r`/`r_precision`,
      the whole ranking for `mrr`/`map`.
    average: "queries" (the mean over the queries) or "classes" (the mean over the queries'
      labels of each label's mean, `AccuracyCalculator(avg_of_avgs=True)`).
    full_map: also return `map`. With `k=None` it needs the rank of every positive: a second
      float32 pass over the queries whose positives are not all among the first K neighbours.
    mesh, axis_name: run every search with the references and queries sharded in contiguous
      blocks over this mesh axis, exact top-k lists and counts merged across the shards
      (`dmlax.metrics.sharded`: a device holds one block of each); same values as without.

  Returns:
    A dict of floats: `recall@k`, `precision@k`, `ndcg@k`, `map@k` for each k, `map@r`,
    `r_precision`, `mrr` (and `map` with `full_map`), and ints `num_queries` (queries scored)
    and `num_lone_queries`. With no query left, the metrics are NaN.

  Example:
    >>> x = jnp.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> m = retrieval_metrics(x, jnp.array([0, 0, 1, 1]), ks=(1,))
    >>> round(m["recall@1"], 6), round(m["map@r"], 6), m["num_queries"]
    (1.0, 1.0, 4)
    >>> padded = jnp.concatenate([x, jnp.zeros((2, 2))])
    >>> m = retrieval_metrics(padded, jnp.array([0, 0, 1, 1, -1, -1]), ks=(1,),
    ...                       mask=jnp.array([True] * 4 + [False] * 2))
    >>> round(m["map@r"], 6), m["num_queries"]
    (1.0, 4)
  """
  check_in(metric, METRICS, "metric")
  check_in(average, ("queries", "classes"), "average")
  if mesh is not None:
    check_mesh(mesh, axis_name)
  ks = _check_ks(ks)
  check_floating(embeddings, "embeddings", ndim=2)
  n_all = np.shape(embeddings)[0]
  check_labels(labels, n_all, "labels")
  self_mode = query_embeddings is None
  if self_mode != (query_labels is None):
    raise ValueError("query_embeddings and query_labels must be given together")
  if self_mode and query_mask is not None:
    raise ValueError("query_mask needs query_embeddings (without them, mask selects the queries)")
  keep = _check_mask(mask, n_all, "mask")
  embeddings, ref_np = _rows(embeddings, keep, n_all), np.asarray(labels)[keep]
  _check_no_padding_labels(ref_np, "labels", "mask")
  if keep.size == 0:
    raise ValueError("mask leaves no embeddings")
  num_refs = check_embeddings(embeddings, "embeddings")
  if self_mode:
    num_queries = num_refs
    query_np = ref_np
  else:
    check_floating(query_embeddings, "query_embeddings", ndim=2)
    nq_all = np.shape(query_embeddings)[0]
    check_labels(query_labels, nq_all, "query_labels")
    qkeep = _check_mask(query_mask, nq_all, "query_mask")
    query_embeddings = _rows(query_embeddings, qkeep, nq_all)
    query_np = np.asarray(query_labels)[qkeep]
    _check_no_padding_labels(query_np, "query_labels", "query_mask")
    if qkeep.size == 0:
      raise ValueError("query_mask leaves no queries")
    num_queries = check_embeddings(query_embeddings, "query_embeddings")
    if np.shape(query_embeddings)[1] != np.shape(embeddings)[1]:
      raise ValueError(
          f"query_embeddings have dimension {np.shape(query_embeddings)[1]} but embeddings "
          f"have {np.shape(embeddings)[1]}")
  available = num_refs - int(self_mode)
  if ks[-1] > available:
    raise ValueError(
        f"ks contains k={ks[-1]}, larger than the {available} references each query can "
        f"retrieve{' (all items but itself)' if self_mode else ''}")
  if k is not None and (not isinstance(k, (int, np.integer)) or not 1 <= k <= available):
    raise ValueError(f"k must be None or an integer in [1, {available}] (the references each "
                     f"query can retrieve), got {k!r}")
  cap = None if k is None else int(k)

  _, dense = np.unique(np.concatenate([ref_np, query_np]), return_inverse=True)
  dense = dense.reshape(-1)
  ref_dense = dense[:num_refs].astype(np.int32)
  query_dense = dense[num_refs:].astype(np.int32)
  class_size = np.bincount(ref_dense, minlength=int(dense.max()) + 1)
  relevant = class_size[query_dense] - int(self_mode)
  kept = np.nonzero(relevant > 0)[0].astype(np.int32)
  result = {"num_queries": int(kept.size), "num_lone_queries": int(num_queries - kept.size)}
  names = [f"{m}@{k}" for k in ks for m in ("recall", "precision", "ndcg", "map")]
  names += ["map@r", "r_precision", "mrr"] + (["map"] if full_map else [])
  if kept.size == 0:
    return {**{name: float("nan") for name in names}, **result}
  if cap is not None and cap < relevant[kept].max():
    warnings.warn(
        f"k={cap} is smaller than the {int(relevant[kept].max())} same-label references of some "
        f"queries: map@r and r_precision cover only their first k neighbours (as "
        f"pytorch-metric-learning's AccuracyCalculator with that k); k=None uses every R",
        stacklevel=2)

  depth = int(max(ks[-1], relevant[kept].max() if cap is None else cap))
  q_labels = query_dense[kept]
  ref_labels = jnp.asarray(ref_dense)
  if mesh is None:
    r, rep = prepare_references(embeddings, metric)
    q = (r[jnp.asarray(kept)] if self_mode
         else prepare(query_embeddings, metric, jnp.asarray(kept)))
    _, indices, ranked = exact_topk(q, r, jnp.asarray(kept), k=depth, metric=metric,
                                    exclude_self=self_mode, screen=screen, return_ranked=True,
                                    rep=rep)

    def positive_counts(rows, width):
      return _positive_counts(q[jnp.asarray(rows)], r, kept[rows], q_labels[rows], ref_dense,
                              width, metric=metric, self_mode=self_mode)
  else:
    if screen:
      raise ValueError("screen=True is not available with a mesh (the sharded search runs the "
                       "float32 pass)")
    r_host = np.asarray(embeddings, np.float32)
    q_host = r_host[kept] if self_mode else np.asarray(query_embeddings, np.float32)[kept]
    search = functools.partial(sharded_search, metric=metric, exclude_self=self_mode, mesh=mesh,
                               axis_name=axis_name)
    _, indices = search(q_host, kept, q_labels, r_host, ref_dense, k=depth)
    indices, ranked = jnp.asarray(indices), None

    def positive_counts(rows, width):
      return search(q_host[rows], kept[rows], q_labels[rows], r_host, ref_dense, width=width,
                    mode="positives")
  in_list = ref_dense[np.asarray(indices)] == q_labels[:, None]
  before = np.zeros(kept.size, np.int32)
  # Queries with no positive among their K neighbours: the rank of their first positive comes
  # from a second pass over just them, counting the other-label references ranked before their
  # best positive. A fixed k needs none (the rank past k does not count).
  missed = np.nonzero(~np.any(in_list, axis=1))[0] if cap is None else np.zeros(0, int)
  if missed.size and ranked is not None:
    # After a screen, a rescored candidate above the row's ceiling outranks every column outside
    # the candidates (`screen.screened_topk`): if the first positive among the ranked
    # candidates is one, its position is its rank, and that query needs no second pass.
    values, cands, ceiling = (np.asarray(a)[missed] for a in ranked)
    positive = (ref_dense[cands] == q_labels[missed, None]) & (values > ceiling[:, None])
    known = positive.any(axis=1)
    before[missed[known]] = np.argmax(positive[known], axis=1)
    missed = missed[~known]
  if missed.size:
    before[missed] = positive_counts(missed, 1)[0][:, 0]
  values = _per_query(indices, jnp.asarray(before), ref_labels, jnp.asarray(q_labels),
                      jnp.asarray(relevant[kept]), ks=ks, cap=cap)
  values = {name: values[name] for name in names}
  if full_map and cap is None:
    # Average precision over the whole ranking: the queries with positives past the list get the
    # rank of every positive (m-th positive: m + the other-label references before it).
    partial = np.nonzero(in_list.sum(axis=1) < relevant[kept])[0]
    if partial.size:
      width = int(relevant[kept][partial].max())
      counts, _ = positive_counts(partial, width)
      m = np.arange(1, width + 1)
      big_r = relevant[kept][partial]
      ap = np.sum(np.where(m <= big_r[:, None], m / (m + counts), 0.0), axis=1) / big_r
      values["map"] = values["map"].at[jnp.asarray(partial)].set(jnp.asarray(ap, jnp.float32))
  if average == "queries":
    means = {name: float(v) for name, v in _query_means(values).items()}
  else:
    means = _class_means(values, q_labels)
  return {**means, **result}
