"""Speed of the pair/contrastive losses, miners and cross-batch memory against
pytorch-metric-learning (pml) 2.9: forward+backward at B=256, D=512, float32.

Ours is ``jax.jit(jax.value_and_grad(...))`` (a miner inside the jitted step where the row has
one); pml's is its loss module's forward + ``backward()`` on the same inputs, timed interleaved
in one process (`experiments.timing.interleaved_medians`), with torch at 2 threads and at 1
thread, the faster one reported. Rows whose pml loss has parameters (sub-center ArcFace) take
gradients w.r.t. those too; the XBM rows run one step of a filled 1024-slot memory.

    python -m experiments.bench_pair_losses --rounds 7
"""

from __future__ import annotations

import os
import sys
import time

from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from dmlax import losses
from dmlax import miners
from experiments import cli
from experiments import timing

BATCH, DIM, CLASSES, SUB_CENTERS, MEMORY = 256, 512, 32, 3, 1024


def _rows(pml, x, y, rng):
  """(name, our loss of (x, y, params), params, pml module, pml miner, pml params)."""
  L, M = pml.losses, pml.miners
  w = (0.05 * rng.normal(size=(DIM, 100, SUB_CENTERS))).astype(np.float32)
  no = np.zeros((), np.float32)
  return [
      ("contrastive", lambda a, b, _: losses.contrastive_loss(a, b), no,
       L.ContrastiveLoss(), None, {}),
      ("multi-similarity", lambda a, b, _: losses.multi_similarity_loss(a, b), no,
       L.MultiSimilarityLoss(), None, {}),
      ("multi-similarity + MS miner", lambda a, b, _: losses.multi_similarity_loss(
          a, b, pairs=miners.multi_similarity_miner(a, b)), no,
       L.MultiSimilarityLoss(), M.MultiSimilarityMiner(), {}),
      ("triplet batch-all m=0.2", lambda a, b, _: losses.triplet_margin_loss(a, b), no,
       L.TripletMarginLoss(margin=0.2), None, {}),
      ("triplet + batch-hard miner", lambda a, b, _: losses.triplet_margin_loss(
          a, b, triplets=miners.batch_hard_miner(a, b)), no,
       L.TripletMarginLoss(margin=0.2), M.BatchHardMiner(), {}),
      ("triplet mining='hard' (mean reducer)", lambda a, b, _: losses.triplet_margin_loss(
          a, b, mining="hard"), no,
       L.TripletMarginLoss(margin=0.2, reducer=pml.reducers.MeanReducer()), M.BatchHardMiner(),
       {}),
      ("triplet + semihard triplet miner", lambda a, b, _: losses.triplet_margin_loss(
          a, b, triplets=miners.triplet_margin_miner(a, b, type_of_triplets="semihard")), no,
       L.TripletMarginLoss(margin=0.2), M.TripletMarginMiner(type_of_triplets="semihard"), {}),
      ("contrastive + pair-margin miner", lambda a, b, _: losses.contrastive_loss(
          a, b, pairs=miners.pair_margin_miner(a, b)), no,
       L.ContrastiveLoss(), M.PairMarginMiner(), {}),
      ("ntxent", lambda a, b, _: losses.ntxent_loss(a, b), no, L.NTXentLoss(), None, {}),
      ("supcon", lambda a, b, _: losses.supcon_loss(a, b), no, L.SupConLoss(), None, {}),
      ("circle", lambda a, b, _: losses.circle_loss(a, b), no, L.CircleLoss(), None, {}),
      ("margin (Wu et al.)", lambda a, b, _: losses.margin_loss(a, b), no, L.MarginLoss(),
       None, {}),
      ("lifted structure", lambda a, b, _: losses.lifted_structure_loss(a, b), no,
       L.LiftedStructureLoss(), None, {}),
      ("sub-center ArcFace C=100 K=3", lambda a, b, p: losses.subcenter_arcface_loss(
          a, b % 100, p, margin=np.radians(28.6), scale=64.0), w,
       L.SubCenterArcFaceLoss(num_classes=100, embedding_size=DIM, sub_centers=SUB_CENTERS),
       None, {"W": w.reshape(DIM, 100 * SUB_CENTERS)}),
  ]


