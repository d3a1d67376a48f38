"""The bfloat16 screen of the neighbour search, with its certified error bound.

A pass of bfloat16 products accumulated in float32 (about 2.5x the float32 product rate on a
CPU with AMX, more on GPU/TPU) keeps L ~ 2k candidates per query, which are rescored in
float32. A per-row bound delta on the bfloat16 error (`_screen_delta`) certifies that the
candidates hold the exact top-k whenever the L-th screened score is more than 2 delta below the
k-th (`screened_topk`); `neighbours.exact_topk` searches the rows it cannot certify (near-ties
within the bfloat16 error) again with the float32 pass, so the result is the float32 one
either way.

Exact duplicates. The float32 rescoring of the candidates is a batched product whose rounding
can depend on a candidate's position in the list, so identical reference rows could come out
one ulp apart and be ordered by rounding instead of by index. Identical rows have the same exact
score, so the rescoring gives every copy in a list the score of its first copy
(`duplicate_representatives` finds them): copies tie exactly and rank by index, as in the
float32 pass.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from dmlax.metrics.tiles import block_sizes, blocked_topk

# When `exact_topk` screens by default: from this many similarities (about 16k x 16k) and up to
# this many neighbours. Below, the screen's linear costs (a top-L selection with L about 2k,
# the rescoring gather of L rows per query) outweigh the cheaper product. Measured with
# `python -m experiments.bench_retrieval --screen on --rounds 3` (retrieval_metrics screened /
# float32 pass): --n 20000 (k=11) 0.81x, --n 60502 0.58x, --n 5924 --class_size 59 (CUB, k=58)
# 2.5x.
_SCREEN_MIN_ENTRIES = 1 << 28
_SCREEN_MAX_K = 16


def fast_bfloat16() -> bool:
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
          and fast_bfloat16())


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
def _rerank_block(q, q16, r, r16, values, cands, r_stats, rep, *, k):
  """The screened candidates of a block of queries rescored in float32 and ranked (ties to the
  lower index), whether they provably hold the exact top-k, and the ceiling of the exact scores
  of every column outside them (see `screened_topk`). `rep` (Nr,) maps each reference to its
  first identical copy (None: no copies)."""
  delta = _screen_delta(q, q16, r_stats)
  slack = 2.0**-20 * (jnp.abs(values[:, k - 1]) + jnp.abs(values[:, -1]) + 2 * delta)
  complete = values[:, -1] < values[:, k - 1] - 2 * delta - slack
  ceiling = values[:, -1] + delta + slack
  # Ascending indices, so that top_k's lower-position tie-break is the lower-index tie-break.
  cands = jnp.sort(cands, axis=1)
  # A few queries at a time, each a matrix-vector product with its gathered rows: several times
  # faster on a CPU than one batched product over the block (which XLA runs as a loop of small
  # products over a materialised gather).
  sims = jax.lax.map(
      lambda row: jnp.dot(r[row[1]], row[0], precision=jax.lax.Precision.HIGHEST), (q, cands),
      batch_size=8)
  if rep is not None:
    sims = _tie_copies(sims, rep[cands])
  v, pos = jax.lax.top_k(sims, cands.shape[1])
  return v, jnp.take_along_axis(cands, pos, axis=1), complete, ceiling


def _tie_copies(sims, keys):
  """Each entry of a row takes the value of the row's first entry with the same key."""
  length = sims.shape[1]
  order = jnp.argsort(keys, axis=1, stable=True)
  sorted_keys = jnp.take_along_axis(keys, order, axis=1)
  start = jnp.concatenate(
      [jnp.ones_like(sorted_keys[:, :1], bool), sorted_keys[:, 1:] != sorted_keys[:, :-1]], 1)
  first = jax.lax.cummax(jnp.where(start, jnp.arange(length), 0), axis=1)
  tied = jnp.take_along_axis(jnp.take_along_axis(sims, order, axis=1), first, axis=1)
  return jnp.take_along_axis(tied, jnp.argsort(order, axis=1), axis=1)


def duplicate_representatives(x) -> np.ndarray | None:
  """For each row of a concrete (N, D) array, the index of its first identical row (equal
  values: -0.0 equals 0.0), or None when all rows differ."""
  x = np.asarray(x)
  n = x.shape[0]
  if n < 2:
    return None
  def bits(rows):
    return np.ascontiguousarray(x[rows].astype(np.float32) + np.float32(0.0)).view(np.uint32)

  # Two 32-bit multiplicative hashes of the bit patterns select the candidate copies; equal
  # hashes are then compared exactly. Rows in chunks keep the temporaries small.
  mult = np.random.default_rng(0).integers(1, 2**32, size=(2, x.shape[1]), dtype=np.uint32)
  mult |= np.uint32(1)
  hashes = np.empty(n, np.uint64)
  for start in range(0, n, 4096):
    b = bits(slice(start, start + 4096))
    h = [np.sum(b * m, axis=1, dtype=np.uint32).astype(np.uint64) for m in mult]
    hashes[start:start + 4096] = (h[0] << np.uint64(32)) | h[1]
  _, inverse, counts = np.unique(hashes, return_inverse=True, return_counts=True)
  shared = np.nonzero(counts[inverse.reshape(-1)] > 1)[0]
  if shared.size == 0:
    return None
  _, group = np.unique(bits(shared), axis=0, return_inverse=True)
  group = group.reshape(-1)
  _, first = np.unique(group, return_index=True)
  rep = np.arange(n, dtype=np.int32)
  rep[shared] = shared[first[group]]
  return None if np.all(rep == np.arange(n)) else rep


def _rounding_norms(x, x16):
  """Per row: |x - x16| (the bfloat16 rounding residual), |x| and |x16|."""
  x16 = x16.astype(jnp.float32)
  return (jnp.linalg.norm(x - x16, axis=1), jnp.linalg.norm(x, axis=1),
          jnp.linalg.norm(x16, axis=1))


@jax.jit
def _reference_stats(r, r16):
  """The largest `_rounding_norms` over the references, for `_screen_delta`."""
  return tuple(jnp.max(a) for a in _rounding_norms(r, r16))


def screened_topk(q, r, query_ids, *, k, exclude_self, block_size=None, rep=None):
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
  ceiling has its exact rank in the whole row: its position in `ranked`. `rep`: the
  `duplicate_representatives` of the references as a (Nr,) int32 array (None: no copies), whose
  copies the rescoring ties.
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
                       cands[i:i + block], stats, rep, k=k) for i in range(0, nq, block)]
  values, indices, complete, ceiling = (jnp.concatenate(parts) for parts in zip(*out))
  return values[:, :k], indices[:, :k], complete, (values, indices, ceiling)
