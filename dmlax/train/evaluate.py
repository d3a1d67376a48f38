"""Evaluation of a train state on the protocol's evaluation split(s).

Metric learning (`protocol == "retrieval"`): embeddings of the held-out classes, then
`dmlax.metrics.retrieval_metrics` (every test image queries all the others; In-shop: queries
against the gallery). Classification: top-1 error of the objective's class scores on the test
split (`dmlax.metrics.topk_error`), plus the same retrieval metrics of the features.
Face verification (`config.eval.verification_dataset`, e.g. "lfw"; W-Softmax section 5.5): the
features of that dataset's test split, the cosine similarity of each of its pairs
(`dmlax.data.verification_pairs`) and the 10-fold accuracy of `dmlax.metrics.verification_accuracy`,
reported as "<name>_accuracy" (and "<name>_accuracy_std") instead of the training dataset's own
evaluation.

Embeddings are computed under `jit` over the run's 1-D mesh of all devices (batch sharded,
variables replicated), whatever driver trained the state; each process reads its own share of
the padded evaluation batches, and the mask drops the padding, so every item counts exactly once.
With the classes split over a (data, model) mesh (`config.mesh`), the test-time class scores are
computed on that mesh, each device against its own block of classes, and the per-block best
classes merge into the global top-1 (`dmlax.train.class_parallel.top1_predictions`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from dmlax.train import class_parallel
from dmlax.train.dataset import RunData
from dmlax.train.objectives import Objective
from dmlax.train.state import TrainState


def headline_metric(protocol: str, *, verification: str | None = None) -> tuple[str, str]:
  """(metric, "max"|"min") that ranks checkpoints by default for a protocol (or, with a
  verification dataset, its accuracy)."""
  if verification:
    return f"{verification}_accuracy", "max"
  return ("top1_error", "min") if protocol == "classification" else ("recall@1", "max")


def metric_names(protocol: str, ks, *, has_logits: bool,
                 verification: str | None = None) -> tuple[str, ...]:
  """The names `Evaluator` returns for a protocol and cut-offs `ks` (or a verification set)."""
  if verification:
    return (f"{verification}_accuracy", f"{verification}_accuracy_std")
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
    verification: a dataset of the "verification" protocol ("lfw") to evaluate on instead,
      read with the training dataset's `data_dir`, `image_size` and `augment` (normalisation);
      prepared here when missing and `config.dataset.prepare` allows (a manual download raises
      the error saying where to put it).
    class_mesh: the ("batch", "model") mesh the objective's class arrays are split over
      (`objective.class_axes`), or None when they are whole.

  Example:
    `dmlax.train.run.setup` builds the run's evaluator; here one of its own, on the smoke run's
    digits retrieval split and untrained initial state:

    >>> import tempfile
    >>> from configs import quickstart
    >>> from dmlax.train import run as run_lib
    >>> run = run_lib.setup(quickstart.get_config("mpa,smoke"), tempfile.mkdtemp())
    >>> evaluator = Evaluator(run.data, run.model, run.objective, ks=(1, 2), batch_size=256,
    ...                       mesh=run.mesh)
    >>> metrics = evaluator(run.state)
    >>> sorted(k for k in metrics if k.startswith("recall@"))
    ['recall@1', 'recall@2']
    >>> 0.0 <= metrics["recall@1"] <= metrics["recall@2"] <= 1.0
    True
  """

  def __init__(self, data: RunData, model, objective: Objective | None, *, ks, batch_size: int,
               mesh: Mesh, verification: str | None = None, class_mesh: Mesh | None = None):
    self.data, self.objective = data, objective
    self.class_mesh = class_mesh
    self.ks = tuple(int(k) for k in ks)
    per_process = max(1, int(batch_size) // jax.process_count())
    self.local_batch = per_process + (-per_process) % jax.local_device_count()
    self.extractor = FeatureExtractor(model, mesh)
    self.verification = verification or None
    self._pairs = None
    if self.verification:
      self._verification_info = self._resolve_verification()

  def _resolve_verification(self):
    from dmlax import data as data_lib  # pylint: disable=g-import-not-at-top
    ds, name = self.data.dataset, self.verification
    field = f"config.eval.verification_dataset={name!r}"
    try:
      info = data_lib.info(name, data_dir=ds.data_dir)
      if info.protocol != "verification":
        raise ValueError(f"it has protocol {info.protocol!r}, not 'verification'")
      if info.num_examples is None and ds.prepare:
        data_lib.prepare(name, data_dir=ds.data_dir, task=info.task)
        info = data_lib.info(name, data_dir=ds.data_dir, task=info.task)
    except ValueError as e:
      raise ValueError(f"{field}: {e}") from e
    if info.num_examples is None:
      raise ValueError(f"{field}: the dataset is not prepared in "
                       f"{data_lib.default_data_dir(ds.data_dir)} and config.dataset.prepare is "
                       f"False; prepare it with `python -m experiments.prepare_data --dataset "
                       f"{name} --manual_dir DIR`")
    return info

  @property
  def metric_names(self) -> tuple[str, ...]:
    return metric_names(self.data.info.protocol, self.ks,
                        has_logits=bool(self.objective and self.objective.logits),
                        verification=self.verification)

  def max_k(self) -> int:
    """The largest k the evaluation set allows: N - 1 (all the others) or the gallery size
    (with a verification dataset, whose evaluation has no k, its number of images - 1)."""
    if self.verification:
      info = self._verification_info
      return int(info.num_examples[info.eval_split]) - 1
    info = self.data.info
    if info.eval_query_split and info.eval_gallery_split:
      return self.data.size(info.eval_gallery_split)
    return self.data.size(info.eval_split) - 1

  def embed(self, state: TrainState, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, D), labels (N,)) of protocol split `split`, gathered on every process."""
    batches = self.data.eval_batches(split, local_batch=self.local_batch)
    return self.extractor(self.extractor.variables(state), batches)

  def verify(self, state: TrainState) -> dict[str, float]:
    """{"<name>_accuracy", "<name>_accuracy_std"} of the verification dataset's pairs, scored by
    the cosine similarity of the features, with its folds (LFW: 10 x 600 pairs)."""
    from dmlax import data as data_lib  # pylint: disable=g-import-not-at-top
    from dmlax import metrics as dmlax_metrics  # pylint: disable=g-import-not-at-top
    ds, name, info = self.data.dataset, self.verification, self._verification_info
    if self._pairs is None:
      self._pairs = data_lib.verification_pairs(name, data_dir=ds.data_dir, task=info.task)
    pairs = self._pairs
    batches = data_lib.eval_batches(
        name, split=info.eval_split, batch_size=self.local_batch, data_dir=ds.data_dir,
        image_size=ds.image_size, task=info.task, augment=ds.augment,
        process_index=jax.process_index(), process_count=jax.process_count())
    emb, _ = self.extractor(self.extractor.variables(state), batches)
    folds = len(np.unique(pairs["fold"]))
    # verification_accuracy splits the pairs into equal consecutive folds: pairs.txt's order.
    parts = np.array_split(np.arange(len(pairs["fold"])), folds)
    if not np.array_equal(pairs["fold"], np.concatenate([np.full(len(p), i)
                                                         for i, p in enumerate(parts)])):
      raise ValueError(f"{name}: the pairs' folds are not {folds} consecutive equal parts")
    out = dmlax_metrics.verification_accuracy(emb[pairs["a"]], emb[pairs["b"]], pairs["same"],
                                              folds=folds)
    return {f"{name}_accuracy": float(out["accuracy"]), f"{name}_accuracy_std": float(out["std"])}

  def __call__(self, state: TrainState) -> dict[str, float]:
    """Retrieval: `dmlax.metrics.retrieval_metrics` ("recall@1", "map@r", "ndcg@4", ...).
    Classification: additionally "top1_error" (fraction in [0, 1]) when the objective owns
    class parameters. With a verification dataset: `verify`."""
    from dmlax import metrics as dmlax_metrics  # pylint: disable=g-import-not-at-top
    if self.verification:
      return self.verify(state)
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
      if self.class_mesh is not None:
        pred = class_parallel.top1_predictions(
            self.objective.logits, emb, state.params["loss"], mesh=self.class_mesh,
            class_axes=self.objective.class_axes)
        result["top1_error"] = float(np.mean(pred != np.asarray(labels)))
      else:
        logits = self.objective.logits(jnp.asarray(emb), state.params["loss"])
        result["top1_error"] = float(dmlax_metrics.topk_error(logits, jnp.asarray(labels), 1))
    return result
