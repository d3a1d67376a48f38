"""A negative result, kept reproducible: the symmetric bfloat16 screening pass is slower here.

A set searched against itself (leave-one-out retrieval, what `retrieval_metrics` does) has a
symmetric similarity matrix, so the screening pass of `dmlax.metrics.screen` could compute only
the upper-triangle tiles X_i X_j^T (i <= j) and use each twice: by rows for block i and,
transposed, by columns for block j. The bfloat16 certificate would still hold, since its bound
covers a pair's score whichever way round it was multiplied. Half the products, but every row
then pays the two-stage top-k selection once per tile (about nb times) instead of once, and
XLA:CPU's `top_k` costs about 1.5 us per row plus 15 ns per element, so on a 2-core CPU the
selection costs more than the products save. This script times, in one process:
  * one square tile: its bfloat16 product alone, with the row selection, with both selections;
  * the whole non-symmetric screening pass (`tiles.blocked_topk` on bfloat16 rows, L
    candidates per row, as `screen.screened_topk` runs it) and the symmetric one (below);
  * a two-halves symmetric pass (`halves_topk`) that selects each row once over its whole row,
    keeping the products of the first half's rows with the second half's columns (a quarter of
    the float32 similarity matrix: 3.7 GB at SOP scale) until the second half's rows need them;
and checks that all keep the same candidate scores.

    python -m experiments.bench_symmetric_screen --n 60502 --rounds 1   # SOP scale
"""

from __future__ import annotations

import functools
import math

from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from dmlax.metrics import screen as screening
from dmlax.metrics import tiles
from experiments import cli
from experiments import timing
from experiments.bench_retrieval import sop_like


def symmetric_block(num: int, k: int, block_size: int | None = None) -> int:
  """Rows per block of `symmetric_topk`: square tiles of about `tiles._TILE_ENTRIES` entries by
  default, a multiple of `tiles._CHUNK` with more than k columns."""
  if block_size is None:
    block_size = math.isqrt(tiles._TILE_ENTRIES)
  block_size = max(block_size, k + 1)
  chunk = tiles._CHUNK
  return min(chunk * math.ceil(block_size / chunk), chunk * math.ceil(num / chunk))


