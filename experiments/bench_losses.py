"""Forward+backward time and XLA temporary memory of each loss, as ratios to softmax CE.

Every case (`experiments/bench_cases.py`) is `jax.jit(jax.value_and_grad(loss, argnums=(0, 2)))`
(gradients w.r.t. the features and the loss's parameters), timed round-robin with the softmax-CE
baseline of the same shape in the same process (`experiments/timing.py`), so that the ratios
survive a noisy machine.

    python -m experiments.bench_losses                     # all groups, markdown table
    python -m experiments.bench_losses --out bench.md      # also write the table to a file
    python -m experiments.bench_losses --groups softmax_family --rounds 5
    python -m experiments.bench_losses --groups group_softmax_profile --cost   # where it goes

The group "group_softmax_profile" takes group softmax II (1, 2, 4) apart (one resolution; three
resolutions without permutation; with a random permutation; with the discriminative sort), and
`--cost` adds XLA's cost analysis of each compiled step (FLOPs and bytes accessed, exact and
free of timing noise). On a loaded machine, `--clock process` with XLA on one thread
(``XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"``) counts the
CPU seconds of the work itself, and `--stat min` takes each case's least disturbed round instead
of the median.

"paired ratio" is the median over the rounds of each round's case / baseline time (the two
calls of a round run moments apart, so a slow spell moves both) with a distribution-free 95%
confidence interval (`timing.paired_ratio`); a target is "met" or "missed" only when the whole
interval is on one side of it, else "inconclusive".

With the group "proxy_pair_margin", the comparison with pytorch-metric-learning
(`experiments/bench_proxy_losses.py`) follows the main table.
"""

from __future__ import annotations

import os
import statistics
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

from dmlax import losses
from experiments import bench_cases
from experiments import bench_proxy_losses
from experiments import timing



def group_softmax_profile_cases() -> list[bench_cases.Case]:
  """Group softmax II (1, 2, 4) at the ImageNet shape, one cost added per case."""
  init = bench_cases.classifier_init

  def gsl(groups, grouping):
    rng = jax.random.PRNGKey(0) if grouping == "random" else None
    return lambda x, y, w: losses.group_softmax_loss(x, y, w, groups=groups, grouping=grouping,
                                                     rng=rng)

  return [
      bench_cases.Case("group softmax (1,): softmax CE through it", "imagenet",
                       gsl((1,), "prefixed"), init),
      bench_cases.Case("+ 3 resolutions (1,2,4), prefixed: no permutation", "imagenet",
                       gsl((1, 2, 4), "prefixed"), init),
      bench_cases.Case("+ feature permutation (random)", "imagenet",
                       gsl((1, 2, 4), "random"), init),
      bench_cases.Case("+ discriminativity score and sort (the loss)", "imagenet",
                       gsl((1, 2, 4), "discriminative"), init),
  ]


_CASE_GROUPS = {**bench_cases.CASE_GROUPS, "group_softmax_profile": group_softmax_profile_cases}
_DEFAULT_GROUPS = list(bench_cases.CASE_GROUPS)

_GROUPS = flags.DEFINE_list("groups", _DEFAULT_GROUPS,
                            f"case groups to run, of {list(_CASE_GROUPS)}")
_FILTER = flags.DEFINE_string("filter", None, "only cases whose name contains this substring "
                              "(the baseline always runs)")
_ROUNDS = flags.DEFINE_integer("rounds", 7, "interleaved rounds (see --stat)")
_INNER = flags.DEFINE_integer("inner", 3, "calls per round")
_OUT = flags.DEFINE_string("out", None, "also write the markdown table here")
_COST = flags.DEFINE_bool("cost", False, "add XLA cost-analysis columns (FLOPs, bytes accessed)")
_STAT = flags.DEFINE_enum("stat", "median", ["median", "min"],
                          "per-case statistic of the rounds (min: the least disturbed round)")
_CLOCK = flags.DEFINE_enum("clock", "wall", ["wall", "process"],
                           "wall time, or this process's CPU time (use with XLA on one thread)")


def _cost(step, *args) -> tuple[float | None, float | None]:
  """(FLOPs, bytes accessed) of the compiled step from XLA's cost analysis (None if unknown)."""
  analysis = step.lower(*args).compile().cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else None
  if not analysis:
    return None, None
  return analysis.get("flops"), analysis.get("bytes accessed")


def _make_step(case: bench_cases.Case, shape: bench_cases.Shape):
  key = jax.random.PRNGKey(0)
  kx, ky, kp = jax.random.split(key, 3)
  features = jax.random.normal(kx, (shape.batch, shape.dim), jnp.float32)
  labels = jax.random.randint(ky, (shape.batch,), 0, shape.num_classes)
  params = case.init_params(kp, shape)
  step = jax.jit(jax.value_and_grad(case.loss, argnums=(0, 2)))
  return step, (features, labels, params)


