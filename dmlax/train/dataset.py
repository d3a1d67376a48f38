"""The run's dataset, resolved once: `RunData.resolve(config)` reads the dataset's info and split
sizes (preparing it first when `config.dataset.prepare` allows), and hands training and every
evaluation the same handle, so nothing re-resolves the name, the task or the split sizes later.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import ml_collections


class DataNotPreparedError(ValueError):
  """The dataset of the config is not prepared and the config does not allow preparing it."""


@dataclasses.dataclass(frozen=True)
class RunData:
  """The dataset of a run: its `dmlax.data.DatasetInfo` and the config fields that read it.

  Attributes:
    info: name, task, protocol, classes, image shape, splits and their sizes.
    dataset: `config.dataset` (data_dir, image_size, augment, sampler, m_per_class).
    seed: `config.seed`, the training stream's seed.
  """
  info: Any
  dataset: ml_collections.ConfigDict
  seed: int

  @classmethod
  def resolve(cls, config: ml_collections.ConfigDict) -> "RunData":
    """Looks the dataset of `config` up once; prepares it if missing and allowed.

    Raises:
      ValueError: an unknown dataset or task (naming `config.dataset.name`/`task`), or
        `DataNotPreparedError` with the command that prepares it.
    """
    from dmlax import data  # pylint: disable=g-import-not-at-top
    ds = config.dataset
    field = f"config.dataset.name={ds.name!r} / config.dataset.task={ds.task!r}"
    try:
      info = data.info(ds.name, data_dir=ds.data_dir, task=ds.task)
      if info.num_examples is None and ds.prepare:
        # Only when missing: preparing imports TensorFlow, seconds even with nothing to do.
        data.prepare(ds.name, data_dir=ds.data_dir, task=info.task)
        info = data.info(ds.name, data_dir=ds.data_dir, task=info.task)
    except ValueError as e:
      raise ValueError(f"{field}: {e}") from e
    if info.num_examples is None:
      data_dir = data.default_data_dir(ds.data_dir)
      raise DataNotPreparedError(
          f"{field}: the dataset is not prepared in {data_dir} and config.dataset.prepare is "
          f"False; prepare it with `python -m experiments.prepare_data --dataset {ds.name} "
          f"--task {info.task} --data_dir {data_dir}` (or set config.dataset.prepare=True)")
    if info.protocol not in ("retrieval", "classification"):
      raise ValueError(f"config.dataset.name={ds.name!r} (task {info.task!r}) has protocol "
                       f"{info.protocol!r}; the trainer trains retrieval or classification tasks")
    return cls(info=info, dataset=ds, seed=int(config.seed))

  @property
  def num_classes(self) -> int:
    return int(self.info.num_classes)

  def size(self, split: str | None) -> int:
    """Number of items of protocol split `split` (0 for None)."""
    return int((self.info.num_examples or {}).get(split, 0)) if split else 0

  def train_iterator(self, *, local_batch: int):
    """The resumable training stream; this process's `local_batch` rows of each global batch."""
    from dmlax import data  # pylint: disable=g-import-not-at-top
    ds = self.dataset
    return data.train_iterator(
        ds.name, batch_size=local_batch, seed=self.seed, data_dir=ds.data_dir,
        image_size=ds.image_size, augment=ds.augment, sampler=ds.sampler,
        m_per_class=ds.m_per_class, process_index=jax.process_index(),
        process_count=jax.process_count(), task=self.info.task)

  def eval_batches(self, split: str, *, local_batch: int, sharded: bool = True):
    """Padded, masked evaluation batches of `split`; each process its share when `sharded`."""
    from dmlax import data  # pylint: disable=g-import-not-at-top
    ds = self.dataset
    shard = dict(process_index=jax.process_index(), process_count=jax.process_count()) if (
        sharded) else {}
    return data.eval_batches(
        ds.name, split=split, batch_size=local_batch, data_dir=ds.data_dir,
        image_size=ds.image_size, task=self.info.task, augment=ds.augment, **shard)
