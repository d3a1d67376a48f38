"""Where `retrieval_metrics`' time goes at SOP scale, and the tile shapes and chunk widths of its
bfloat16 screening pass that were tried, in one process.

  * stages: one warm `retrieval_metrics` call with a timer around each stage (the screening
    pass's `blocked_topk`, the float32 rescoring, the float32 search of the rows the screen
    cannot certify, the positive ranks of the MRR pass, the rest);
  * the two `top_k` calls of the two-stage selection of one (554, 60512) tile, per chunk width;
  * the screening pass on `--queries` queries with other (query block x reference block, chunk)
    shapes, each as a paired ratio against the default (554 x 60512, 32 columns).

    python -m experiments.profile_retrieval --n 60502 --queries 4432
"""

from __future__ import annotations

import functools
import time

from absl import flags
import jax
import jax.numpy as jnp

from dmlax.metrics import neighbours, retrieval, screen, tiles
from experiments import cli
from experiments import timing
from experiments.bench_retrieval import sop_like

_FLAGS = flags.FlagValues()  # the module's own flags: tests call main(argv) in one process
flags.DEFINE_integer("n", 60502, "number of embeddings (SOP-like classes)", flag_values=_FLAGS)
flags.DEFINE_integer("d", 512, "embedding dimension", flag_values=_FLAGS)
flags.DEFINE_integer("queries", 4432, "queries of the tile-shape comparison", flag_values=_FLAGS)
flags.DEFINE_integer("rounds", 5, "interleaved rounds of the tile-shape comparison",
                     flag_values=_FLAGS)


def _timed(module, name, totals):
  """Replaces module.name by a wrapper that adds its (blocking) seconds to totals[label]."""
  fn = getattr(module, name)
  label = f"{module.__name__.rsplit('.', 1)[-1]}.{name}"

  @functools.wraps(fn)
  def wrapper(*args, **kwargs):
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args, **kwargs))
    totals[label] = totals.get(label, 0.0) + time.perf_counter() - start
    return out

  setattr(module, name, wrapper)
  return fn


def stages(x, y) -> dict[str, float]:
  """Seconds per stage of one warm retrieval_metrics call (screen.blocked_topk: the screening
  pass; neighbours.blocked_topk: the float32 search of uncertified rows)."""
  retrieval.retrieval_metrics(x, y)  # compile
  totals: dict[str, float] = {}
  patched = [(m, n) for m, n in ((screen, "blocked_topk"), (screen, "_rerank_block"),
                                 (neighbours, "blocked_topk"), (retrieval, "_positive_counts"))]
  originals = [_timed(m, n, totals) for m, n in patched]
  try:
    start = time.perf_counter()
    retrieval.retrieval_metrics(x, y)
    totals["total"] = time.perf_counter() - start
  finally:
    for (m, n), fn in zip(patched, originals):
      setattr(m, n, fn)
  totals["rest"] = totals["total"] - sum(v for k, v in totals.items() if k != "total")
  return totals


def main(argv=None):
  cli.parse_module_flags(_FLAGS, "profile_retrieval", argv)
  args = _FLAGS
  x, y = sop_like(args.n, args.d, 0)
  xj = jnp.asarray(x)
  print(f"N={args.n} d={args.d}")
  for name, sec in stages(xj, y).items():
    print(f"  {name}: {sec:.2f} s")

  x16 = xj.astype(jnp.bfloat16)
  depth = screen.screen_depth(11)
  bq, br = tiles.block_sizes(args.n, args.n, depth, None)
  key = jax.random.PRNGKey(0)
  print(f"\ntop_k calls of one {bq}x{br} tile's two-stage selection (ms):")
  for chunk in (16, 32, 64):
    if br // chunk < depth + 2:  # a tile too narrow for the two stages (small --n)
      continue
    maxima = jax.random.normal(key, (bq, br // chunk))
    cands = jax.random.normal(key, (bq, (depth + 2) * chunk))
    first = jax.jit(lambda m: jax.lax.top_k(m, depth + 2))
    second = jax.jit(lambda c: jax.lax.top_k(c, depth))
    t = timing.interleaved_medians({"first": lambda: first(maxima),
                                    "second": lambda: second(cands)}, rounds=9, inner=3)
    print(f"  chunk {chunk}: top_k {depth + 2} of {br // chunk} {1e3 * t['first']:.1f} + "
          f"top_k {depth} of {(depth + 2) * chunk} {1e3 * t['second']:.1f}")

  nq = min(args.queries, args.n)
  q, ids = x16[:nq], jnp.arange(nq, dtype=jnp.int32)
  chunk = tiles._CHUNK
  pad32 = lambda cols: chunk * -(-cols // chunk)  # noqa: E731
  shapes = {"default": (bq, br, chunk), "half rows, half columns": (bq // 2, pad32(br // 2), chunk),
            "quarter columns": (256, pad32(br // 4), chunk), "a quarter of the rows": (128, br, chunk),
            "64-column chunks": (bq, 64 * -(-args.n // 64), 64)}
  fns = {name: functools.partial(tiles.blocked_topk, q, x16, ids, k=depth, metric="dot",
                                 exclude_self=True, block_size=min(b, nq), ref_block=r, chunk=c)
         for name, (b, r, c) in shapes.items()}
  want = fns["default"]()
  for name, fn in fns.items():
    got = fn()
    assert all(bool(jnp.array_equal(a, b)) for a, b in zip(got[:2], want[:2])), name
  samples = timing.interleaved_samples(fns, rounds=args.rounds, inner=1, warmup=1)
  print(f"\nscreening pass on {nq} queries (same candidates), against the default:")
  for name, (b, r, c) in shapes.items():
    mid, lo, hi = timing.paired_ratio(samples[name], samples["default"])
    print(f"  {name} ({min(b, nq)}x{r}, chunk {c}): {mid:.2f}x [{lo:.2f}, {hi:.2f}]")


if __name__ == "__main__":
  main()