@functools.partial(jax.jit, static_argnames=("k", "block_size", "chunk"))
def symmetric_topk(x, *, k, block_size, chunk=tiles._CHUNK):
  """Top-k of every row of x @ x.T without its diagonal, each product computed once.

  The search of a set against itself (leave-one-out retrieval) has a symmetric similarity
  matrix, so the square tiles (i, j) with i <= j are enough: tile X_i X_j^T gives the rows of
  block i their candidates among block j, and its transpose gives the rows of block j theirs
  among block i. Half the products of `tiles.blocked_topk`, at the price of a second selection (over
  the transposed tile) per off-diagonal tile. For the bfloat16 screen (`screen.screened_topk`),
  whose candidates are certified by an error bound that holds whichever of s(a, b) and s(b, a)
  a pair's score was computed as; among equal scores the kept columns are not by lowest index
  (the screen re-sorts its candidates). Padding rows are never candidates. Returns
  `(values, indices)` of shape (N, k); N - 1 >= k is the caller's to check.
  """
  n, d = x.shape
  b = block_size
  nb = -(-n // b)
  xp = jnp.pad(x, ((0, nb * b - n), (0, 0))).reshape(nb, b, d)
  bi, bj = np.triu_indices(nb)
  cols = jnp.arange(b, dtype=jnp.int32)

  def merge(state, blk, v, i):
    best_v, best_i = state
    v = jnp.concatenate([best_v[blk], v], axis=1)
    i = jnp.concatenate([best_i[blk], i], axis=1)
    v, pos = jax.lax.top_k(v, k)
    return best_v.at[blk].set(v), best_i.at[blk].set(jnp.take_along_axis(i, pos, axis=1))

  def one_tile(state, ij):
    i, j = ij
    q0, r0 = i * b, j * b
    sims = tiles.similarity(xp[i], xp[j], None, "dot")

    def invalid_rows(c):  # block i's rows against block j's columns: padding and the diagonal
      return (c + r0 >= n) | (c + r0 == (q0 + cols)[:, None])

    v, c = tiles._tile_topk(sims, k, chunk, invalid_rows, n - r0)
    state = merge(state, i, v, c + r0)

    def transposed(state):  # block j's rows against block i's columns (i < j: no padding)
      v, c = tiles._tile_topk(sims.T, k, chunk, lambda c: jnp.zeros(c.shape, bool), b)
      return merge(state, j, v, c + q0)

    state = jax.lax.cond(i < j, transposed, lambda state: state, state)
    return state, None

  init = (jnp.full((nb, b, k), -jnp.inf, jnp.float32), jnp.full((nb, b, k), n, jnp.int32))
  (v, i), _ = jax.lax.scan(one_tile, init, (jnp.asarray(bi, jnp.int32),
                                            jnp.asarray(bj, jnp.int32)))
  return v.reshape(nb * b, k)[:n], i.reshape(nb * b, k)[:n]


def halves_block(num: int, block_size: int) -> int:
  """Rows per block of `halves_topk`: a multiple of `tiles._CHUNK`, so that both halves' tiles
  are whole chunks."""
  chunk = tiles._CHUNK
  return min(chunk * math.ceil(block_size / chunk), chunk * math.ceil(num / chunk))


@functools.partial(jax.jit, static_argnames=("k", "block_size"))
def halves_topk(x, *, k, block_size):
  """Top-k of every row of x @ x.T without its diagonal, three quarters of the products.

  The rows are cut into a first half A (`nb // 2` blocks of `block_size`) and the rest B. A's
  rows are multiplied with every row, as in `tiles.blocked_topk`; their products with B's rows
  are kept, in (B block, B row, A row) order, and give B's rows their scores against A
  (s(b, a) = s(a, b)) without multiplying them again, so B's rows are multiplied with B alone.
  Every row is still selected once over its whole row (one tile of all the columns). The cost is
  the kept quarter of the matrix (float32) and the transposes that write and read it. Same
  bfloat16 certificate as `symmetric_topk`; among equal scores the kept columns are by lowest
  index. Returns `(values, indices)` of shape (N, k); needs at least two blocks.
  """
  n, d = x.shape
  b = block_size
  nb = -(-n // b)
  if nb < 2:
    raise ValueError(f"halves_topk needs at least two blocks, got N={n} with blocks of {b}")
  nb_a = nb // 2
  h = nb_a * b
  nb_b = -(-(n - h) // b)
  width = h + nb_b * b  # every tile's columns: A's rows, then B's padded rows
  xp = jnp.pad(x, ((0, width - n), (0, 0)))
  ids = jnp.arange(width, dtype=jnp.int32)

  def select(sims, row_ids):
    return tiles._tile_topk(sims, k, tiles._CHUNK,
                            lambda c: (c >= n) | (c == row_ids[:, None]), n)

  def a_block(_, args):
    q, row_ids = args
    sims = tiles.similarity(q, xp, None, "dot")
    kept = sims[:, h:].reshape(b, nb_b, b).transpose(1, 2, 0)  # (B block, B row, A row)
    return None, (select(sims, row_ids), kept)

  _, ((va, ia), kept) = jax.lax.scan(
      a_block, None, (xp[:h].reshape(nb_a, b, d), ids[:h].reshape(nb_a, b)))
  xb = xp[h:]

  def b_block(_, args):
    q, row_ids, j = args
    left = jax.lax.dynamic_index_in_dim(kept, j, axis=1, keepdims=False)  # (A blk, B row, A row)
    left = left.transpose(1, 0, 2).reshape(b, h)
    sims = jnp.concatenate([left, tiles.similarity(q, xb, None, "dot")], axis=1)
    return None, select(sims, row_ids)

  _, (vb, ib) = jax.lax.scan(
      b_block, None, (xb.reshape(nb_b, b, d), ids[h:].reshape(nb_b, b),
                      jnp.arange(nb_b, dtype=jnp.int32)))
  values = jnp.concatenate([va.reshape(h, k), vb.reshape(-1, k)])[:n]
  indices = jnp.concatenate([ia.reshape(h, k), ib.reshape(-1, k)])[:n]
  return values, indices


_FLAGS = flags.FlagValues()  # the module's own flags: tests call main(argv) in one process
flags.DEFINE_integer("n", 6000, "number of embeddings", flag_values=_FLAGS)
flags.DEFINE_integer("d", 512, "embedding dimension", flag_values=_FLAGS)
flags.DEFINE_integer("k", 11, "neighbours of the search (the screen keeps more candidates)",
                     flag_values=_FLAGS)
flags.DEFINE_integer("rounds", 1, "interleaved timing rounds (median reported)",
                     flag_values=_FLAGS)


def main(argv=None):
  cli.parse_module_flags(_FLAGS, "bench_symmetric_screen", argv)
  args = _FLAGS
  x, _ = sop_like(args.n, args.d, 0)
  x16 = jnp.asarray(x).astype(jnp.bfloat16)
  depth = screening.screen_depth(args.k)
  ids = jnp.arange(args.n, dtype=jnp.int32)
  bq, br = tiles.block_sizes(args.n, args.n, depth, None)
  b = symmetric_block(args.n, depth)
  print(f"N={args.n} d={args.d} L={depth} candidates per row; non-symmetric tiles {bq}x{br}, "
        f"symmetric tiles {b}x{b} ({-(-args.n // b)} blocks)")
  tile_q, tile_r = x16[:b], x16[-b:]
  none = lambda c: jnp.zeros(c.shape, bool)  # noqa: E731

  @jax.jit
  def product(q, r):
    return jax.lax.optimization_barrier(tiles.similarity(q, r, None, "dot"))[0, 0]

  @jax.jit
  def rows(q, r):
    return tiles._tile_topk(tiles.similarity(q, r, None, "dot"), depth, tiles._CHUNK, none, b)

  @jax.jit
  def both(q, r):
    s = tiles.similarity(q, r, None, "dot")
    return (tiles._tile_topk(s, depth, tiles._CHUNK, none, b),
            tiles._tile_topk(s.T, depth, tiles._CHUNK, none, b))

  candidates = {
      "one tile: bfloat16 product alone": lambda: product(tile_q, tile_r),
      "one tile: product + row selection": lambda: rows(tile_q, tile_r),
      "one tile: product + row and column selections": lambda: both(tile_q, tile_r),
      "screening pass, non-symmetric (as screened_topk)": lambda: tiles.blocked_topk(
          x16, x16, ids, k=depth, metric="dot", exclude_self=True, block_size=bq,
          ref_block=br)[:2],
      "screening pass, symmetric (upper triangle)": lambda: symmetric_topk(
          x16, k=depth, block_size=b),
  }
  hb = halves_block(args.n, min(bq, -(-args.n // 2)))  # at least two blocks when N allows
  if -(-args.n // hb) >= 2:
    candidates["screening pass, two halves (a quarter of the products kept)"] = (
        lambda: halves_topk(x16, k=depth, block_size=hb))
  samples = timing.interleaved_samples(candidates, rounds=args.rounds, inner=1, warmup=1)
  base = float(np.median(samples["screening pass, non-symmetric (as screened_topk)"]))
  print("\n| candidate | seconds | x non-symmetric pass |\n|---|---|---|")
  for name, s in samples.items():
    print(f"| {name} | {np.median(s):.3f} | {np.median(s) / base:.2f} |")
  plain = candidates["screening pass, non-symmetric (as screened_topk)"]()
  # The kept scores agree up to the float32 accumulation order of a pair's two products.
  gap = 0.0
  for name, fn in candidates.items():
    if name.startswith("screening pass") and "non-symmetric" not in name:
      gap = max(gap, float(jnp.max(jnp.abs(plain[0] - fn()[0]))))
  print(f"\nlargest difference of the kept candidate scores: {gap:.2e}")
  return gap


if __name__ == "__main__":
  main()
