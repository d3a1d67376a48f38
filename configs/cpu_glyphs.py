"""What the CPU suite's tables share: the generated `glyphs` data, small_cnn, one CPU device.

`glyphs` (dmlax/data/builders/glyphs.py): a class is a (shape, colour, texture) triple under
random position, size, rotation, clutter and noise; half the classes have two visual modes (one
object or a pair); held-out classes reuse the training classes' factor values. Images are
resized to 16x16 for speed (the table modules say which task they read). Each table varies the
loss (its rows) and keeps everything else, so a seed fixes both the initialisation and the
order of the training data in every row: rows are paired by seed.
"""

from __future__ import annotations

import ml_collections

from configs import common

IMAGE_SIZE = 16


def base(task: str, *, steps: int, batch_size: int, pooling: str = "avg",
         embedding_dim: int = 64, **head) -> ml_collections.ConfigDict:
  """small_cnn on `glyphs` task `task` for `steps` steps of `batch_size`, one CPU device."""
  c = common.get_config()
  c.parallel = "single"
  c.dataset.name = "glyphs"
  c.dataset.task = task
  c.dataset.image_size = IMAGE_SIZE
  c.model.name = "small_cnn"
  c.model.kwargs = ml_collections.ConfigDict(
      {"pooling": pooling, "embedding_dim": embedding_dim, **head})
  c.batch_size = batch_size
  c.num_epochs = 0.0
  c.num_train_steps = steps
  c.eval.every_steps = 0
  c.log_every_steps = steps
  c.checkpoint.every_steps = 100000  # only the final state: the suite needs no resumable runs
  return c


def retrieval_base(*, steps: int, **head) -> ml_collections.ConfigDict:
  """`base` as the retrieval tables (MPA, SGSL) train it: task `retrieval` (train on classes
  0-63, retrieve among the held-out 64-99), batch 64, cubic GeM pooling, AdamW at lr 1e-3 for
  the backbone and 1e-2 for the loss's classifier or proxies (they start from scratch), weight
  decay 1e-4, cosine schedule, Recall@{1, 2, 4, 8}; `head` adds head keywords."""
  c = base("retrieval", steps=steps, batch_size=64, pooling="gem", gem_p=3.0, **head)
  c.optimizer.name = "adamw"
  c.optimizer.lr = 1e-3
  c.optimizer.head_lr = 1e-2
  c.optimizer.weight_decay = 1e-4
  c.schedule.name = "cosine"
  c.eval.ks = (1, 2, 4, 8)
  return c
