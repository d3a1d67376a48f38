"""Evaluation of a train state on the protocol's evaluation split(s).

Metric learning (`protocol == "retrieval"`): embeddings of the held-out classes, then
`dmlax.metrics.retrieval_metrics` (every test image queries all the others; In-shop: queries
against the gallery). Classification: top-1 error of the objective's class scores on the test
split (`dmlax.metrics.topk_error`), plus the same retrieval metrics of the features.

Embeddings are computed under `jit` over a 1-D mesh of all devices (batch sharded, variables
replicated), whatever driver trained the state; each process reads its own share of the padded
evaluation batches, and the mask drops the padding, so every item counts exactly once.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from dmlax.train.objectives import Objective
from dmlax.train.state import TrainState


class Embedder:
  """Jitted `model.apply(variables, images, train=False)` over all devices."""

  def __init__(self, model):
    self.mesh = Mesh(np.asarray(jax.devices()), ("batch",))
    self._replicated = NamedSharding(self.mesh, P())
    self._sharded = NamedSharding(self.mesh, P("batch"))
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


def _eval_batches(config, info, split: str):
  from dmlax import data
  per_process = max(1, config.eval.batch_size // jax.process_count())
  per_process += (-per_process) % jax.local_device_count()
  return data.eval_batches(
      config.dataset.name, split=split, batch_size=per_process,
      data_dir=config.dataset.data_dir, image_size=config.dataset.image_size,
      process_index=jax.process_index(), process_count=jax.process_count(), task=info.task,
      augment=config.dataset.augment)


def evaluate(config: ml_collections.ConfigDict, info, model, state: TrainState,
             objective: Objective | None = None, *, embedder: Embedder | None = None
             ) -> dict[str, float]:
  """The evaluation metrics of `state` on the protocol's evaluation split(s).

  Returns:
    Retrieval: `dmlax.metrics.retrieval_metrics` with `ks=config.eval.ks` ("recall@1", "map@r",
    "ndcg@4", ...). Classification: additionally "top1_error" (fraction in [0, 1]) when the
    objective owns class parameters.

  Example:
    >>> metrics = evaluate(config, data.info("digits", task="retrieval"), model, state)
    >>> metrics["recall@1"]
  """
  from dmlax import metrics as dmlax_metrics
  embedder = embedder or Embedder(model)
  variables = embedder.variables(state)
  ks = tuple(int(k) for k in config.eval.ks)
  if info.eval_query_split and info.eval_gallery_split:
    q, ql = embedder(variables, _eval_batches(config, info, info.eval_query_split))
    g, gl = embedder(variables, _eval_batches(config, info, info.eval_gallery_split))
    out = dmlax_metrics.retrieval_metrics(g, gl, ks=ks, query_embeddings=q, query_labels=ql)
    return {k: float(v) for k, v in out.items()}
  emb, labels = embedder(variables, _eval_batches(config, info, info.eval_split))
  ks = tuple(k for k in ks if k < len(labels))
  result = {k: float(v) for k, v in
            dmlax_metrics.retrieval_metrics(emb, labels, ks=ks).items()}
  if info.protocol == "classification" and objective is not None and objective.logits:
    logits = objective.logits(jnp.asarray(emb), state.params["loss"])
    result["top1_error"] = float(dmlax_metrics.topk_error(logits, jnp.asarray(labels), 1))
  return result


def headline_metric(protocol: str) -> tuple[str, str]:
  """(metric, "max"|"min") that ranks checkpoints by default for a protocol."""
  return ("top1_error", "min") if protocol == "classification" else ("recall@1", "max")
