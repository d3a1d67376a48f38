"""Our proxy, margin and pair losses against pytorch-metric-learning (pml): forward+backward time.

For every loss pml also has (`bench_cases.pml_pairs`), our jitted forward+backward (gradients
w.r.t. the embeddings and the proxies / weights) against pml's forward+backward on the same
inputs, timed interleaved in one process, at the MPA paper's CUB shape (B=180, D=512, C=100,
K=10) and SOP's (B=32, D=512, C=11318, K=2); pml is timed with torch's default threads and
with one thread, and the faster is used. A note instead when torch / pml are not installed.

    python -m experiments.bench_proxy_losses --rounds 5             # the pml table
    python -m experiments.bench_losses --groups proxy_pair_margin   # with the ratios to softmax CE
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from experiments import bench_cases
from experiments import timing

FLAGS = flags.FLAGS


def pml_rows(*, rounds: int, inner: int, shapes=tuple(bench_cases.PML_SHAPES)) -> list[dict]:
  """Interleaved medians of ours vs pml; [] when torch / pml are missing."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
    import pytorch_metric_learning as pml  # pylint: disable=g-import-not-at-top
    import pytorch_metric_learning.losses  # noqa: F401
    import pytorch_metric_learning.regularizers  # noqa: F401
  except ImportError:
    return []
  rows = []
  default_threads = torch.get_num_threads()
  for shape_name in shapes:
    batch, dim, num_classes, k = bench_cases.PML_SHAPES[shape_name]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, dim)).astype(np.float32)
    y = rng.integers(0, num_classes, size=batch).astype(np.int32)
    for name, ours, params, theirs, their_params in bench_cases.pml_pairs(
        pml, batch, dim, num_classes, k, rng):
      step = jax.jit(jax.value_and_grad(ours, argnums=(0, 2)))
      jx, jy, jp = jnp.asarray(x), jnp.asarray(y), jnp.asarray(params)
      tx = torch.tensor(x, requires_grad=True)
      ty = torch.tensor(y, dtype=torch.long)
      for pname, value in their_params.items():
        getattr(theirs, pname).data = torch.tensor(value)
      tparams = [getattr(theirs, p) for p in their_params]

      def torch_step(theirs=theirs, tparams=tparams, tx=tx, ty=ty):
        tx.grad = None
        for p in tparams:
          p.grad = None
        loss = theirs(tx, ty)
        loss.backward()
        return loss

      def torch_step_one_thread(torch_step=torch_step):
        torch.set_num_threads(1)
        try:
          return torch_step()
        finally:
          torch.set_num_threads(default_threads)

      ours_value = float(step(jx, jy, jp)[0])
      their_value = float(torch_step().detach())
      times = timing.interleaved_medians(
          {"ours": lambda s=step, a=(jx, jy, jp): s(*a), "pml": torch_step,
           "pml_1": torch_step_one_thread}, rounds=rounds, inner=inner)
      # pml's faster configuration: on a loaded machine torch's thread pool can be far slower
      # than one thread, and we compare against pml at its best.
      best = "pml_1" if times["pml_1"] < times["pml"] else "pml"
      print(f"  measured {name} {shape_name}: ours {1e3 * times['ours']:.2f} ms, pml "
            f"{1e3 * times['pml']:.2f} ms ({default_threads} threads), "
            f"{1e3 * times['pml_1']:.2f} ms (1 thread)", file=sys.stderr, flush=True)
      rows.append({
          "loss": name, "shape": f"B={batch} D={dim} C={num_classes}",
          "ours_ms": 1e3 * times["ours"], "pml_ms": 1e3 * times[best],
          "pml_threads": 1 if best == "pml_1" else default_threads,
          "ratio": times["ours"] / times[best],
          "value_diff": abs(ours_value - their_value),
      })
  return rows


def pml_table(*, rounds: int, inner: int) -> str:
  """The markdown table of `pml_rows`, or a note when torch / pml are not installed."""
  rows = pml_rows(rounds=rounds, inner=inner)
  if not rows:
    return ("(pytorch-metric-learning not installed: install torch==2.13.0 and "
            "pytorch-metric-learning==2.9.0 for the comparison)")
  import torch
  lines = [
      f"Against pytorch-metric-learning (torch {torch.__version__}, "
      f"best of {torch.get_num_threads()} threads and 1 thread), forward+backward, float32:",
      "",
      "| loss | shape | ours ms (jit) | pml ms | pml threads | ours / pml | abs. value diff |",
      "|---|---|---:|---:|---:|---:|---:|",
  ]
  for r in rows:
    lines.append(f"| {r['loss']} | {r['shape']} | {r['ours_ms']:.2f} | {r['pml_ms']:.2f} | "
                 f"{r['pml_threads']} | {r['ratio']:.2f}x | {r['value_diff']:.1e} |")
  slower = [r["loss"] + " " + r["shape"] for r in rows if r["ratio"] > 1.0]
  lines.append("")
  lines.append(f"slower than pml: {slower}" if slower else "no loss slower than pml")
  return "\n".join(lines)


def define_flags() -> None:
  """The command's flags; defined only when this module is the program, since
  `experiments.bench_losses` imports it and defines its own --rounds and --inner."""
  flags.DEFINE_integer("rounds", 7, "interleaved rounds (median)")
  flags.DEFINE_integer("inner", 3, "calls per round")


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  print(f"jax {jax.__version__}, backend {jax.default_backend()}, {os.cpu_count()} CPUs; "
        f"median of {FLAGS.rounds} interleaved rounds x {FLAGS.inner} calls")
  print(pml_table(rounds=FLAGS.rounds, inner=FLAGS.inner))
  return 0


if __name__ == "__main__":
  define_flags()
  app.run(main)
