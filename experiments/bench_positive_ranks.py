"""Times the one-pass positive ranks (`tiles.positive_ranks`) against the two-pass search they
replace (`tiles.blocked_topk` with a label restriction, then its `Beat` count), in one process.

`retrieval_metrics` needs them for the queries with no positive among their K neighbours (the
rank of the first positive: width 1) and, with `full_map=True`, for the queries with positives
past the list (every positive's rank: width = the largest class). Both give the same counts
and indices (checked here); the paired ratio is the median of per-round new / old times with a
distribution-free 95% interval (`experiments/timing.paired_ratio`).

    python -m experiments.bench_positive_ranks --n 60502 --rows 1595 --width 1   # SOP's MRR pass
    python -m experiments.bench_positive_ranks --n 20000 --rows 14848 --width 11  # full_map
"""

from __future__ import annotations


from absl import flags
import jax.numpy as jnp
import numpy as np

from dmlax.metrics import tiles
from experiments import cli
from experiments import timing
from experiments.bench_retrieval import sop_like

_FLAGS = flags.FlagValues()  # the module's own flags: tests call main(argv) in one process
flags.DEFINE_integer("n", 20000, "number of embeddings (SOP-like classes)", flag_values=_FLAGS)
flags.DEFINE_integer("d", 512, "embedding dimension", flag_values=_FLAGS)
flags.DEFINE_integer("rows", 2000, "queries ranked (drawn among those with a positive)",
                     flag_values=_FLAGS)
flags.DEFINE_integer("width", 1, "positives ranked per query", flag_values=_FLAGS)
flags.DEFINE_integer("rounds", 5, "interleaved timing rounds", flag_values=_FLAGS)


def main(argv=None):
  cli.parse_module_flags(_FLAGS, "bench_positive_ranks", argv)
  args = _FLAGS
  x, y = sop_like(args.n, args.d, 0)
  r = tiles.prepare(jnp.asarray(x), "cosine")
  has_positive = np.nonzero(np.bincount(y)[y] > 1)[0]
  rows = np.random.default_rng(0).choice(has_positive, min(args.rows, has_positive.size),
                                         replace=False).astype(np.int32)
  width = min(args.width, int(np.bincount(y).max()))
  q, ids, r_lab = r[rows], jnp.asarray(rows), jnp.asarray(y, jnp.int32)
  q_lab = r_lab[ids]
  members = jnp.asarray(tiles.label_members(y[rows], y))
  bq, br = tiles.block_sizes(rows.size, args.n, width, None)

  def two_passes():
    best, best_index, _ = tiles.blocked_topk(q, r, ids, None, (q_lab, r_lab), k=width,
                                             metric="cosine", exclude_self=True, block_size=bq,
                                             ref_block=br)
    count_block = max(1, min(rows.size, bq // width))  # as retrieval._positive_counts
    _, _, before = tiles.blocked_topk(q, r, ids, tiles.Beat(best, best_index, q_lab, r_lab),
                                      k=0, metric="cosine", exclude_self=True,
                                      block_size=count_block, ref_block=br)
    return before, best_index

  def one_pass():
    return tiles.positive_ranks(q, r, ids, members, width=width, metric="cosine",
                                exclude_self=True, block_size=bq)

  old, new = two_passes(), one_pass()
  same = all(bool(np.array_equal(np.asarray(a), np.asarray(b))) for a, b in zip(old, new))
  samples = timing.interleaved_samples({"two passes": two_passes, "one pass": one_pass},
                                       rounds=args.rounds, inner=1, warmup=1)
  ratio, low, high = timing.paired_ratio(samples["one pass"], samples["two passes"])
  print(f"N={args.n} d={args.d} queries={rows.size} width={width} tiles {bq}x{br}")
  for name, s in samples.items():
    print(f"{name}: median {np.median(s):.3f} s ({', '.join(f'{t:.3f}' for t in s)})")
  print(f"one pass / two passes: {ratio:.2f} [{low:.2f}, {high:.2f}]; same counts and indices: "
        f"{same}")
  return same


if __name__ == "__main__":
  main()
