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
