"""Evaluation of a train state on the protocol's evaluation split(s).

Metric learning (`protocol == "retrieval"`): embeddings of the held-out classes, then
`dmlax.metrics.retrieval_metrics` (every test image queries all the others; In-shop: queries
against the gallery). Classification: top-1 error of the objective's class scores on the test
split (`dmlax.metrics.topk_error`), plus the same retrieval metrics of the features.

Embeddings are computed under `jit` over the run's 1-D mesh of all devices (batch sharded,
variables replicated), whatever driver trained the state; each process reads its own share of
the padded evaluation batches, and the mask drops the padding, so every item counts exactly once.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from dmlax.train.dataset import RunData
from dmlax.train.objectives import Objective
from dmlax.train.state import TrainState


def headline_metric(protocol: str) -> tuple[str, str]:
  """(metric, "max"|"min") that ranks checkpoints by default for a protocol."""
  return ("top1_error", "min") if protocol == "classification" else ("recall@1", "max")


def metric_names(protocol: str, ks, *, has_logits: bool) -> tuple[str, ...]:
  """The names `Evaluator` returns for a protocol and cut-offs `ks`."""
  names = ["map@r", "mrr", "num_lone_queries", "num_queries", "r_precision"]
  for k in ks:
    names += [f"recall@{k}", f"precision@{k}", f"ndcg@{k}", f"map@{k}"]
  if protocol == "classification" and has_logits:
    names.append("top1_error")
  return tuple(sorted(set(names)))


class FeatureExtractor:
  """Jitted `model.apply(variables, images, train=False)` over all devices of `mesh`."""

  def __init__(self, model, mesh: Mesh):
    self.mesh = mesh
    axis = mesh.axis_names[0]
    self._replicated = NamedSharding(mesh, P())
    self._sharded = NamedSharding(mesh, P(axis))
    self._fn = jax.jit(lambda v, x: model.apply(v, x, train=False).astype(jnp.float32),
                       out_shardings=self._replicated)
    self._gather = jax.jit(lambda x: x, out_shardings=self._replicated)

  def variables(self, state: TrainState) -> Any:
    v = {"params": state.params["model"]}
    if jax.tree.leaves(state.batch_stats):
      v["batch_stats"] = state.batch_stats
    return jax.device_put(v, self._replicated)

  def __call__(self, variables, batches) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings (N, D), labels (N,)) of every unpadded item of `batches`, on every process."""
    feats, labels = [], []
    for batch in batches:
      images = np.asarray(batch["image"], np.float32)
      lab = np.asarray(batch["label"], np.int32)
      mask = np.asarray(batch.get("mask", np.ones(len(lab), bool)), bool)
      pad = (-len(lab)) % jax.local_device_count()
      if pad:  # a share that does not split over the local devices: pad it, masked out
        images = np.concatenate([images, np.zeros((pad,) + images.shape[1:], images.dtype)])
        lab = np.concatenate([lab, np.zeros(pad, lab.dtype)])
        mask = np.concatenate([mask, np.zeros(pad, bool)])
      glob = lambda x: jax.make_array_from_process_local_data(self._sharded, x)
      out = self._fn(variables, glob(images))
      # Labels and masks go through the same global layout, so rows stay aligned.
      all_labels, all_mask = self._gather((glob(lab), glob(mask)))
      keep = np.asarray(all_mask)
      feats.append(np.asarray(out)[keep])
      labels.append(np.asarray(all_labels)[keep])
    if not feats:
      raise ValueError("the evaluation split is empty")
    return np.concatenate(feats), np.concatenate(labels)


class Evaluator:
  """The evaluation of a run, built once: `evaluator(state) -> metrics`.

  Args:
    data: the run's dataset handle.
    model: the backbone+head.
    objective: the run's objective (its `logits` give top-1 error on classification tasks).
    ks: cut-offs k of the retrieval metrics (`config.eval.ks`).
    batch_size: global evaluation batch (`config.eval.batch_size`).
    mesh: the run's 1-D device mesh.

  Example:
    >>> metrics = Evaluator(data, model, objective, ks=(1, 2), batch_size=256, mesh=mesh)(state)
    >>> metrics["recall@1"]
  """

  def __init__(self, data: RunData, model, objective: Objective | None, *, ks, batch_size: int,
               mesh: Mesh):
    self.data, self.objective = data, objective
    self.ks = tuple(int(k) for k in ks)
    per_process = max(1, int(batch_size) // jax.process_count())
    self.local_batch = per_process + (-per_process) % jax.local_device_count()
    self.extractor = FeatureExtractor(model, mesh)

  @property
  def metric_names(self) -> tuple[str, ...]:
    return metric_names(self.data.info.protocol, self.ks,
                        has_logits=bool(self.objective and self.objective.logits))

  def max_k(self) -> int:
    """The largest k the evaluation set allows: N - 1 (all the others) or the gallery size."""
    info = self.data.info
    if info.eval_query_split and info.eval_gallery_split:
      return self.data.size(info.eval_gallery_split)
    return self.data.size(info.eval_split) - 1

  def embed(self, state: TrainState, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, D), labels (N,)) of protocol split `split`, gathered on every process."""
    batches = self.data.eval_batches(split, local_batch=self.local_batch)
    return self.extractor(self.extractor.variables(state), batches)

  def __call__(self, state: TrainState) -> dict[str, float]:
    """Retrieval: `dmlax.metrics.retrieval_metrics` ("recall@1", "map@r", "ndcg@4", ...).
    Classification: additionally "top1_error" (fraction in [0, 1]) when the objective owns
    class parameters."""
    from dmlax import metrics as dmlax_metrics  # pylint: disable=g-import-not-at-top
    info = self.data.info
    if info.eval_query_split and info.eval_gallery_split:
      q, ql = self.embed(state, info.eval_query_split)
      g, gl = self.embed(state, info.eval_gallery_split)
      out = dmlax_metrics.retrieval_metrics(g, gl, ks=self.ks, query_embeddings=q,
                                            query_labels=ql)
      return {k: float(v) for k, v in out.items()}
    emb, labels = self.embed(state, info.eval_split)
    result = {k: float(v) for k, v in
              dmlax_metrics.retrieval_metrics(emb, labels, ks=self.ks).items()}
    if info.protocol == "classification" and self.objective is not None and (
        self.objective.logits):
      logits = self.objective.logits(jnp.asarray(emb), state.params["loss"])
      result["top1_error"] = float(dmlax_metrics.topk_error(logits, jnp.asarray(labels), 1))
    return result
