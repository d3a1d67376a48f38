"""Forward+backward time and XLA temporary memory of each loss, as ratios to softmax CE.

Every case is `jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))` (gradients w.r.t. the features
and the loss's parameters), timed round-robin with the softmax-CE baseline of the same shape in
the same process (`experiments/timing.py`), so that the ratios survive a noisy machine.

    python -m experiments.bench_losses                     # all groups, markdown table
    python -m experiments.bench_losses --out bench.md      # also write the table to a file
    python -m experiments.bench_losses --groups softmax_family --rounds 5

Extending: a case group is a function `(args) -> list[Case]` registered in `CASE_GROUPS`; a shape
set is an entry of `SHAPES`. Each case names its shape; the baseline is measured once per shape.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from dmlax import losses
from experiments import timing


@dataclasses.dataclass(frozen=True)
class Shape:
  batch: int
  dim: int
  num_classes: int


# Shape sets; groups refer to them by name. "imagenet" is the reference shape.
SHAPES: dict[str, Shape] = {
    "imagenet": Shape(batch=256, dim=2048, num_classes=1000),
    "small": Shape(batch=32, dim=256, num_classes=100),
    # Issue 3: the MPA paper's CUB setting and SOP's (K = 10 / 2 proxies per class).
    "mpa_cub": Shape(batch=180, dim=512, num_classes=100),
    "sop": Shape(batch=32, dim=512, num_classes=11318),
}


@dataclasses.dataclass(frozen=True)
class Case:
  """One benchmarked loss.

  loss: (features, labels, params) -> scalar; differentiated w.r.t. features and params.
  init_params: (key, shape) -> params pytree (classifier weights, proxies, ...).
  target: the ratio to softmax CE this case must stay under (None: no target).
  """
  name: str
  shape: str
  loss: Callable[[jax.Array, jax.Array, Any], jax.Array]
  init_params: Callable[[jax.Array, Shape], Any]
  target: float | None = None


def classifier_init(key: jax.Array, shape: Shape) -> jax.Array:
  return jax.random.normal(key, (shape.dim, shape.num_classes), jnp.float32) / np.sqrt(shape.dim)


def softmax_ce(features, labels, weights):
  return losses.softmax_cross_entropy(features @ weights, labels)


def baseline_case(shape: str) -> Case:
  return Case("softmax CE (baseline)", shape, softmax_ce, classifier_init, None)


def softmax_family_cases(args: argparse.Namespace) -> list[Case]:
  """Losses of issue 2: normalised softmax, group softmax, W-Softmax, SGSL."""
  del args
  cases = [
      Case("normalized softmax", "imagenet",
           lambda x, y, w: losses.normalized_softmax_loss(x, y, w), classifier_init),
      Case("group softmax II (1,2,4)", "imagenet",
           lambda x, y, w: losses.group_softmax_loss(x, y, w, groups=(1, 2, 4), loss_type="II"),
           classifier_init, 1.5),
      Case("group softmax I (1,2)", "imagenet",
           lambda x, y, w: losses.group_softmax_loss(x, y, w, groups=(1, 2), loss_type="I"),
           classifier_init),
      Case("group softmax II (1,2,4) prefixed", "imagenet",
           lambda x, y, w: losses.group_softmax_loss(
               x, y, w, groups=(1, 2, 4), grouping="prefixed"), classifier_init),
      Case("group softmax II (1,3) (padded, D % 3 != 0)", "imagenet",
           lambda x, y, w: losses.group_softmax_loss(x, y, w, groups=(1, 3)), classifier_init),
      Case("W-Softmax alpha=1", "imagenet",
           lambda x, y, w: losses.weights_biased_softmax_loss(x, y, w, alpha=1.0),
           classifier_init, 2.5),
      Case("SGSL alone", "imagenet",
           lambda x, y, w: losses.stop_gradient_softmax_loss(x, y, w), classifier_init),
      # start_below=inf: SGSL always joins, so both parts are timed.
      Case("softmax + SGSL", "imagenet",
           lambda x, y, w: losses.softmax_sgsl_loss(x, y, w, start_below=float("inf"))[0],
           classifier_init, 1.3),
      Case("softmax + SGSL, plain lax.stop_gradient", "imagenet", softmax_sgsl_plain,
           classifier_init),
      Case("group softmax II (1,2,4)", "small",
           lambda x, y, w: losses.group_softmax_loss(x, y, w, groups=(1, 2, 4)), classifier_init),
      Case("group softmax II (1,2,4), naive (B, D, C)", "small",
           lambda x, y, w: naive_group_softmax(x, y, w, (1, 2, 4)), classifier_init),
  ]
  return cases


def naive_group_softmax(features, labels, weights, groups):
  """Type-II group softmax that materialises the (B, D, C) ingredient logits (eq. 3) and sums
  them with group masks: the form the efficient implementation avoids. Same grouping rule."""
  dim = features.shape[1]
  z = features[:, :, None] * weights[None, :, :]  # (B, D, C)
  group_index = {g: losses.discriminative_grouping(features, labels, weights, g) for g in groups}
  total = 0.0
  for g in groups:
    masks = jax.nn.one_hot(group_index[g], g, dtype=z.dtype)  # (D, G)
    zbar = jnp.einsum("bdc,dg->bgc", z, masks)
    lse = jax.nn.logsumexp(zbar, axis=-1)
    target = jnp.take_along_axis(zbar, labels[:, None, None], axis=-1)[..., 0]
    total = total + jnp.sum(lse - target, axis=1)
  del dim
  return jnp.mean(total / len(groups))


def softmax_sgsl_plain(features, labels, weights):
  """softmax + SGSL with a second cosine matmul under lax.stop_gradient (no custom_vjp)."""
  logits = features @ weights
  ce = losses.softmax_cross_entropy(logits, labels, label_smoothing=0.1)
  x_hat = features / jnp.linalg.norm(features, axis=1, keepdims=True)
  w = jax.lax.stop_gradient(weights)
  cos = x_hat @ (w / jnp.linalg.norm(w, axis=0, keepdims=True))
  mask = jax.nn.one_hot(labels, weights.shape[1]) > 0
  lse = jax.nn.logsumexp(jnp.where(mask, -jnp.inf, 30.0 * cos), axis=1) / 30.0
  sgsl = jax.nn.softplus(lse - jnp.sum(jnp.where(mask, cos, 0.0), axis=1))
  return ce + jnp.mean(sgsl)


# The registry: name -> case group. Groups are measured in this order.
CASE_GROUPS: dict[str, Callable[[argparse.Namespace], list[Case]]] = {
    "softmax_family": softmax_family_cases,
    "proxy_pair_margin": lambda args: _proxy_module().cases(args),
}


def _proxy_module():
  from experiments import bench_proxy_losses  # imports this module: import lazily
  return bench_proxy_losses


# Extra tables printed (and written to --out) after the main one when their group runs.
EXTRA_TABLES: dict[str, Callable[[argparse.Namespace], str]] = {
    "proxy_pair_margin": lambda args: _proxy_module().pml_table(args),  # vs pytorch-metric-learning
}


def _make_step(case: Case, shape: Shape):
  key = jax.random.PRNGKey(0)
  kx, ky, kp = jax.random.split(key, 3)
  features = jax.random.normal(kx, (shape.batch, shape.dim), jnp.float32)
  labels = jax.random.randint(ky, (shape.batch,), 0, shape.num_classes)
  params = case.init_params(kp, shape)
  step = jax.jit(jax.value_and_grad(case.loss, argnums=(0, 2)))
  return step, (features, labels, params)


def measure(cases: list[Case], *, rounds: int, inner: int) -> list[dict]:
  """Times each case with its shape's baseline interleaved; returns one row per case."""
  by_shape: dict[str, list[Case]] = {}
  for case in cases:
    by_shape.setdefault(case.shape, []).append(case)
  rows = []
  for shape_name, shape_cases in by_shape.items():
    shape = SHAPES[shape_name]
    all_cases = [baseline_case(shape_name)] + shape_cases
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


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--groups", nargs="*", default=list(CASE_GROUPS),
                      help=f"case groups to run, of {list(CASE_GROUPS)}")
  parser.add_argument("--filter", default=None,
                      help="only cases whose name contains this substring (baseline always runs)")
  parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (median)")
  parser.add_argument("--inner", type=int, default=3, help="calls per round")
  parser.add_argument("--out", default=None, help="also write the markdown table here")
  return parser.parse_args(argv)


def main(argv=None) -> int:
  args = parse_args(argv)
  unknown = [g for g in args.groups if g not in CASE_GROUPS]
  if unknown:
    raise SystemExit(f"unknown groups {unknown}; known: {list(CASE_GROUPS)}")
  cases = [case for g in args.groups for case in CASE_GROUPS[g](args)]
  if args.filter:
    cases = [case for case in cases if args.filter in case.name]
  rows = measure(cases, rounds=args.rounds, inner=args.inner)
  table = markdown(rows)
  header = (f"jax {jax.__version__}, backend {jax.default_backend()}, "
            f"{os.cpu_count()} CPUs; median of {args.rounds} interleaved rounds x {args.inner} calls")
  print(header)
  print(table)
  for group, extra in EXTRA_TABLES.items():
    if group in args.groups:
      text = extra(args)
      print("\n" + text)
      table += "\n\n" + text
  missed = [r["loss"] for r in rows if r["target"] is not None and r["time_ratio"] > r["target"]]
  if missed:
    print(f"targets missed: {missed}")
  if args.out:
    with open(args.out, "w") as f:
      f.write(header + "\n\n" + table + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
