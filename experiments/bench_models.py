"""Forward+backward throughput (images/s) and XLA memory of each backbone at 224x224.

Each case is one jitted training step's worth of compute: `jax.value_and_grad` of a scalar of the
features with `train=True` (BatchNorm in batch mode, statistics updated), at the batch size a paper
uses. Cases are timed round-robin in one process (`experiments/timing.py`), and each is also
given as its time per image relative to resnet50's, which survives a noisy machine better than
the absolute figures.

    python -m experiments.bench_models                          # papers' batch sizes
    python -m experiments.bench_models --batch 2 --rounds 2     # a quick CPU run
    python -m experiments.bench_models --models resnet50,bn_inception --dtype bfloat16

Memory: "temp" is XLA's temporary-buffer size for the compiled step (as `timing.temp_bytes`);
"params" the float32 parameters and BatchNorm statistics.
"""

from __future__ import annotations

import os
import sys
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

from dmlax import models
from experiments import timing

# (backbone, batch size, the paper that trains it at that batch size)
CASES = (
    ("resnet18", 256, "torchvision ImageNet recipe"),
    ("resnet50", 256, "GSL (supp. B.1)"),
    ("resnet50", 64, "SGSL"),
    ("resnext50_32x4d", 256, "GSL (supp. B.1)"),
    ("vgg16_bn", 256, "GSL (supp. B.1)"),
    ("bn_inception", 180, "MPA, CUB"),
)

_MODELS = flags.DEFINE_list("models", None, "backbones to run (default: all of CASES)")
_BATCH = flags.DEFINE_integer("batch", None, "override every batch size")
_SIZE = flags.DEFINE_integer("size", 224, "image side")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "interleaved rounds (median)")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "compute dtype")
_OUT = flags.DEFINE_string("out", None, "also write the markdown table here")


def make_step(name: str, batch: int, size: int, dtype):
  model = models.get_model(name, dtype=dtype)
  images = jax.random.normal(jax.random.key(0), (batch, size, size, 3), jnp.float32)
  variables = jax.jit(lambda: model.init(jax.random.key(1), images[:1], train=False))()

  def loss(params, batch_stats, x):
    features, state = model.apply({"params": params, "batch_stats": batch_stats}, x, train=True,
                                  mutable=["batch_stats"])
    return jnp.mean(jnp.square(features)), state

  step = jax.jit(jax.value_and_grad(loss, has_aux=True))
  args = (variables["params"], variables["batch_stats"], images)
  param_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(variables))
  # One ahead-of-time compile serves both the memory figure and the timing (timing.temp_bytes
  # would compile the step a second time, minutes for these models on a CPU).
  compiled = step.lower(*args).compile()
  analysis = compiled.memory_analysis()
  temp = None if analysis is None else int(analysis.temp_size_in_bytes)
  return compiled, args, param_bytes, temp


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  dtype = jnp.float32 if _DTYPE.value == "float32" else jnp.bfloat16
  wanted = None if _MODELS.value is None else set(_MODELS.value)
  cases = []
  for name, paper_batch, source in CASES:
    if wanted is not None and name not in wanted:
      continue
    batch = _BATCH.value or paper_batch
    if any(c[0] == name and c[1] == batch for c in cases):
      continue  # --batch can make two cases identical
    cases.append((name, batch, f"{paper_batch} ({source})"))
  if not cases:
    print(f"no case selected; backbones: {sorted({c[0] for c in CASES})}", file=sys.stderr)
    return 2
  fns, info = {}, {}
  for name, batch, source in cases:
    start = time.perf_counter()
    step, step_args, param_bytes, temp = make_step(name, batch, _SIZE.value, dtype)
    key = f"{name} b{batch}"
    fns[key] = (lambda s=step, a=step_args: s(*a))
    info[key] = (name, batch, source, temp, param_bytes)
    print(f"compiled {key} in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
  seconds = timing.interleaved_medians(fns, rounds=_ROUNDS.value, inner=1, warmup=1)
  per_image = {k: seconds[k] / info[k][1] for k in fns}
  baseline = next((v for k, v in per_image.items() if k.startswith("resnet50 ")), None)
  device = jax.devices()[0]
  lines = [
      f"Device: {device.platform} ({device.device_kind}), {jax.device_count()} device(s); "
      f"{_SIZE.value}x{_SIZE.value}, {_DTYPE.value} compute, median of {_ROUNDS.value} rounds.",
      "",
      "| backbone | batch | papers' batch | images/s | time/image vs resnet50 | XLA temp MB "
      "| params MB |",
      "|---|---|---|---|---|---|---|",
  ]
  for key in fns:
    name, batch, source, temp, param_bytes = info[key]
    ratio = "" if baseline is None else f"{per_image[key] / baseline:.2f}"
    temp_mb = "n/a" if temp is None else f"{temp / 2**20:.0f}"
    lines.append(f"| {name} | {batch} | {source} | {batch / seconds[key]:.3g} | {ratio} | "
                 f"{temp_mb} | {param_bytes / 2**20:.0f} |")
  table = "\n".join(lines)
  print(table)
  if _OUT.value:
    os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
    with open(_OUT.value, "w") as f:
      f.write(table + "\n")
  return 0


if __name__ == "__main__":
  app.run(main)
