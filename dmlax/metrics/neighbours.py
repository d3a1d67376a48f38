"""Exact k-nearest-neighbour search on the accelerator, in blocks of bounded memory.

`exact_topk` runs the float32 pass (`dmlax.metrics.tiles`: blocked matrix products and an exact
two-stage top-k, memory bounded by one tile) or, for large searches with few neighbours, the
bfloat16 screen (`dmlax.metrics.screen`: certified candidates rescored in float32, the rows it
cannot certify searched again by the float32 pass). `knn` is the public entry point.

Ties. Equal similarities rank by the lower reference index. Identical reference rows are made
bitwise identical after preparation (a normalisation could round copies differently) and tie
exactly in both passes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from dmlax.checks import check_in
from dmlax.metrics.screen import (duplicate_representatives, screen_depth, screened_topk,
                                  screens_by_default)
from dmlax.metrics.sharded import check_mesh, sharded_search
from dmlax.metrics.tiles import METRICS, block_sizes, blocked_topk, check_embeddings, prepare

__all__ = ["exact_topk", "knn", "prepare_references"]


def prepare_references(references, metric: str) -> tuple[jax.Array, jax.Array | None]:
  """Float32 prepared references (`tiles.prepare`) with identical rows made bitwise identical,
  and their `duplicate_representatives` as an int32 array (None without copies or when
  traced)."""
  r = prepare(references, metric)
  if isinstance(references, jax.core.Tracer):
    return r, None
  rep = duplicate_representatives(references)
  if rep is None:
    return r, None
  rep = jnp.asarray(rep)
  return r[rep], rep


def exact_topk(q, r, query_ids, *, k, metric, exclude_self, block_size=None, screen=None,
               return_ranked=False, rep=None):
  """Exact top-k similarities and indices of every query row against r (prepared float32).

  `screen=None` screens in bfloat16 (`screened_topk`) when the product is large (at least
  2**28 similarities), k is at most 16 and the device multiplies bfloat16 natively; rows the
  screen cannot certify are searched again by the float32 pass, so the result is the same
  either way.
  Under tracing (inside `jax.jit`) the float32 pass is used. Returns `(values, indices)`, and
  with `return_ranked` also the screen's `ranked` candidates (`screened_topk`; None when the
  float32 pass ran). `rep`: the references' copies (`prepare_references`), tied by the
  screen's rescoring.
  """
  nq, nr = q.shape[0], r.shape[0]
  # The float32 pass's query block for all nq queries: the rows the screen cannot certify are
  # searched again in blocks of this size, so that they get the same tiles, and the same
  # rounding, as without the screen.
  bq, br = block_sizes(nq, nr, k, block_size)

  def float32_pass(q, query_ids):
    values, indices, _ = blocked_topk(q, r, query_ids, k=k, metric=metric,
                                      exclude_self=exclude_self, block_size=bq, ref_block=br)
    return values, indices

  traced = any(isinstance(a, jax.core.Tracer) for a in (q, r, query_ids))
  if screen is None:
    screen = screens_by_default(nq, nr, k)
  if not screen or traced or screen_depth(k) > nr - int(exclude_self):
    values, indices = float32_pass(q, query_ids)
    return (values, indices, None) if return_ranked else (values, indices)
  # Euclidean: 2 q.r - |r|^2 as a dot product of [q, 1] and [2 r, -|r|^2], so one bound covers
  # it; cosine rows are unit already.
  q_s, r_s = _augment_euclidean(q, r) if metric == "euclidean" else (q, r)
  values, indices, complete, ranked = screened_topk(
      q_s, r_s, query_ids, k=k, exclude_self=exclude_self, block_size=block_size, rep=rep)
  redo = np.nonzero(~np.asarray(complete))[0]
  if redo.size:
    rows = jnp.asarray(redo)
    v, i = float32_pass(q[rows], query_ids[rows])
    values, indices = values.at[rows].set(v), indices.at[rows].set(i)
  return (values, indices, ranked) if return_ranked else (values, indices)


@jax.jit
def _augment_euclidean(q, r):
  ones = jnp.ones((q.shape[0], 1), q.dtype)
  return (jnp.concatenate([q, ones], axis=1),
          jnp.concatenate([2.0 * r, -jnp.sum(r * r, axis=1, keepdims=True)], axis=1))


def knn(queries: ArrayLike, references: ArrayLike, *, k: int, metric: str = "cosine",
        exclude_self: bool = False, block_size: int | None = None,
        screen: bool | None = None, mesh: jax.sharding.Mesh | None = None,
        axis_name: str | None = None) -> tuple[jax.Array, jax.Array]:
  """Exact k nearest references of every query, in blocks of bounded memory.

  Similarity `s(q, r)`: `metric="cosine"` is `q.r / (|q| |r|)`, `"dot"` is `q.r`,
  `"euclidean"` is `-|q - r|^2`. Neighbours are sorted by decreasing similarity; equal
  similarities are broken by the lower reference index, so the result is deterministic and
  equal to a stable sort of each full row. With `exclude_self=True` (queries and references are
  the same set) reference `i` is never a neighbour of query `i`, decided by index, so duplicate
  embeddings still find each other. Matches faiss's exact `IndexFlatIP` on normalised
  embeddings (up to the order of float ties), as used by pytorch-metric-learning's
  `AccuracyCalculator`.

  Args:
    queries: (Nq, D) floating.
    references: (Nr, D) floating.
    k: number of neighbours, at most Nr (Nr - 1 with `exclude_self`).
    metric: "cosine", "dot" or "euclidean".
    exclude_self: leave out reference i from the neighbours of query i (requires Nq == Nr).
    block_size: queries per block (default: a tile of about 128 MiB of similarities).
    screen: find candidates with bfloat16 products first and rescore them in float32
      (`screened_topk`; rows it cannot certify are searched again in float32, so the result
      is the same). None: when there are at least 2**28 similarities, k <= 16 and the
      device multiplies bfloat16 natively (GPU, TPU, CPUs with AVX512-BF16 or AMX).
    mesh, axis_name: search with the references (and queries) sharded in contiguous blocks
      over this mesh axis, the top-k lists merged across shards (`dmlax.metrics.sharded`;
      float32 pass only, no screen). Each device holds one block of references and queries.

  Returns:
    `(indices, similarities)`, int32 and float32 arrays of shape (Nq, k).

  Example:
    >>> x = jnp.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> idx, sim = knn(x, x, k=1, exclude_self=True)
    >>> idx[:, 0].tolist()
    [1, 0, 1]
  """
  check_in(metric, METRICS, "metric")
  nq = check_embeddings(queries, "queries")
  nr = check_embeddings(references, "references")
  if np.shape(queries)[1] != np.shape(references)[1]:
    raise ValueError(
        f"queries and references must have the same feature dimension, got "
        f"{np.shape(queries)[1]} and {np.shape(references)[1]}")
  if exclude_self and nq != nr:
    raise ValueError(
        f"exclude_self=True needs the queries to be the references, got {nq} queries and "
        f"{nr} references")
  available = nr - int(bool(exclude_self))
  if not isinstance(k, (int, np.integer)) or k < 1 or k > available:
    raise ValueError(
        f"k must be an integer in [1, {available}] (the number of references"
        f"{' other than the query itself' if exclude_self else ''}), got {k!r}")
  if block_size is not None and (not isinstance(block_size, (int, np.integer)) or block_size < 1):
    raise ValueError(f"block_size must be a positive integer or None, got {block_size!r}")
  if mesh is not None:
    check_mesh(mesh, axis_name)
    if screen:
      raise ValueError("screen=True is not available with a mesh (the sharded search runs the "
                       "float32 pass)")
    values, indices = sharded_search(
        queries, np.arange(nq), np.zeros(nq), references, np.zeros(nr), k=int(k), metric=metric,
        exclude_self=bool(exclude_self), mesh=mesh, axis_name=axis_name)
    values = jnp.asarray(values)
    if metric == "euclidean":
      values = values - jnp.sum(jnp.square(jnp.asarray(queries, jnp.float32)), axis=1,
                                keepdims=True)
    return jnp.asarray(indices), values
  r, rep = prepare_references(references, metric)
  q = r if (exclude_self and references is queries) else prepare(queries, metric)
  values, indices = exact_topk(
      q, r, jnp.arange(nq, dtype=jnp.int32), k=int(k), metric=metric,
      exclude_self=bool(exclude_self), block_size=block_size, screen=screen, rep=rep)
  if metric == "euclidean":
    values = values - jnp.sum(q * q, axis=1, keepdims=True)
  return indices, values
