"""Blocked matrix products with an exact two-stage top-k: the float32 pass of the neighbour search.

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
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dmlax.checks import check_floating

METRICS = ("cosine", "dot", "euclidean")
# Columns per chunk of the two-stage top-k: the chunk maxima cost one pass over the tile and the
# selection then reads k * _CHUNK candidates per row.
_CHUNK = 32
# Largest reference block (columns of a tile), and the number of tile entries that sets the
# default query block: 2**25 float32 entries are 128 MiB.
_MAX_REF_BLOCK = 1 << 16
_TILE_ENTRIES = 1 << 25
_NORM_EPS = 1e-12


class Beat(NamedTuple):
  """Per query, a position in its ranking: `blocked_topk` counts the references of another label
  ranked before it (similarity above `threshold`, or equal with an index below
  `threshold_index`). All four are 1-D int32/float32 arrays: (Nq,) for the first three, (Nr,)
  for `reference_labels`."""
  threshold: jax.Array
  threshold_index: jax.Array
  query_labels: jax.Array
  reference_labels: jax.Array


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


def block_sizes(num_queries: int, num_refs: int, k: int,
                block_size: int | None) -> tuple[int, int]:
  """(query block, reference block) of the tiles of a search for k neighbours."""
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
  or a padding column; the first `num_valid` columns are not padding. Masking the whole tile
  would make XLA write it out once more, so the chunk maxima are taken over the raw tile and the
  masks applied to the gathered candidates only. At most two chunks per row hold an invalid
  entry that is not in an all-padding chunk (the query's own chunk and the one partly padded
  chunk), so their raw maxima can push at most two chunks down the ranking: the k + 2 best raw
  chunks contain the k best valid ones. (With a label restriction, any chunk may hold invalid
  entries: `blocked_topk` then uses a plain top-k.)
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


def similarity(q, r, r_sq, metric):
  """One tile of similarities; bfloat16 inputs give the screening products (float32
  accumulation), float32 ones full-precision products."""
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
def blocked_topk(q, r, query_ids, beat: Beat | None = None, same_label=None, num_refs=None, *,
                 k, metric, exclude_self, block_size, ref_block, chunk=_CHUNK):
  """Top-k similarities and indices of every row of q against r, shapes (Nq, k).

  `query_ids` (Nq,) are the reference indices of the queries, excluded when `exclude_self`.
  `beat`, optional (`Beat`), also counts per query the references of another label that rank
  before its threshold (similarity above it, or equal with a lower index): the rank of a
  query's best positive found in the same pass, whatever its depth (with k=0, only that).
  `same_label`, optional `(query_labels, reference_labels)`, restricts the neighbours to the
  references of the query's label (a plain `lax.top_k` per tile). `chunk` sets the two-stage
  top-k (1: a plain `lax.top_k` per tile). `num_refs` (possibly traced) leaves the rows of r
  from it on out (padding of a shard). Returns `(values, indices, counts or None)`; a row with
  fewer than k candidates ends in -inf values.
  """
  nq, d = q.shape
  nr = r.shape[0]
  valid = nr if num_refs is None else num_refs
  nqb = -(-nq // block_size)
  nrb = -(-nr // ref_block)
  pad_q = nqb * block_size - nq
  qp = jnp.pad(q, ((0, pad_q), (0, 0))).reshape(nqb, block_size, d)
  ids = jnp.pad(query_ids.astype(jnp.int32), (0, pad_q), constant_values=-1)
  ids = ids.reshape(nqb, block_size)
  rp = jnp.pad(r, ((0, nrb * ref_block - nr), (0, 0))).reshape(nrb, ref_block, d)
  r_sq = jnp.sum(rp * rp, axis=2) if metric == "euclidean" else jnp.zeros((nrb, ref_block))
  thr, thr_idx = (beat.threshold, beat.threshold_index) if beat is not None else (
      jnp.zeros(nq), jnp.zeros(nq, jnp.int32))
  if beat is not None:
    q_lab, r_lab = beat.query_labels, beat.reference_labels
  elif same_label is not None:
    q_lab, r_lab = same_label
  else:
    q_lab, r_lab = jnp.zeros(nq, jnp.int32), jnp.zeros(nr, jnp.int32)
  if same_label is not None:
    chunk = 1
  per_query = tuple(
      jnp.pad(a, [(0, pad_q)] + [(0, 0)] * (a.ndim - 1)).reshape((nqb, block_size) + a.shape[1:])
      for a in (thr, thr_idx, q_lab))
  width = thr.shape[1] if thr.ndim == 2 else None
  r_lab = jnp.pad(r_lab, (0, nrb * ref_block - nr)).reshape(nrb, ref_block)

  def one_query_block(args):
    qb, row_ids, (thr_b, thr_idx_b, q_lab_b) = args

    def one_ref_block(carry, xs):
      best_v, best_i, count = carry
      rb, rsq, r_lab_b, r0 = xs
      col_ids = r0 + jnp.arange(ref_block)
      sims = similarity(qb, rb, rsq, metric)

      def invalid(cols):
        bad = cols + r0 >= valid
        if exclude_self:
          bad = bad | (cols + r0 == row_ids[:, None])
        if same_label is not None:
          bad = bad | (jnp.take(r_lab_b, cols) != q_lab_b[:, None])
        return bad

      if beat is not None:
        # (rows, W, cols): each threshold against every column of the tile.
        t = thr_b[:, :, None] if width else thr_b[:, None, None]
        t_idx = thr_idx_b[:, :, None] if width else thr_idx_b[:, None, None]
        s3 = sims[:, None, :]
        before = (s3 > t) | ((s3 == t) & (col_ids[None, None, :] < t_idx))
        # Other-label references only: the query itself shares its label.
        other = (r_lab_b[None, :] != q_lab_b[:, None]) & (col_ids < valid)[None, :]
        counted = jnp.sum(before & other[:, None, :], axis=2, dtype=jnp.int32)
        count = count + (counted if width else counted[:, 0])
      if k == 0:
        return (best_v, best_i, count), None
      v, i = _tile_topk(sims, k, chunk, invalid, valid - r0)
      if nrb == 1:
        # One tile holds every reference: nothing to merge (a top-k of 2k entries per row
        # saved); the -inf entries of a short row get index nr, as the merge would give them.
        return (v, jnp.where(v == -jnp.inf, nr, i + r0), count), None
      v = jnp.concatenate([best_v, v], axis=1)
      i = jnp.concatenate([best_i, i + r0], axis=1)
      # Earlier blocks come first, so top_k's lower-position tie-break keeps the lower index.
      v, pos = jax.lax.top_k(v, k)
      return (v, jnp.take_along_axis(i, pos, axis=1), count), None

    init = (jnp.full((block_size, k), -jnp.inf, jnp.float32),
            jnp.full((block_size, k), nr, jnp.int32),
            jnp.zeros((block_size, width) if width else (block_size,), jnp.int32))
    (v, i, count), _ = jax.lax.scan(
        one_ref_block, init, (rp, r_sq, r_lab, jnp.arange(nrb, dtype=jnp.int32) * ref_block))
    return v, i, count

  v, i, count = jax.lax.map(one_query_block, (qp, ids, per_query))
  count = count.reshape((nqb * block_size,) + count.shape[2:])[:nq] if beat is not None else None
  v, i = v.reshape(nqb * block_size, k), i.reshape(nqb * block_size, k)
  return v[:nq], i[:nq], count


def label_members(query_labels, reference_labels) -> np.ndarray:
  """(Nq, W) int32: the indices of the references with each query's label, in increasing order,
  padded with -1 (W: the largest such count). Labels are concrete integer arrays."""
  query_labels, reference_labels = np.asarray(query_labels), np.asarray(reference_labels)
  order = np.argsort(reference_labels, kind="stable")
  sorted_labels = reference_labels[order]
  start = np.searchsorted(sorted_labels, query_labels, side="left")
  count = np.searchsorted(sorted_labels, query_labels, side="right") - start
  width = max(1, int(count.max(initial=0)))
  offset = np.arange(width)
  taken = order[np.minimum(start[:, None] + offset, max(len(order) - 1, 0))]
  return np.where(offset < count[:, None], taken, -1).astype(np.int32)


@functools.partial(jax.jit, static_argnames=("width", "metric", "exclude_self", "block_size"))
def positive_ranks(q, r, query_ids, members, *, width, metric, exclude_self, block_size):
  """Per query, its `width` best positives (largest similarity among `members`, the references
  of its label, the query itself excluded with `exclude_self`; lower index on ties) and for
  each the number of other-label references ranked before it (similarity above it, or equal
  with a lower index): `(counts, indices)`, int32 (Nq, width) each; where the label has fewer
  positives the index is Nr and the count that of every other-label reference. `members`
  (Nq, M) int32, M >= width, is `label_members` (-1: padding).

  What `blocked_topk` gives in two passes (`same_label` with k=width, then `beat`), in one pass
  for a reference set that fits one tile (at most `_MAX_REF_BLOCK` rows): the positives are read
  from the tile at their label's columns, and for each of them one count runs over the tile
  (every reference ranked before it, less those of its label, themselves read at the same
  columns), so an exact tie (a copy of a positive under another label) is decided by index, not
  by rounding. Counting without a label mask is what makes each count cheap: on XLA:CPU an
  elementwise label comparison feeding the reduction makes it write full-tile intermediates
  (about one more product time per count).
  """
  nq, d = q.shape
  nr = r.shape[0]
  if nr > _MAX_REF_BLOCK:
    raise ValueError(f"positive_ranks needs at most {_MAX_REF_BLOCK} references (one tile), "
                     f"got {nr}")
  if not 1 <= width <= members.shape[1]:
    raise ValueError(f"width must be in [1, {members.shape[1]}] (the members' columns), "
                     f"got {width}")
  nqb = -(-nq // block_size)
  pad = nqb * block_size - nq
  qp = jnp.pad(q, ((0, pad), (0, 0))).reshape(nqb, block_size, d)
  ids = jnp.pad(query_ids.astype(jnp.int32), (0, pad), constant_values=-1)
  members = jnp.pad(members.astype(jnp.int32), ((0, pad), (0, 0)), constant_values=-1)
  r_sq = jnp.sum(r * r, axis=1) if metric == "euclidean" else None
  # Column indices as float32 (exact below 2**24): each count is a float32 sum of a select, the
  # form XLA's CPU reduction runs fastest.
  cols = jnp.arange(nr, dtype=jnp.float32)

  def one_block(args):
    qb, row_ids, mem = args
    sims = similarity(qb, r, r_sq, metric)
    valid = mem >= 0
    mem_vals = jnp.take_along_axis(sims, jnp.maximum(mem, 0), axis=1)
    candidate = valid & (mem != row_ids[:, None]) if exclude_self else valid
    # Members are in increasing index order, so top_k's lower-position tie-break is the
    # lower-index one; a row with fewer positives ends in -inf, given index Nr.
    best, pos = jax.lax.top_k(jnp.where(candidate, mem_vals, -jnp.inf), width)
    best_index = jnp.where(best == -jnp.inf, nr, jnp.take_along_axis(mem, pos, axis=1))
    totals = []
    for w in range(width):  # one cheap count per positive (see the docstring)
      t, t_col = best[:, w:w + 1], best_index[:, w:w + 1].astype(jnp.float32)
      ahead = (sims > t) | ((sims == t) & (cols[None, :] < t_col))
      totals.append(jnp.sum(jnp.where(ahead, 1.0, 0.0), axis=1))
    total = jnp.stack(totals, axis=1).astype(jnp.int32)
    t, t_idx = best[:, :, None], best_index[:, :, None]
    v, m = mem_vals[:, None, :], mem[:, None, :]
    ahead_same = ((v > t) | ((v == t) & (m < t_idx))) & valid[:, None, :]
    return total - jnp.sum(ahead_same, axis=2, dtype=jnp.int32), best_index

  counts, best_index = jax.lax.map(one_block, (qp, ids.reshape(nqb, block_size),
                                               members.reshape(nqb, block_size, -1)))
  return counts.reshape(nqb * block_size, width)[:nq], best_index.reshape(-1, width)[:nq]
