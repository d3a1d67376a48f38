"""Forward+backward time and XLA temporary memory of each loss, as ratios to softmax CE.

Every case (`experiments/bench_cases.py`) is `jax.jit(jax.value_and_grad(loss, argnums=(0, 2)))`
(gradients w.r.t. the features and the loss's parameters), timed round-robin with the softmax-CE
baseline of the same shape in the same process (`experiments/timing.py`), so that the ratios
survive a noisy machine.

    python -m experiments.bench_losses                     # all groups, markdown table
    python -m experiments.bench_losses --out bench.md      # also write the table to a file
    python -m experiments.bench_losses --groups softmax_family --rounds 5

With the group "proxy_pair_margin", the comparison with pytorch-metric-learning
(`experiments/bench_proxy_losses.py`) follows the main table.
"""

from __future__ import annotations

import os

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

from experiments import bench_cases
from experiments import bench_proxy_losses
from experiments import timing

_GROUPS = flags.DEFINE_list("groups", list(bench_cases.CASE_GROUPS),
                            f"case groups to run, of {list(bench_cases.CASE_GROUPS)}")
_FILTER = flags.DEFINE_string("filter", None, "only cases whose name contains this substring "
                              "(the baseline always runs)")
_ROUNDS = flags.DEFINE_integer("rounds", 7, "interleaved rounds (median)")
_INNER = flags.DEFINE_integer("inner", 3, "calls per round")
_OUT = flags.DEFINE_string("out", None, "also write the markdown table here")


def _make_step(case: bench_cases.Case, shape: bench_cases.Shape):
  key = jax.random.PRNGKey(0)
  kx, ky, kp = jax.random.split(key, 3)
  features = jax.random.normal(kx, (shape.batch, shape.dim), jnp.float32)
  labels = jax.random.randint(ky, (shape.batch,), 0, shape.num_classes)
  params = case.init_params(kp, shape)
  step = jax.jit(jax.value_and_grad(case.loss, argnums=(0, 2)))
  return step, (features, labels, params)


def measure(cases: list[bench_cases.Case], *, rounds: int, inner: int) -> list[dict]:
  """Times each case with its shape's baseline interleaved; returns one row per case."""
  by_shape: dict[str, list[bench_cases.Case]] = {}
  for case in cases:
    by_shape.setdefault(case.shape, []).append(case)
  rows = []
  for shape_name, shape_cases in by_shape.items():
    shape = bench_cases.SHAPES[shape_name]
    all_cases = [bench_cases.baseline_case(shape_name)] + shape_cases
    fns, mems = {}, {}
    for case in all_cases:
      step, step_args = _make_step(case, shape)
      mems[case.name] = timing.temp_bytes(step, *step_args)
      fns[case.name] = (lambda s=step, a=step_args: s(*a))
    times = timing.interleaved_medians(fns, rounds=rounds, inner=inner)
    base_t, base_m = times[all_cases[0].name], mems[all_cases[0].name]
    for case in all_cases:
      t, m = times[case.name], mems[case.name]
      rows.append({
          "loss": case.name,
          "shape": f"B={shape.batch} D={shape.dim} C={shape.num_classes}",
          "ms": 1e3 * t,
          "time_ratio": t / base_t,
          "temp_mb": None if m is None else m / 2**20,
          "mem_ratio": None if (m is None or not base_m) else m / base_m,
          "target": case.target,
      })
  return rows


def markdown(rows: list[dict]) -> str:
  lines = [
      "| loss | shape | fwd+bwd ms | time / softmax CE | target | XLA temp MiB | temp / softmax CE |",
      "|---|---|---:|---:|---:|---:|---:|",
  ]
  for r in rows:
    target = "" if r["target"] is None else f"<= {r['target']:g}x"
    temp = "n/a" if r["temp_mb"] is None else f"{r['temp_mb']:.1f}"
    mem_ratio = "n/a" if r["mem_ratio"] is None else f"{r['mem_ratio']:.2f}x"
    lines.append(f"| {r['loss']} | {r['shape']} | {r['ms']:.1f} | {r['time_ratio']:.2f}x | "
                 f"{target} | {temp} | {mem_ratio} |")
  return "\n".join(lines)


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  groups = _GROUPS.value
  unknown = [g for g in groups if g not in bench_cases.CASE_GROUPS]
  if unknown:
    raise app.UsageError(f"unknown groups {unknown}; known: {list(bench_cases.CASE_GROUPS)}")
  cases = [case for g in groups for case in bench_cases.CASE_GROUPS[g]()]
  if _FILTER.value:
    cases = [case for case in cases if _FILTER.value in case.name]
  rows = measure(cases, rounds=_ROUNDS.value, inner=_INNER.value)
  table = markdown(rows)
  header = (f"jax {jax.__version__}, backend {jax.default_backend()}, {os.cpu_count()} CPUs; "
            f"median of {_ROUNDS.value} interleaved rounds x {_INNER.value} calls")
  print(header)
  print(table)
  if "proxy_pair_margin" in groups:  # the same losses against pytorch-metric-learning
    text = bench_proxy_losses.pml_table(rounds=_ROUNDS.value, inner=_INNER.value)
    print("\n" + text)
    table += "\n\n" + text
  missed = [r["loss"] for r in rows if r["target"] is not None and r["time_ratio"] > r["target"]]
  if missed:
    print(f"targets missed: {missed}")
  if _OUT.value:
    with open(_OUT.value, "w") as f:
      f.write(header + "\n\n" + table + "\n")
  return 0


if __name__ == "__main__":
  app.run(main)
