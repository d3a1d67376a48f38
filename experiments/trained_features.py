"""Features of a trained workdir: restore its latest checkpoint and embed a split.

The plots and the extra statistics of `experiments.tables` (W-Softmax's mean class angles)
need the features themselves, not only the trainer's final metrics. A workdir written by
`dmlax.train.loop.train_and_evaluate` holds its config (`results.json`) and checkpoints, so the
model is rebuilt from the config and restored; nothing is retrained.

    from experiments import trained_features
    run = trained_features.load("workdirs/reproduce/gsl/cpu_scarce/softmax/per_class10/seed0")
    feats, labels = run.embed("test")          # (N, D) float32, (N,) int32
    w = run.loss_params.get("classifier")      # (D, C) for classifier losses
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import ml_collections
import numpy as np


@dataclasses.dataclass
class TrainedRun:
  """A restored run: its config, dataset info, model, state and an embedder."""
  workdir: str
  config: ml_collections.ConfigDict
  info: Any
  model: Any
  state: Any
  embedder: Any

  @property
  def loss_params(self) -> dict:
    return {k: np.asarray(v) for k, v in self.state.params["loss"].items()}

  def embed(self, split: str, *, max_items: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, D), labels (N,)) of protocol split `split` ("train", "test", ...)."""
    from dmlax import data
    batches = data.eval_batches(
        self.config.dataset.name, split=split, batch_size=int(self.config.eval.batch_size),
        data_dir=self.config.dataset.data_dir, image_size=self.config.dataset.image_size,
        task=self.info.task, augment=self.config.dataset.augment)
    feats, labels = self.embedder(self.embedder.variables(self.state), batches)
    if max_items is not None:
      feats, labels = feats[:max_items], labels[:max_items]
    return np.asarray(feats, np.float32), np.asarray(labels, np.int32)


def config_of(workdir: str) -> ml_collections.ConfigDict:
  """The config a finished run recorded in `workdir/results.json`."""
  path = os.path.join(workdir, "results.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} does not exist: {workdir} is not a finished training run")
  with open(path) as f:
    results = json.load(f)
  cfg = results["config"]
  # JSON turned tuples into lists; the trainer's fields take either.
  return ml_collections.ConfigDict(cfg)


def load(workdir: str) -> TrainedRun:
  """Rebuilds the model of the run in `workdir` and restores its latest checkpoint.

  Raises:
    FileNotFoundError: no results.json or no checkpoint in `workdir`.
  """
  from dmlax import data
  from dmlax.train import checkpoints as checkpoints_lib
  from dmlax.train import evaluate as evaluate_lib
  from dmlax.train import loop
  workdir = os.path.abspath(workdir)
  config = config_of(workdir)
  info = data.info(config.dataset.name, data_dir=config.dataset.data_dir,
                   task=config.dataset.task)
  built = loop.build(config, info)
  ckpt = checkpoints_lib.Checkpoints(workdir, keep=int(config.checkpoint.keep))
  restored = ckpt.restore_latest(built["state"])
  ckpt.close()
  if restored is None:
    raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints")
  return TrainedRun(workdir=workdir, config=config, info=info, model=built["model"],
                    state=restored[0], embedder=evaluate_lib.Embedder(built["model"]))
