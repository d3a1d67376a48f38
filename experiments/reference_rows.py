"""Reference rows for a retrieval result: raw pixels and the untrained network, same test split.

A trained loss means something only beside what needs no training: the cosine of the raw pixels
(the images exactly as the network sees them, flattened) and the same network at a random
initialisation (its embedding, before any step). Both are evaluated with the trainer's own
retrieval metrics (`dmlax.metrics.retrieval_metrics`) on the protocol split the trained runs
are evaluated on.

    from experiments import reference_rows
    rows = reference_rows.compute(config)     # {"raw pixels": {...}, "untrained network": {...}}
"""

from __future__ import annotations

import numpy as np


def _batches(config, split: str):
  from dmlax import data
  return data.eval_batches(
      config.dataset.name, split=split, batch_size=int(config.eval.batch_size),
      data_dir=config.dataset.data_dir, image_size=config.dataset.image_size,
      task=config.dataset.task, augment=config.dataset.augment)


def split_arrays(config, split: str) -> tuple[np.ndarray, np.ndarray]:
  """(images (N, H, W, C) float32 as the network sees them, labels (N,)) of `split`."""
  images, labels = [], []
  for batch in _batches(config, split):
    keep = np.asarray(batch["mask"], bool)
    images.append(np.asarray(batch["image"], np.float32)[keep])
    labels.append(np.asarray(batch["label"])[keep])
  return np.concatenate(images), np.concatenate(labels)


def untrained_embeddings(config, images: np.ndarray, seed: int = 0) -> np.ndarray:
  """Embeddings of `images` by `config.model` at a random initialisation (inference mode)."""
  import jax
  from dmlax import models
  model = models.get_model(config.model.name, **config.model.kwargs.to_dict())
  variables = model.init(jax.random.key(seed), images[:2], train=False)
  apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
  out = [np.asarray(apply(variables, images[i:i + 256])) for i in range(0, len(images), 256)]
  return np.concatenate(out).astype(np.float32)


def compute(config, *, seed: int = 0) -> dict[str, dict[str, float]]:
  """Retrieval metrics of raw pixels and of the untrained network on the evaluation split."""
  from dmlax import data
  from dmlax import metrics
  info = data.info(config.dataset.name, data_dir=config.dataset.data_dir,
                   task=config.dataset.task)
  images, labels = split_arrays(config, info.eval_split)
  ks = tuple(config.eval.ks)
  raw = images.reshape(len(images), -1)
  return {
      "raw pixels": metrics.retrieval_metrics(raw, labels, ks=ks),
      "untrained network": metrics.retrieval_metrics(
          untrained_embeddings(config, images, seed), labels, ks=ks),
  }
