"""Exact k-nearest-neighbour search by blocked matrix products, on the accelerator.

The similarity matrix is never built whole: queries are taken `block_size` rows at a time and
references in column blocks, and a running top-k is merged block by block, so memory is bounded
by one (block_size, reference_block) tile whatever the number of items.

Selection inside a tile is a two-stage exact top-k. A plain `lax.top_k` over every similarity
is a sort on a CPU and costs a large fraction of the matrix product. Instead each row of the
tile is cut into chunks of `_CHUNK` consecutive columns; the k chunks with the largest maxima
hold the k largest entries (proof below), so the exact top-k needs `lax.top_k` over the chunk
maxima and then over just k * _CHUNK gathered candidates.

Why the k best chunks suffice, ties included: let e be one of the row's k best entries (ties
broken by the lower index) and suppose its chunk is not among the k chunks chosen by
(maximum, then lower chunk index). Each chosen chunk's maximum is either larger than e, or equal
to it and in a chunk of lower index, so in either case it ranks before e: k entries rank before
e, a contradiction. The chosen chunks are re-sorted by index before the final selection so that
`lax.top_k`'s lower-position tie-break is the lower-global-index tie-break. The maxima are taken
over the raw tile (masking it first would cost another pass over it), and the query itself and
padding are masked in the candidates; k + 2 chunks are chosen to make room for the (at most two)
chunks whose raw maximum is one of those (see `_tile_topk`).

Large searches with few neighbours are screened first (`screened_topk`, chosen by `exact_topk`):
a pass of bfloat16 products accumulated in float32 (about 2.5x the float32 product rate on a
CPU with AMX, more on GPU/TPU) keeps L ~ 2k candidates per query, which are rescored in
float32. A per-row bound delta on the bfloat16 error certifies that the candidates hold the
exact top-k whenever the L-th screened score is more than 2 delta below the k-th; the rows it
cannot certify (near-ties within the bfloat16 error) are searched again in float32, so the
result is the float32 one either way.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from dmlax.checks import check_floating, check_in

METRICS = ("cosine", "dot", "euclidean")
# Columns per chunk of the two-stage top-k: the chunk maxima cost one pass over the tile and the
# selection then reads k * _CHUNK candidates per row.
_CHUNK = 32
# Largest reference block (columns of a tile), and the number of tile entries that sets the
# default query block: 2**25 float32 entries are 128 MiB.
_MAX_REF_BLOCK = 1 << 16
_TILE_ENTRIES = 1 << 25
_NORM_EPS = 1e-12
# When `exact_topk` screens by default: from this many similarities (about 16k x 16k) and up to
# this many neighbours. Below, the screen's linear costs (a top-L selection with L about 2k,
# the rescoring gather of L rows per query) outweigh the cheaper product. Measured with
# `python -m experiments.bench_retrieval --screen on --rounds 3` (retrieval_metrics screened /
# float32 pass): --n 20000 (k=11) 0.81x, --n 60502 0.58x, --n 5924 --class-size 59 (CUB, k=58)
# 2.5x.
_SCREEN_MIN_ENTRIES = 1 << 28
_SCREEN_MAX_K = 16


def check_embeddings(x, name: str) -> int:
  """(N, D) floating with N >= 1 and no NaN/inf (checked when the values are concrete)."""
  check_floating(x, name, ndim=2)
  n, d = np.shape(x)
  if n < 1 or d < 1:
    raise ValueError(f"{name} must be a non-empty (N, D) array, got shape {(n, d)}")
  if not isinstance(x, jax.core.Tracer):
    finite = np.isfinite(np.asarray(x))
    if not finite.all():
      rows = np.unique(np.nonzero(~finite)[0])
      raise ValueError(
          f"{name} contains NaN or inf in {rows.size} row(s), e.g. rows {rows[:5].tolist()}")
  return n


@functools.partial(jax.jit, static_argnames=("metric",))
def prepare(x: jax.Array, metric: str, rows: jax.Array | None = None) -> jax.Array:
  """Float32 copy of `x` (of its `rows` if given), unit rows for the cosine metric."""
  x = jnp.asarray(x, jnp.float32)
  if rows is not None:
    x = x[rows]
  if metric == "cosine":
    x = x / jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), _NORM_EPS)
  return x


def block_sizes(num_queries, num_refs, k, block_size):
  ref_block = min(_MAX_REF_BLOCK, _CHUNK * math.ceil(num_refs / _CHUNK))
  ref_block = max(ref_block, _CHUNK * math.ceil(k / _CHUNK))
  if block_size is None:
    block_size = max(8, min(1024, _TILE_ENTRIES // ref_block))
  block_size = min(block_size, num_queries)
  return block_size, ref_block


def _tile_topk(sims: jax.Array, k: int, chunk: int, invalid,
               num_valid) -> tuple[jax.Array, jax.Array]:
  """Exact top-k of each row of a tile `sims` (rows, cols), ties to the lower column index.

  `invalid(cols)` is True where a (row, tile column) pair is not a candidate: the query itself
  or a padding column; the first `num_valid` columns are not padding. Masking the whole tile would make XLA write it out once more, so the
  chunk maxima are taken over the raw tile and the masks applied to the gathered candidates
  only. At most two chunks per row hold an invalid entry that is not in an all-padding chunk
  (the query's own chunk and the one partly padded chunk), so their raw maxima can push at most
  two chunks down the ranking: the k + 2 best raw chunks contain the k best valid ones.
  """
  rows, cols = sims.shape
  extra = 2
  # Halve the chunk until the chosen chunks hold at most half the tile (a power of two divides
  # the tile's columns, a multiple of _CHUNK).
  while chunk > 1 and (k + extra) * chunk * 2 > cols:
    chunk //= 2
  if chunk <= 1 or cols % chunk:
    cols_all = jnp.broadcast_to(jnp.arange(cols, dtype=jnp.int32), (rows, cols))
    return jax.lax.top_k(jnp.where(invalid(cols_all), -jnp.inf, sims), k)
  num_chunks = cols // chunk
  chunks = sims.reshape(rows, num_chunks, chunk)
  starts = jnp.arange(num_chunks, dtype=jnp.int32) * chunk
  # Padding columns come last: a chunk starting at or past `num_valid` is all padding.
  keys = jnp.where(starts[None, :] >= num_valid, -jnp.inf, jnp.max(chunks, axis=2))
  _, best = jax.lax.top_k(keys, k + extra)
  best = jnp.sort(best, axis=1)
  candidates = jnp.take_along_axis(chunks, best[:, :, None], axis=1)
  cand_cols = (best[:, :, None] * chunk + jnp.arange(chunk, dtype=jnp.int32)).reshape(rows, -1)
  candidates = jnp.where(invalid(cand_cols), -jnp.inf, candidates.reshape(rows, -1))
  values, pos = jax.lax.top_k(candidates, k)
  return values, jnp.take_along_axis(cand_cols, pos, axis=1)


def _similarity(q, r, r_sq, metric):
  if q.dtype == jnp.bfloat16:
    # The screening pass (`screened_topk`): bfloat16 products accumulated in float32.
    dots = jax.lax.dot_general(q, r, (((1,), (1,)), ((), ())),
                               preferred_element_type=jnp.float32)
  else:
    dots = jax.lax.dot_general(q, r, (((1,), (1,)), ((), ())),
                               precision=jax.lax.Precision.HIGHEST)
  if metric == "euclidean":
    # -||q - r||^2 up to the per-row constant ||q||^2, which does not change the ranking.
    return 2.0 * dots - r_sq[None, :]
  return dots


@functools.partial(
    jax.jit, static_argnames=("k", "metric", "exclude_self", "block_size", "ref_block", "chunk"))
def blocked_topk(q, r, query_ids, beat=None, *, k, metric, exclude_self, block_size, ref_block,
                 chunk=_CHUNK):
  """Top-k similarities and indices of every row of q against r, shapes (Nq, k).

  `query_ids` (Nq,) are the reference indices of the queries, excluded when `exclude_self`.
  `beat`, optional `(threshold, threshold_index, query_labels, reference_labels)`, also
  counts per query the references of another label that rank before the threshold
  (similarity above it, or equal with a lower index): the rank of a query's best positive
  found in the same pass, whatever its depth (with k=0, only that). `chunk` sets the two-stage top-k (1: a plain
  `lax.top_k` per tile). Returns `(values, indices, counts or None)`.
  """
  nq, d = q.shape
  nr = r.shape[0]
  nqb = -(-nq // block_size)
  nrb = -(-nr // ref_block)
  pad_q = nqb * block_size - nq
  qp = jnp.pad(q, ((0, pad_q), (0, 0))).reshape(nqb, block_size, d)
  ids = jnp.pad(query_ids.astype(jnp.int32), (0, pad_q), constant_values=-1)
  ids = ids.reshape(nqb, block_size)
  rp = jnp.pad(r, ((0, nrb * ref_block - nr), (0, 0))).reshape(nrb, ref_block, d)
  r_sq = jnp.sum(rp * rp, axis=2) if metric == "euclidean" else jnp.zeros((nrb, ref_block))
  if beat is not None:
    thr, thr_idx, q_lab, r_lab = beat
    beat_q = tuple(jnp.pad(a, (0, pad_q)).reshape(nqb, block_size) for a in (thr, thr_idx, q_lab))
    r_lab = jnp.pad(r_lab, (0, nrb * ref_block - nr)).reshape(nrb, ref_block)
  else:
    beat_q = tuple(jnp.zeros((nqb, 0)) for _ in range(3))
    r_lab = jnp.zeros((nrb, 0))

  def one_query_block(args):
    qb, row_ids, (thr_b, thr_idx_b, q_lab_b) = args

    def one_ref_block(carry, xs):
      best_v, best_i, count = carry
      rb, rsq, r_lab_b, r0 = xs
      col_ids = r0 + jnp.arange(ref_block)
      sims = _similarity(qb, rb, rsq, metric)

      def invalid(cols):
        bad = cols + r0 >= nr
        if exclude_self:
          bad = bad | (cols + r0 == row_ids[:, None])
        return bad

      if beat is not None:
        # Other-label references only: the query itself shares its label.
        before = (sims > thr_b[:, None]) | (
            (sims == thr_b[:, None]) & (col_ids[None, :] < thr_idx_b[:, None]))
        before = before & (r_lab_b[None, :] != q_lab_b[:, None]) & (col_ids < nr)[None, :]
        count = count + jnp.sum(before, axis=1, dtype=jnp.int32)
      if k == 0:
        return (best_v, best_i, count), None
      v, i = _tile_topk(sims, k, chunk, invalid, nr - r0)
      v = jnp.concatenate([best_v, v], axis=1)
      i = jnp.concatenate([best_i, i + r0], axis=1)
      # Earlier blocks come first, so top_k's lower-position tie-break keeps the lower index.
      v, pos = jax.lax.top_k(v, k)
      return (v, jnp.take_along_axis(i, pos, axis=1), count), None

    init = (jnp.full((block_size, k), -jnp.inf, jnp.float32),
            jnp.full((block_size, k), nr, jnp.int32),
            jnp.zeros((block_size,), jnp.int32))
    (v, i, count), _ = jax.lax.scan(
        one_ref_block, init, (rp, r_sq, r_lab, jnp.arange(nrb, dtype=jnp.int32) * ref_block))
    return v, i, count

  v, i, count = jax.lax.map(one_query_block, (qp, ids, beat_q))
  count = count.reshape(-1)[:nq] if beat is not None else None
  v, i = v.reshape(nqb * block_size, k), i.reshape(nqb * block_size, k)
  return v[:nq], i[:nq], count


def _fast_bfloat16() -> bool:
  """Whether the default device multiplies bfloat16 natively (GPU, TPU, CPUs with AVX512-BF16
  or AMX), so that the screening pass is about twice as fast as a float32 one."""
  backend = jax.default_backend()
  if backend != "cpu":
    return backend in ("gpu", "cuda", "rocm", "tpu")
  return _cpu_has_bfloat16()


@functools.cache
def _cpu_has_bfloat16() -> bool:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("flags"):
          flags = set(line.split(":", 1)[1].split())
          return bool(flags & {"avx512_bf16", "amx_bf16"})
  except OSError:
    pass
  return False


def screens_by_default(num_queries: int, num_refs: int, k: int) -> bool:
  """`exact_topk`'s choice with `screen=None` (see `_SCREEN_MIN_ENTRIES`)."""
  return (num_queries * num_refs >= _SCREEN_MIN_ENTRIES and k <= _SCREEN_MAX_K
          and _fast_bfloat16())


def screen_depth(k: int) -> int:
  """Screening list length L for k neighbours: room for the near-ties within the bound.

  On SOP-like embeddings (`experiments/bench_retrieval.py`, k=11) a median of 18 and a 99th
  percentile of 29 screened columns fall within 2 * delta of the k-th score; L=32 leaves about
  0.4% of the rows to the float32 fallback (`bench_retrieval --n 60502`: 99.58% certified).
  """
  return k + max(k, 21)


def _screen_delta(q, q16, r_stats):
  """Per query row, a bound on |x16.y16 - x.y| and on the float32 rescoring error, over all y.

  With e = x - x16 (exact in float32): x.y - x16.y16 = e_x.y + x16.e_y, so by Cauchy-Schwarz
  |x.y - x16.y16| <= |e_x||y| + |x16||e_y|. The bfloat16 products are exact in float32 and
  their float32 accumulation adds at most d 2^-23 |x16||y16| (a full ulp per addition, for
  accelerators that truncate), the float32 rescoring at most d 2^-23 |x||y|; 2^-10 covers the
  rounding of the norms, and d 2^-126 (1 + |x16|)(1 + |y16|) the subnormal inputs and products
  that bfloat16 hardware flushes to zero.
  """
  d = q.shape[1]
  err_r, norm_r, norm16_r = r_stats
  err_q, norm_q, norm16_q = _rounding_norms(q, q16)
  gamma = d * 2.0**-23
  return ((err_q * norm_r + norm16_q * err_r) * (1 + 2.0**-10)
          + gamma * (2 * norm16_q * norm16_r + norm_q * norm_r)
          + d * 2.0**-126 * (1 + norm16_q) * (1 + norm16_r))


@functools.partial(jax.jit, static_argnames=("k",))
def _rerank_block(q, q16, r, r16, values, cands, r_stats, *, k):
  """The screened candidates of a block of queries rescored in float32 and ranked (ties to the
  lower index), whether they provably hold the exact top-k, and the ceiling of the exact scores
  of every column outside them (see `screened_topk`)."""
  delta = _screen_delta(q, q16, r_stats)
  slack = 2.0**-20 * (jnp.abs(values[:, k - 1]) + jnp.abs(values[:, -1]) + 2 * delta)
  complete = values[:, -1] < values[:, k - 1] - 2 * delta - slack
  ceiling = values[:, -1] + delta + slack
  # Ascending indices, so that top_k's lower-position tie-break is the lower-index tie-break.
  cands = jnp.sort(cands, axis=1)
  sims = jnp.einsum("bd,bld->bl", q, r[cands], precision=jax.lax.Precision.HIGHEST)
  v, pos = jax.lax.top_k(sims, cands.shape[1])
  return v, jnp.take_along_axis(cands, pos, axis=1), complete, ceiling


def _rounding_norms(x, x16):
  """Per row: |x - x16| (the bfloat16 rounding residual), |x| and |x16|."""
  x16 = x16.astype(jnp.float32)
  return (jnp.linalg.norm(x - x16, axis=1), jnp.linalg.norm(x, axis=1),
          jnp.linalg.norm(x16, axis=1))


@jax.jit
def _reference_stats(r, r16):
  """The largest `_rounding_norms` over the references, for `_screen_delta`."""
  return tuple(jnp.max(a) for a in _rounding_norms(r, r16))


def screened_topk(q, r, query_ids, *, k, exclude_self, block_size=None):
  """Exact top-k of q @ r.T (float32 rows) from a bfloat16 screening pass, and the rows it
  cannot certify. Returns `(values, indices, complete, ranked)`, shapes (Nq, k), (Nq, k),
  (Nq,), and `ranked = (values, indices, ceiling)` of shapes (Nq, L), (Nq, L), (Nq,): all L
  candidates rescored and ranked, and a ceiling on the exact score of every other column.

  The screening pass keeps the L = `screen_depth(k)` best columns of each row by the bfloat16
  products s16 (float32 accumulation), about twice as fast as float32 products where bfloat16 is
  native; the candidates are then rescored in float32 and the best k kept, ties to the lower
  index. With delta a bound on |s16 - s| for the row (`_rerank_block`), t16 its k-th screened
  score and tau its k-th exact score: the k screened-best columns have s >= t16 - delta, so
  tau >= t16 - delta, and every exact top-k column has s16 >= s - delta >= tau - delta >=
  t16 - 2 delta. So if the L-th screened score is below t16 - 2 delta, every exact top-k column
  is in the list and the rescored result is exact (`complete`); the other rows must be searched
  again in float32 (`exact_topk` does). Whatever the row, a column outside the list has
  s <= s16 + delta <= (L-th screened score) + delta = `ceiling`, so a candidate scoring above the
  ceiling has its exact rank in the whole row: its position in `ranked`.
  """
  nq, d = q.shape
  depth = screen_depth(k)
  q16, r16 = q.astype(jnp.bfloat16), r.astype(jnp.bfloat16)
  bq, br = block_sizes(nq, r.shape[0], depth, block_size)
  values, cands, _ = blocked_topk(q16, r16, query_ids, k=depth, metric="dot",
                                  exclude_self=exclude_self, block_size=bq, ref_block=br)
  stats = _reference_stats(r, r16)
  # Queries per rescoring block: about 2**24 gathered float32 entries (64 MiB).
  block = max(1, min(nq, (1 << 24) // (depth * d)))
  out = [_rerank_block(q[i:i + block], q16[i:i + block], r, r16, values[i:i + block],
                       cands[i:i + block], stats, k=k) for i in range(0, nq, block)]
  values, indices, complete, ceiling = (jnp.concatenate(parts) for parts in zip(*out))
  return values[:, :k], indices[:, :k], complete, (values, indices, ceiling)


def exact_topk(q, r, query_ids, *, k, metric, exclude_self, block_size=None, screen=None,
               return_ranked=False):
  """Exact top-k similarities and indices of every query row against r (prepared float32).

  `screen=None` screens in bfloat16 (`screened_topk`) when the product is large (at least
  2**28 similarities), k is at most 16 and the device multiplies bfloat16 natively; rows the
  screen cannot certify are searched again by the float32 pass, so the result is the same
  either way.
  Under tracing (inside `jax.jit`) the float32 pass is used. Returns `(values, indices)`, and
  with `return_ranked` also the screen's `ranked` candidates (`screened_topk`; None when the
  float32 pass ran).
  """
  nq, nr = q.shape[0], r.shape[0]

  def float32_pass(q, query_ids, metric):
    bq, br = block_sizes(q.shape[0], nr, k, block_size)
    values, indices, _ = blocked_topk(q, r, query_ids, k=k, metric=metric,
                                      exclude_self=exclude_self, block_size=bq, ref_block=br)
    return values, indices

  traced = any(isinstance(a, jax.core.Tracer) for a in (q, r, query_ids))
  if screen is None:
    screen = screens_by_default(nq, nr, k)
  if not screen or traced or screen_depth(k) > nr - int(exclude_self):
    values, indices = float32_pass(q, query_ids, metric)
    return (values, indices, None) if return_ranked else (values, indices)
  if metric == "euclidean":
    # 2 q.r - |r|^2 as a dot product of [q, 1] and [2 r, -|r|^2], so one bound covers it.
    q, r = _augment_euclidean(q, r)
  values, indices, complete, ranked = screened_topk(
      q, r, query_ids, k=k, exclude_self=exclude_self, block_size=block_size)
  redo = np.nonzero(~np.asarray(complete))[0]
  if redo.size:
    rows = jnp.asarray(redo)
    # "dot" for every metric: cosine rows are unit already, euclidean ones augmented above.
    v, i = float32_pass(q[rows], query_ids[rows], "dot")
    values, indices = values.at[rows].set(v), indices.at[rows].set(i)
  return (values, indices, ranked) if return_ranked else (values, indices)


@jax.jit
def _augment_euclidean(q, r):
  ones = jnp.ones((q.shape[0], 1), q.dtype)
  return (jnp.concatenate([q, ones], axis=1),
          jnp.concatenate([2.0 * r, -jnp.sum(r * r, axis=1, keepdims=True)], axis=1))


def knn(queries: ArrayLike, references: ArrayLike, *, k: int, metric: str = "cosine",
        exclude_self: bool = False, block_size: int | None = None,
        screen: bool | None = None) -> tuple[jax.Array, jax.Array]:
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
  q = prepare(queries, metric)
  r = q if (exclude_self and references is queries) else prepare(references, metric)
  values, indices = exact_topk(
      q, r, jnp.arange(nq, dtype=jnp.int32), k=int(k), metric=metric,
      exclude_self=bool(exclude_self), block_size=block_size, screen=screen)
  if metric == "euclidean":
    values = values - jnp.sum(q * q, axis=1, keepdims=True)
  return indices, values
