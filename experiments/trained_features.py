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
  """A restored run: its config, the built run (`dmlax.train.run.Run`) and its state."""
  workdir: str
  config: ml_collections.ConfigDict
  run: Any
  state: Any

  @property
  def info(self):
    return self.run.data.info

  @property
  def model(self):
    return self.run.model

  @property
  def loss_params(self) -> dict:
    return {k: np.asarray(v) for k, v in self.state.params["loss"].items()}

  def embed(self, split: str, *, max_items: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, D), labels (N,)) of protocol split `split` ("train", "test", ...)."""
    feats, labels = self.run.evaluator.embed(self.state, split)
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
  # JSON turned tuples into lists; the trainer's fields take either.
  return ml_collections.ConfigDict(results["config"])


def load(workdir: str) -> TrainedRun:
  """Rebuilds the run in `workdir` (`dmlax.train.run.setup`) and restores its latest checkpoint.

  Raises:
    FileNotFoundError: no results.json or no checkpoint in `workdir`.
  """
  from dmlax.train import loop  # pylint: disable=g-import-not-at-top
  from dmlax.train import run as run_lib  # pylint: disable=g-import-not-at-top
  workdir = os.path.abspath(workdir)
  config = config_of(workdir)
  run = run_lib.setup(config, workdir)
  return TrainedRun(workdir=workdir, config=config, run=run, state=loop.restore(run))
