"""Benchmark cases of the proxy, pair and margin losses, and their speed against
pytorch-metric-learning (pml).

Two parts:
- `cases(args)`: rows for `experiments/bench_losses.py` (group "proxy_pair_margin"): jitted
  forward+backward time and XLA temporary memory as ratios to softmax CE of the same shape, at the
  MPA paper's shape (B=180, D=512, C=100, K=10) and SOP's (B=32, D=512, C=11318, K=2).
- `pml_table(args)`: for every loss pml also has, our jitted forward+backward (gradients w.r.t.
  the embeddings and the proxies / weights) against pml's forward+backward on the same inputs,
  timed interleaved in one process; pml is timed with torch's default threads and with one
  thread, and the faster is used. A note instead when torch / pml are not installed.

    python -m experiments.bench_losses --groups proxy_pair_margin   # both tables
    python -m experiments.bench_proxy_losses --rounds 5             # only the pml table
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from dmlax import losses
from experiments import timing

# name -> (batch, dim, num_classes, proxies per class)
PML_SHAPES = {"mpa_cub": (180, 512, 100, 10), "sop": (32, 512, 11318, 2)}


def _proxies(k: int, init=losses.soft_triple_init):
  def make(key, shape):
    return init(key, (shape.num_classes, k, shape.dim))
  return make


def _single_proxies(key, shape):
  return losses.proxy_anchor_init(key, (shape.num_classes, shape.dim))


def _no_params(key, shape):
  del key, shape
  return jnp.zeros(())


def cases(args: argparse.Namespace) -> list:
  """Rows for bench_losses.py: our losses at the MPA-paper and SOP shapes."""
  del args
  from experiments.bench_losses import Case, classifier_init  # noqa: avoid a circular import
  rows = []
  for shape, k in (("mpa_cub", 10), ("sop", 2)):
    rows += [
        Case(f"MPA K={k}", shape, losses.mpa_loss, _proxies(k)),
        Case(f"MPA-DW K={k}", shape, losses.mpa_dw_loss, _proxies(k)),
        Case(f"MPA-AP K={k}", shape, losses.mpa_ap_loss, _proxies(k)),
        Case(f"SoftTriple K={k}", shape, losses.soft_triple_loss, _proxies(k)),
        Case("ProxyAnchor", shape, losses.proxy_anchor_loss, _single_proxies),
        Case("ProxyNCA", shape, losses.proxy_nca_loss, _single_proxies),
        Case("ArcFace", shape, losses.arcface_loss, classifier_init),
        Case("L-Softmax m=4", shape, losses.large_margin_softmax_loss, classifier_init),
    ]
  pair = lambda f: (lambda x, y, _: f(x, y))
  rows += [
      Case("CosFace", "mpa_cub", losses.cosface_loss, classifier_init),
      Case("SphereFace m=4", "mpa_cub", losses.sphereface_loss, classifier_init),
      Case("SigSoftmax", "mpa_cub", losses.sigsoftmax_loss, classifier_init),
      Case("Virtual Softmax", "mpa_cub", losses.virtual_softmax_loss, classifier_init),
      Case("multi-similarity", "mpa_cub", pair(losses.multi_similarity_loss), _no_params),
      Case("triplet batch-all", "mpa_cub", pair(losses.triplet_margin_loss), _no_params),
      Case("triplet batch-hard", "mpa_cub",
           pair(functools.partial(losses.triplet_margin_loss, mining="hard")), _no_params),
      Case("contrastive", "mpa_cub", pair(losses.contrastive_loss), _no_params),
  ]
  return rows


# ---------------------------------------------------------------------------------------------
# Against pytorch-metric-learning.


def _pml_pairs(pml, batch, dim, num_classes, k, rng):
  """(name, our loss(x, y, params), our params, pml loss object, pml param names, pml params)."""
  pl, reg = pml.losses, pml.regularizers
  w_multi = (rng.normal(size=(num_classes, k, dim)) / np.sqrt(num_classes * k)).astype(np.float32)
  w_single = w_multi[:, 0].copy()
  w_cls = (rng.normal(size=(dim, num_classes)) / np.sqrt(dim)).astype(np.float32)
  out = [
      ("ProxyAnchor", losses.proxy_anchor_loss, w_single, pl.ProxyAnchorLoss(num_classes, dim),
       {"proxies": w_single}),
      ("ProxyNCA", losses.proxy_nca_loss, w_single, pl.ProxyNCALoss(num_classes, dim),
       {"proxies": w_single}),
  ]
  fc = {"fc": w_multi.reshape(num_classes * k, dim).T}
  if num_classes * k <= 5000:
    out.append((f"SoftTriple K={k} + regulariser", losses.soft_triple_loss, w_multi,
                pl.SoftTripleLoss(num_classes, dim, centers_per_class=k,
                                  weight_regularizer=reg.SparseCentersRegularizer(num_classes, k),
                                  weight_reg_weight=0.2), fc))
  else:
    # pml's SparseCentersRegularizer builds (C K)^2 masks and similarities (22636^2 at SOP:
    # minutes and GBs), so at this size both sides run without the regulariser.
    out.append((f"SoftTriple K={k}, no regulariser",
                functools.partial(losses.soft_triple_loss, tau=0.0), w_multi,
                pl.SoftTripleLoss(num_classes, dim, centers_per_class=k), fc))
  out += [
      ("L-Softmax m=4", losses.large_margin_softmax_loss, w_cls,
       pl.LargeMarginSoftmaxLoss(num_classes, dim), {"W": w_cls}),
      ("SphereFace m=4", losses.sphereface_loss, w_cls, pl.SphereFaceLoss(num_classes, dim),
       {"W": w_cls}),
      ("CosFace", losses.cosface_loss, w_cls, pl.CosFaceLoss(num_classes, dim), {"W": w_cls}),
      ("ArcFace", losses.arcface_loss, w_cls,
       pl.ArcFaceLoss(num_classes, dim, margin=np.degrees(0.5)), {"W": w_cls}),
  ]
  if hasattr(losses, "normalized_softmax_loss"):
    out.append(("NormalizedSoftmax", losses.normalized_softmax_loss, w_cls,
                pl.NormalizedSoftmaxLoss(num_classes, dim), {"W": w_cls}))
  if k == 10:  # pair losses do not depend on C; once, at the larger batch
    zero = np.zeros((), np.float32)
    pair = lambda f: (lambda x, y, _: f(x, y))
    out += [
        ("multi-similarity", pair(losses.multi_similarity_loss), zero,
         pl.MultiSimilarityLoss(), {}),
        ("triplet batch-all", pair(losses.triplet_margin_loss), zero,
         pl.TripletMarginLoss(margin=0.2), {}),
        ("contrastive", pair(losses.contrastive_loss), zero, pl.ContrastiveLoss(), {}),
    ]
  return out


def pml_rows(*, rounds: int, inner: int, shapes=tuple(PML_SHAPES)) -> list[dict]:
  """Interleaved medians of ours vs pml; [] when torch / pml are missing."""
  try:
    import torch
    import pytorch_metric_learning as pml
    import pytorch_metric_learning.losses  # noqa: F401
    import pytorch_metric_learning.regularizers  # noqa: F401
  except ImportError:
    return []
  rows = []
  default_threads = torch.get_num_threads()
  for shape_name in shapes:
    batch, dim, num_classes, k = PML_SHAPES[shape_name]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, dim)).astype(np.float32)
    y = rng.integers(0, num_classes, size=batch).astype(np.int32)
    for name, ours, params, theirs, their_params in _pml_pairs(pml, batch, dim, num_classes, k,
                                                                rng):
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
          {"ours": lambda s=step: s(jx, jy, jp), "pml": torch_step,
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


def pml_table(args: argparse.Namespace) -> str:
  rows = pml_rows(rounds=args.rounds, inner=args.inner)
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


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=7)
  parser.add_argument("--inner", type=int, default=3)
  args = parser.parse_args(argv)
  print(f"jax {jax.__version__}, backend {jax.default_backend()}, {os.cpu_count()} CPUs; "
        f"median of {args.rounds} interleaved rounds x {args.inner} calls")
  print(pml_table(args))
  return 0


if __name__ == "__main__":
  sys.exit(main())