def measure(cases: list[bench_cases.Case], *, rounds: int, inner: int,
            clock=time.perf_counter, cost: bool = False,
            statistic=statistics.median) -> list[dict]:
  """Times each case with its shape's baseline interleaved; returns one row per case."""
  by_shape: dict[str, list[bench_cases.Case]] = {}
  for case in cases:
    by_shape.setdefault(case.shape, []).append(case)
  rows = []
  for shape_name, shape_cases in by_shape.items():
    shape = bench_cases.SHAPES[shape_name]
    all_cases = [bench_cases.baseline_case(shape_name)] + shape_cases
    fns, mems, costs = {}, {}, {}
    for case in all_cases:
      step, step_args = _make_step(case, shape)
      mems[case.name] = timing.temp_bytes(step, *step_args)
      costs[case.name] = _cost(step, *step_args) if cost else (None, None)
      fns[case.name] = (lambda s=step, a=step_args: s(*a))
    samples = timing.interleaved_samples(fns, rounds=rounds, inner=inner, clock=clock)
    times = {name: statistic(s) for name, s in samples.items()}
    base_t, base_m = times[all_cases[0].name], mems[all_cases[0].name]
    base_flops, base_bytes = costs[all_cases[0].name]
    for case in all_cases:
      t, m = times[case.name], mems[case.name]
      flops, accessed = costs[case.name]
      rows.append({
          "gflop": None if flops is None else flops / 1e9,
          "flop_ratio": None if not (flops and base_flops) else flops / base_flops,
          "accessed_mb": None if accessed is None else accessed / 2**20,
          "accessed_ratio": None if not (accessed and base_bytes) else accessed / base_bytes,
          "loss": case.name,
          "shape": f"B={shape.batch} D={shape.dim} C={shape.num_classes}",
          "ms": 1e3 * t,
          "time_ratio": t / base_t,
          "paired": timing.paired_ratio(samples[case.name], samples[all_cases[0].name]),
          "temp_mb": None if m is None else m / 2**20,
          "mem_ratio": None if (m is None or not base_m) else m / base_m,
          "target": case.target,
      })
  return rows


def verdict(row: dict) -> str:
  """A target judged on the paired ratio's confidence interval: "met" when all of it is at or
  below the target, "missed" when all of it is above, otherwise "inconclusive"."""
  _, lo, hi = row["paired"]
  if hi <= row["target"]:
    return "met"
  return "missed" if lo > row["target"] else "inconclusive"


def markdown(rows: list[dict], cost: bool = False) -> str:
  head = ("| loss | shape | fwd+bwd ms | time / softmax CE | paired ratio [95% CI] | target | "
          "XLA temp MiB | temp / softmax CE |")
  rule = "|---|---|---:|---:|---:|---:|---:|---:|"
  if cost:
    head += " GFLOP | FLOPs / softmax CE | MiB accessed | accessed / softmax CE |"
    rule += "---:|---:|---:|---:|"
  lines = [head, rule]
  fmt = lambda v, spec, unit="": "n/a" if v is None else f"{v:{spec}}{unit}"  # noqa: E731
  for r in rows:
    target = "" if r["target"] is None else f"<= {r['target']:g}x ({verdict(r)})"
    mid, lo, hi = r["paired"]
    line = (f"| {r['loss']} | {r['shape']} | {r['ms']:.1f} | {r['time_ratio']:.2f}x | "
            f"{mid:.2f}x [{lo:.2f}, {hi:.2f}] | {target} | {fmt(r['temp_mb'], '.1f')} | "
            f"{fmt(r['mem_ratio'], '.2f', 'x')} |")
    if cost:
      line += (f" {fmt(r['gflop'], '.3f')} | {fmt(r['flop_ratio'], '.3f', 'x')} |"
               f" {fmt(r['accessed_mb'], '.1f')} | {fmt(r['accessed_ratio'], '.2f', 'x')} |")
    lines.append(line)
  return "\n".join(lines)


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  groups = _GROUPS.value
  unknown = [g for g in groups if g not in _CASE_GROUPS]
  if unknown:
    raise app.UsageError(f"unknown groups {unknown}; known: {list(_CASE_GROUPS)}")
  cases = [case for g in groups for case in _CASE_GROUPS[g]()]
  if _FILTER.value:
    cases = [case for case in cases if _FILTER.value in case.name]
  clock = time.process_time if _CLOCK.value == "process" else time.perf_counter
  statistic = min if _STAT.value == "min" else statistics.median
  rows = measure(cases, rounds=_ROUNDS.value, inner=_INNER.value, clock=clock, cost=_COST.value,
                 statistic=statistic)
  table = markdown(rows, cost=_COST.value)
  header = (f"jax {jax.__version__}, backend {jax.default_backend()}, {os.cpu_count()} CPUs; "
            f"{_STAT.value} of {_ROUNDS.value} interleaved rounds x {_INNER.value} calls "
            f"({_CLOCK.value} clock; load average {os.getloadavg()[0]:.1f}; "
            f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r})")
  print(header)
  print(table)
  if "proxy_pair_margin" in groups:  # the same losses against pytorch-metric-learning
    text = bench_proxy_losses.pml_table(rounds=_ROUNDS.value, inner=_INNER.value)
    print("\n" + text)
    table += "\n\n" + text
  judged = {r["loss"]: verdict(r) for r in rows if r["target"] is not None}
  for word in ("missed", "inconclusive"):
    names = [name for name, v in judged.items() if v == word]
    if names:
      print(f"targets {word} (paired ratio's 95% CI): {names}")
  if _OUT.value:
    with open(_OUT.value, "w") as f:
      f.write(header + "\n\n" + table + "\n")
  return 0


if __name__ == "__main__":
  app.run(main)
