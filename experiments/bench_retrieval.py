"""Times `dmlax.metrics.retrieval_metrics` (every metric, one blocked pass) at SOP scale.

Beside it, in the same process and on the same embeddings:
  * the matrix products alone: the float32 tiles of `embeddings @ embeddings.T`, each
    materialised (an optimisation barrier keeps XLA from skipping any of it) and nothing else;
  * the bfloat16 screening products alone (float32 accumulation), the same way: what the
    screened search (`dmlax.metrics.screen.screened_topk`) multiplies;
  * retrieval_metrics with the float32 pass only (`screen=False`);
  * faiss-cpu's exact `IndexFlatIP` search for the same number of neighbours (skipped with a
    message when faiss is not installed; it is a benchmark-only extra, not a dependency);
  * optionally (`--plain_topk`), the same blocked pass with a plain `lax.top_k` per tile.
Peak memory is the rise of the process's peak resident set (VmHWM, reset before each
candidate through /proc/self/clear_refs) over the resident set before it, and XLA's temporary
buffers of the jitted pass.

Full size (SOP's test split: 60,502 embeddings, 11,316 classes), median of 3 interleaved rounds:
  .venv/bin/python -m experiments.bench_retrieval --n 60502 --rounds 3
"""

from __future__ import annotations

import functools
import time

from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from dmlax import metrics
from dmlax.metrics import screen as screening
from dmlax.metrics import tiles
from experiments import cli
from experiments.timing import block