def _xbm_rows(pml, rng):
  """One step of a filled memory: ours (update + loss) against pml's CrossBatchMemory."""
  fill = [(rng.normal(size=(BATCH, DIM)).astype(np.float32),
           rng.integers(0, CLASSES, size=BATCH).astype(np.int32)) for _ in range(MEMORY // BATCH)]
  state = losses.xbm_init(MEMORY, DIM)
  for e, lab in fill:
    state = losses.xbm_update(state, e, lab)
  out = []
  for name, ours, theirs in (
      ("XBM 1024 + contrastive", losses.contrastive_loss, pml.losses.ContrastiveLoss()),
      ("XBM 1024 + multi-similarity", losses.multi_similarity_loss,
       pml.losses.MultiSimilarityLoss())):
    xbm = pml.losses.CrossBatchMemory(theirs, DIM, memory_size=MEMORY)
    import torch
    for e, lab in fill:
      xbm.add_to_memory(torch.tensor(e), torch.tensor(lab, dtype=torch.long), BATCH)

    def loss(a, b, _, ours=ours, state=state):
      s = losses.xbm_update(state, a, b)
      return ours(a, b, references=losses.xbm_references(s, BATCH))

    out.append((name, loss, np.zeros((), np.float32), xbm, None, {}))
  return out


def pml_rows(*, rounds: int, inner: int) -> list[dict]:
  try:
    import torch
    import pytorch_metric_learning as pml
    import pytorch_metric_learning.losses  # noqa: F401
    import pytorch_metric_learning.miners  # noqa: F401
    import pytorch_metric_learning.reducers  # noqa: F401
  except ImportError:
    return []
  rng = np.random.default_rng(0)
  x = rng.normal(size=(BATCH, DIM)).astype(np.float32)
  y = rng.integers(0, CLASSES, size=BATCH).astype(np.int32)
  rows = []
  for name, ours, params, theirs, miner, their_params in _rows(pml, x, y, rng) + _xbm_rows(
      pml, rng):
    step = jax.jit(jax.value_and_grad(ours, argnums=(0, 2)))
    jx, jy, jp = jnp.asarray(x), jnp.asarray(y), jnp.asarray(params)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.tensor(y, dtype=torch.long)
    for pname, value in their_params.items():
      getattr(theirs, pname).data = torch.tensor(value)
    tparams = [getattr(theirs, p) for p in their_params]
    is_xbm = isinstance(theirs, pml.losses.CrossBatchMemory)
    snapshot = (theirs.embedding_memory.clone(), theirs.label_memory.clone(),
                theirs.queue_idx) if is_xbm else None

    def torch_step(theirs=theirs, miner=miner, tparams=tparams, snapshot=snapshot):
      tx.grad = None
      for p in tparams:
        p.grad = None
      if snapshot is not None:  # the same filled memory every call, as ours
        theirs.embedding_memory, theirs.label_memory = snapshot[0].clone(), snapshot[1].clone()
        theirs.queue_idx, theirs.has_been_filled = snapshot[2], True
      loss = theirs(tx, ty, miner(tx, ty)) if miner is not None else theirs(tx, ty)
      loss.backward()
      return loss

    def with_threads(n, fn=torch_step):
      def run():
        torch.set_num_threads(n)
        return fn()
      return run

    ours_value = float(step(jx, jy, jp)[0])
    start = time.perf_counter()
    their_value = float(with_threads(2)().detach())
    # pml's NT-Xent and lifted structure take seconds per call at this size: time them once.
    slow = time.perf_counter() - start > 2.0
    times = timing.interleaved_medians(
        {"ours": lambda s=step: s(jx, jy, jp), "pml_2": with_threads(2),
         "pml_1": with_threads(1)}, rounds=1 if slow else rounds, inner=1 if slow else inner,
        warmup=1 if slow else 2)
    best = "pml_1" if times["pml_1"] < times["pml_2"] else "pml_2"
    print(f"  {name}: ours {1e3 * times['ours']:.2f} ms, pml {1e3 * times['pml_2']:.2f} ms "
          f"(2 threads), {1e3 * times['pml_1']:.2f} ms (1 thread)", file=sys.stderr, flush=True)
    rows.append({"loss": name, "ours_ms": 1e3 * times["ours"], "pml_ms": 1e3 * times[best],
                 "pml_threads": int(best[-1]), "ratio": times["ours"] / times[best],
                 "value_diff": abs(ours_value - their_value)})
  return rows


def pml_table(args) -> str:
  rows = pml_rows(rounds=args.rounds, inner=args.inner)
  if not rows:
    return ("(pytorch-metric-learning not installed: install torch==2.13.0 and "
            "pytorch-metric-learning==2.9.0 for the comparison)")
  import torch
  lines = [
      f"Against pytorch-metric-learning (torch {torch.__version__}, best of 2 threads and 1 "
      f"thread), forward+backward, float32, B={BATCH} D={DIM} ({CLASSES} classes):",
      "",
      "| loss | ours ms (jit) | pml ms | pml threads | ours / pml | abs. value diff |",
      "|---|---:|---:|---:|---:|---:|",
  ]
  for r in rows:
    lines.append(f"| {r['loss']} | {r['ours_ms']:.2f} | {r['pml_ms']:.2f} | {r['pml_threads']} "
                 f"| {r['ratio']:.2g}x | {r['value_diff']:.1e} |")
  slower = [r["loss"] for r in rows if r["ratio"] > 1.0]
  lines += ["", f"slower than pml: {slower}" if slower else "no row slower than pml"]
  return "\n".join(lines)


_FLAGS = flags.FlagValues()  # the module's own flags, so main(argv) can be called in-process
flags.DEFINE_integer("rounds", 7, "interleaved rounds (median)", flag_values=_FLAGS)
flags.DEFINE_integer("inner", 3, "calls per round", flag_values=_FLAGS)


def main(argv=None) -> int:
  cli.parse_module_flags(_FLAGS, "bench_pair_losses", argv)
  args = _FLAGS
  print(f"jax {jax.__version__}, backend {jax.default_backend()}, {os.cpu_count()} CPUs; "
        f"median of {args.rounds} interleaved rounds x {args.inner} calls")
  print(pml_table(args))
  return 0


if __name__ == "__main__":
  sys.exit(main())
