"""Where W-Softmax's forward+backward time goes, against softmax CE (B=256 D=2048 C=1000).

Prints, for the two jitted ``value_and_grad`` steps of `experiments/bench_cases.py`, XLA's cost
analysis (FLOPs, bytes accessed), the count of products, gathers and scatters in the optimised
HLO, and the time ratio as the median over interleaved rounds of the per-round ratio, in wall
time and in process CPU time (the latter is less sensitive to other processes on a shared
machine). The FLOPs ratio is the floor: W-Softmax has exactly one extra (B, D, C) product per
product of softmax CE.

    python -m experiments.profile_w_softmax --rounds 15
"""

from __future__ import annotations

import re
import statistics
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

from experiments import bench_cases

_ROUNDS = flags.DEFINE_integer("rounds", 15, "interleaved rounds (median of per-round ratios)")
_SHAPE = "imagenet"


def _cases() -> list[bench_cases.Case]:
  w_softmax = [c for c in bench_cases.softmax_family_cases()
               if c.name.startswith("W-Softmax") and c.shape == _SHAPE]
  return [bench_cases.baseline_case(_SHAPE)] + w_softmax


def _make_step(case: bench_cases.Case, shape: bench_cases.Shape):
  """The step `experiments/bench_losses.py` times: value and gradients (features, params)."""
  kx, ky, kp = jax.random.split(jax.random.PRNGKey(0), 3)
  features = jax.random.normal(kx, (shape.batch, shape.dim), jnp.float32)
  labels = jax.random.randint(ky, (shape.batch,), 0, shape.num_classes)
  step = jax.jit(jax.value_and_grad(case.loss, argnums=(0, 2)))
  return step, (features, labels, case.init_params(kp, shape))


def _hlo_counts(text: str) -> dict[str, int]:
  """Instructions of each kind in the optimised HLO, fused computations included."""
  ops = re.findall(r"= \S+ (dot|gather|scatter)\(", text)
  return {op: ops.count(op) for op in ("dot", "gather", "scatter")}


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  shape = bench_cases.SHAPES[_SHAPE]
  steps = {}
  print(f"jax {jax.__version__}, backend {jax.default_backend()}, B={shape.batch} "
        f"D={shape.dim} C={shape.num_classes}")
  for case in _cases():
    step, args = _make_step(case, shape)
    compiled = step.lower(*args).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    counts = _hlo_counts(compiled.as_text())
    print(f"{case.name:24s} GFLOP {cost['flops'] / 1e9:6.2f}  MB accessed "
          f"{cost['bytes accessed'] / 1e6:6.1f}  HLO {counts}")
    steps[case.name] = (step, args)
  for step, args in steps.values():
    jax.block_until_ready(step(*args))
  wall = {name: [] for name in steps}
  cpu = {name: [] for name in steps}
  for _ in range(_ROUNDS.value):
    for name, (step, args) in steps.items():
      t, c = time.perf_counter(), time.process_time()
      jax.block_until_ready(step(*args))
      wall[name].append(time.perf_counter() - t)
      cpu[name].append(time.process_time() - c)
  base = next(iter(steps))
  for name in steps:
    ratio_wall = statistics.median(a / b for a, b in zip(wall[name], wall[base]))
    ratio_cpu = statistics.median(a / b for a, b in zip(cpu[name], cpu[base]))
    print(f"{name:24s} time / softmax CE: wall {ratio_wall:.2f}x, CPU {ratio_cpu:.2f}x "
          f"(median of {_ROUNDS.value} interleaved rounds)")
  return 0


if __name__ == "__main__":
  app.run(main)