def sop_like(n: int, d: int, seed: int,
             class_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Unit embeddings in classes of 2..12 items (mean about 5.3, as SOP's test split), or of
  `class_size` items (CUB's test split: 59, Cars': 83)."""
  rng = np.random.default_rng(seed)
  sizes = []
  while sum(sizes) < n:
    sizes.append(class_size or int(min(12, 2 + rng.poisson(3.3))))
  sizes[-1] -= sum(sizes) - n
  labels = np.repeat(np.arange(len(sizes)), sizes)
  centres = rng.normal(size=(len(sizes), d)).astype(np.float32)
  x = centres[labels] + 2.2 * rng.normal(size=(n, d)).astype(np.float32)
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  perm = rng.permutation(n)
  return x[perm], labels[perm]


def _status_kb(field: str) -> int:
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith(field + ":"):
        return int(line.split()[1])
  raise KeyError(field)


def measure(fn):
  """(seconds, peak memory rise in bytes, result) of one call."""
  try:
    with open("/proc/self/clear_refs", "w") as f:
      f.write("5")
  except OSError:
    pass
  base = _status_kb("VmRSS")
  start = time.perf_counter()
  out = block(fn())
  seconds = time.perf_counter() - start
  return seconds, (_status_kb("VmHWM") - base) * 1024, out


@functools.partial(jax.jit, static_argnames=("block_size", "ref_block"))
def matmuls_only(x, *, block_size, ref_block):
  """The tiles of x @ x.T of the blocked pass, each materialised, nothing else (bfloat16 x:
  bfloat16 products accumulated in float32, as the screen computes them)."""
  n, d = x.shape
  nqb, nrb = -(-n // block_size), -(-n // ref_block)
  qp = jnp.pad(x, ((0, nqb * block_size - n), (0, 0))).reshape(nqb, block_size, d)
  rp = jnp.pad(x, ((0, nrb * ref_block - n), (0, 0))).reshape(nrb, ref_block, d)

  def one_query_block(qb):
    def one_ref_block(acc, rb):
      tile = tiles.similarity(qb, rb, None, "dot")
      return acc + jax.lax.optimization_barrier(tile)[0, 0], None
    return jax.lax.scan(one_ref_block, jnp.float32(0), rp)[0]

  return jax.lax.map(one_query_block, qp)


_FLAGS = flags.FlagValues()  # the module's own flags: tests call main(argv) in one process
flags.DEFINE_integer("n", 6000, "number of embeddings", flag_values=_FLAGS)
flags.DEFINE_integer("d", 512, "embedding dimension", flag_values=_FLAGS)
flags.DEFINE_integer("seed", 0, "seed of the generated embeddings", flag_values=_FLAGS)
flags.DEFINE_integer("class_size", None, "items per class (default: SOP-like sizes 2..12)",
                     flag_values=_FLAGS)
flags.DEFINE_list("ks", ["1", "2", "4", "8"], "cut-offs k of the metrics", flag_values=_FLAGS)
flags.DEFINE_enum("screen", "auto", ["auto", "on", "off"],
                  "bfloat16 screen of the timed retrieval_metrics (auto: its default)",
                  flag_values=_FLAGS)
flags.DEFINE_integer("rounds", 1, "interleaved timing rounds; the median of each candidate is "
                     "reported", flag_values=_FLAGS)
flags.DEFINE_bool("plain_topk", False, "also time the pass with a plain lax.top_k per tile",
                  flag_values=_FLAGS)


def main(argv=None):
  cli.parse_module_flags(_FLAGS, "bench_retrieval", argv)
  args = _FLAGS

  x, y = sop_like(args.n, args.d, args.seed, args.class_size)
  xj = jnp.asarray(x)
  counts = np.bincount(y)
  ks = tuple(int(k) for k in args.ks)
  depth = int(max(max(ks), counts.max() - 1))
  bq, br = tiles.block_sizes(args.n, args.n, depth, None)
  print(f"N={args.n} d={args.d} classes={counts.size} (sizes {counts.min()}..{counts.max()}, "
        f"mean {counts.mean():.2f}) neighbours K={depth} tiles {bq}x{br} "
        f"devices={jax.devices()}")

  ids = jnp.arange(args.n, dtype=jnp.int32)
  beat = tiles.Beat(jnp.zeros(args.n), ids, jnp.asarray(y, jnp.int32), jnp.asarray(y, jnp.int32))
  compiled = tiles.blocked_topk.lower(
      xj, xj, ids, beat, k=depth, metric="cosine", exclude_self=True, block_size=bq,
      ref_block=br).compile()
  temp = compiled.memory_analysis().temp_size_in_bytes
  mm_temp = matmuls_only.lower(xj, block_size=bq, ref_block=br).compile()
  mm_temp = mm_temp.memory_analysis().temp_size_in_bytes

  x16 = xj.astype(jnp.bfloat16)
  depth16 = screening.screen_depth(depth)
  bq16, br16 = tiles.block_sizes(args.n, args.n, depth16, None)
  screen_temp = tiles.blocked_topk.lower(
      x16, x16, ids, k=depth16, metric="dot", exclude_self=True, block_size=bq16,
      ref_block=br16).compile().memory_analysis().temp_size_in_bytes
  screen = {"auto": None, "on": True, "off": False}[args.screen]
  screened = screening.screens_by_default(args.n, args.n, depth)
  print(f"bfloat16 screen by default: {screened} (jax backend {jax.default_backend()}, "
        f"native bfloat16: {screening.fast_bfloat16()}); --screen {args.screen}")
  screened = screened if screen is None else screen
  candidates = {
      "matrix products alone (float32)": lambda: matmuls_only(xj, block_size=bq, ref_block=br),
      "screening products alone (bfloat16)": lambda: matmuls_only(
          x16, block_size=bq16, ref_block=br16),
      "retrieval_metrics (all metrics)": lambda: metrics.retrieval_metrics(
          xj, y, ks=ks, screen=screen),
      "retrieval_metrics, float32 pass only": lambda: metrics.retrieval_metrics(
          xj, y, ks=ks, screen=False),
  }
  try:
    import faiss  # pylint: disable=g-import-not-at-top

    def faiss_search():
      index = faiss.IndexFlatIP(args.d)
      index.add(x)
      return index.search(x, depth + 1)  # + 1: each query finds itself
    candidates["faiss-cpu IndexFlatIP"] = faiss_search
  except ImportError:
    print("faiss is not installed (pip install faiss-cpu): skipping the faiss baseline")
  if args.plain_topk:
    def plain():
      return tiles.blocked_topk(xj, xj, ids, None, k=depth, metric="cosine",
                                     exclude_self=True, block_size=bq, ref_block=br, chunk=1)
    candidates["blocked plain lax.top_k"] = plain

  # Warm-up at full size compiles every jitted function and faults pages in once.
  for fn in candidates.values():
    block(fn())
  # Rounds interleave the candidates, so a slow spell of this (shared, noisy) machine hits all
  # of them; each candidate's median over the rounds is reported.
  rounds = {name: [] for name in candidates}
  for _ in range(args.rounds):
    for name, fn in candidates.items():
      rounds[name].append(measure(fn))
  results = {}
  for name, runs in rounds.items():
    seconds = [sec for sec, _, _ in runs]
    results[name] = (float(np.median(seconds)), max(mem for _, mem, _ in runs), runs[-1][2])
    if args.rounds > 1:
      print(f"{name}: " + ", ".join(f"{sec:.2f}" for sec in seconds) + " s")

  base = results["matrix products alone (float32)"][0]
  base16 = results["screening products alone (bfloat16)"][0]
  faiss_s = results.get("faiss-cpu IndexFlatIP", (None,))[0]
  print("\n| candidate | seconds | x float32 products | x bfloat16 products | x faiss | "
        "peak RSS rise (MB) |")
  print("|---|---|---|---|---|---|")
  for name, (sec, mem, _) in results.items():
    vs_faiss = f"{sec / faiss_s:.2f}" if faiss_s else "-"
    print(f"| {name} | {sec:.2f} | {sec / base:.2f} | {sec / base16:.2f} | {vs_faiss} | "
          f"{mem / 2**20:.0f} |")
  print(f"\nXLA temporary buffers: float32 pass {temp / 2**20:.0f} MB, screening pass "
        f"{screen_temp / 2**20:.0f} MB, float32 products {mm_temp / 2**20:.0f} MB; embeddings "
        f"{x.nbytes / 2**20:.0f} MB")
  scores = results["retrieval_metrics (all metrics)"][2]
  print("metrics:", {k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items()})
  same = scores == results["retrieval_metrics, float32 pass only"][2]
  print(f"screened metrics identical to the float32 pass's: {same}")
  if screened:
    ids16 = jnp.arange(args.n, dtype=jnp.int32)
    unit = tiles.prepare(xj, "cosine")
    _, _, complete, _ = screening.screened_topk(unit, unit, ids16, k=depth, exclude_self=True)
    print(f"rows certified by the screen: {np.mean(np.asarray(complete)):.4f} "
          f"(the others were searched again in float32)")
  if faiss_s:
    # The same neighbours: faiss's list without each query itself, against ours.
    _, faiss_idx = results["faiss-cpu IndexFlatIP"][2]
    ours, _ = metrics.knn(xj, xj, k=depth, exclude_self=True)
    faiss_idx = np.array([row[row != i][:depth] for i, row in enumerate(faiss_idx)])
    print(f"neighbour lists equal to faiss's: {np.mean(np.asarray(ours) == faiss_idx):.6f}")


if __name__ == "__main__":
  main()
