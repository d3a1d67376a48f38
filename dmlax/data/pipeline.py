"""The input pipeline: prepared array_record data -> grain `MapDataset` -> batches of NumPy.

`train_iterator` is an endless, deterministic stream of training batches (a function of the
seed, the global batch size and the step only; see `dmlax.data.samplers` for how processes
split each global batch). Its `get_state()` is a small JSON-serialisable dict and
`set_state(state)` resumes the exact sequence. `eval_batches` walks a split once in a fixed
order, padding the last global batch; across processes every item appears exactly once with
`mask` True. No TensorFlow is imported here.
"""
import hashlib
import json
import os

import numpy as np

from dmlax.data import registry
from dmlax.data import samplers
from dmlax.data import sources
from dmlax.data import transforms

_SAMPLERS = ("random", "m_per_class")


def _check_positive(name: str, value) -> None:
  if not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError(f"{name}={value!r} must be a positive integer")


def _check_process(process_index: int, process_count: int) -> None:
  _check_positive("process_count", process_count)
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index={process_index} must be in [0, {process_count})")


class _Records:
  """Random access to the records of one protocol split: `[i] -> (encoded image, label)`."""

  def __init__(self, name, task, split, data_dir):
    entry, _, task_obj = registry.lookup(name, task)
    if split not in task_obj.splits:
      raise ValueError(f"split={split!r} is not a split of {name} (task "
                       f"{task or entry.default_task}); known: {task_obj.splits}")
    self.selection = sources.split_labels(name, task=task, data_dir=data_dir)[split]
    self._sources = sources.open_parts(name, task, self.selection.parts, data_dir)
    self._offsets = np.cumsum([0] + [len(s) for s in self._sources])
    self.channels = entry.image_shape[-1]
    self.labels = self.selection.labels

  def __len__(self) -> int:
    return len(self.selection)

  def image(self, i: int):
    pos = int(self.selection.positions[i])
    part = int(np.searchsorted(self._offsets, pos, side="right")) - 1
    return self._sources[part][pos - int(self._offsets[part])]["image"]


def _image_size(name: str, image_size, augment: str) -> None:
  shape = registry.REGISTRY[name].image_shape
  if image_size is None and None in shape[:2] and augment not in ("imagenet", "bninception"):
    raise ValueError(f"{name} images vary in size; pass image_size (e.g. 224)")
  if image_size is not None:
    _check_positive("image_size", image_size)


def _read_options(num_threads):
  import grain  # pylint: disable=g-import-not-at-top
  threads = num_threads if num_threads is not None else min(16, os.cpu_count() or 1)
  return grain.ReadOptions(num_threads=threads, prefetch_buffer_size=max(2, 2 * threads))


class _TrainSlots:
  """Local element k -> global stream position: this process's slice of each global batch,
  from global batch `start_step` on."""

  def __init__(self, start_step, batch_size, global_batch, process_index):
    self.start_step, self.batch_size = start_step, batch_size
    self.global_batch, self.process_index = global_batch, process_index

  def __len__(self):
    return 2**62

  def __getitem__(self, k):
    step, j = divmod(int(k), self.batch_size)
    return ((self.start_step + step) * self.global_batch + self.process_index * self.batch_size
            + j)


class _TrainLoader:
  """Stream position -> `{"image", "label"}`, augmented with an RNG of (seed, position)."""

  def __init__(self, records, stream, transform, seed):
    self.records, self.stream, self.transform, self.seed = records, stream, transform, seed

  def __call__(self, position: int) -> dict:
    index = self.stream[position]
    rng = np.random.default_rng([self.seed, 2, position])
    return {"image": self.transform(self.records.image(index), rng),
            "label": np.int32(self.records.labels[index])}


class TrainIterator:
  """Endless iterator of `{"image": float32 (B, H, W, C), "label": int32 (B,)}`.

  Batch `s` is a pure function of `s` (and the arguments), so the state is the step:
  `get_state()` -> `{"step": int, "fingerprint": str}`; `set_state` rebuilds the pipeline
  from that step, resuming the exact batches. The state is the same on every process (global
  batch `s` does not depend on the process layout), so one process's saved state resumes all
  of them, and a run may resume on another number of processes with the same global batch. A
  state from a different dataset, seed, global batch or sampler raises ValueError.
  """

  def __init__(self, make, fingerprint: str):
    self._make = make
    self._fingerprint = fingerprint
    self._step = 0
    self._iter = None

  def __iter__(self):
    return self

  def __next__(self):
    if self._iter is None:
      self._iter = iter(self._make(self._step))
    batch = next(self._iter)
    self._step += 1
    return batch

  def get_state(self) -> dict:
    return {"step": self._step, "fingerprint": self._fingerprint}

  def set_state(self, state: dict) -> None:
    if state.get("fingerprint") != self._fingerprint:
      raise ValueError("iterator state was saved for a different dataset, task, seed, global "
                       "batch size, sampler or augmentation; cannot resume from it")
    self._step = int(state["step"])
    self._iter = None  # Rebuilt from `step` on the next call.


def train_iterator(name: str, *, batch_size: int, seed: int, data_dir: str | None = None,
                   image_size: int | None = None, augment: str = "none",
                   sampler: str = "random", m_per_class: int = 4, process_index: int = 0,
                   process_count: int = 1, task: str | None = None,
                   num_threads: int | None = None, num_workers: int = 0) -> TrainIterator:
  """An endless, resumable iterator over the training split of `name`/`task`.

  Global batch `G = batch_size * process_count`; this process gets its `batch_size` slice of
  every global batch. `sampler="random"`: a fresh permutation each epoch;
  `"m_per_class"`: `G / m_per_class` classes x `m_per_class` images per global batch
  (`batch_size` must be a multiple of `m_per_class`). Image `k` of the stream is augmented with
  `numpy.random.default_rng([seed, 2, k])`, so batches do not depend on `process_count`, on
  threads or on worker processes. Labels are remapped to `[0, info(name).num_classes)`.
  `num_threads` reader threads (default: the CPU count, at most 16); `num_workers > 0` adds
  that many grain worker processes (`mp_prefetch`) for augmentation-heavy inputs; grain reads
  absl flags there, so the caller runs under `absl.app.run` (as experiments/*.py do) or parses
  them first (`absl.flags.FLAGS.mark_as_parsed()` in a plain script); this library leaves the
  process's flags alone.

  Example:
    >>> it = train_iterator("digits", batch_size=32, seed=0)
    >>> batch = next(it); state = it.get_state()
  """
  import grain  # pylint: disable=g-import-not-at-top
  _check_positive("batch_size", batch_size)
  _check_process(process_index, process_count)
  transforms.check_augment(augment)
  if sampler not in _SAMPLERS:
    raise ValueError(f"sampler={sampler!r}; expected one of {_SAMPLERS}")
  entry, task_name, task_obj = registry.lookup(name, task)
  if task_obj.train_split is None:
    raise ValueError(f"{name} (task {task_name}) has no training split: the protocol only "
                     "evaluates on it (e.g. LFW: the W-Softmax paper trains on CASIA-WebFace)")
  _image_size(name, image_size, augment)
  if num_workers:
    from absl import flags  # pylint: disable=g-import-not-at-top
    if not flags.FLAGS.is_parsed():
      raise ValueError(
          f"num_workers={num_workers}: grain's worker processes read absl flags, which nothing "
          "has parsed in this process; run under absl.app.run (as experiments/*.py do) or call "
          "absl.flags.FLAGS.mark_as_parsed() first, or pass num_workers=0")
  records = _Records(name, task, task_obj.train_split, data_dir)
  global_batch = batch_size * process_count
  if sampler == "random":
    plan = samplers.RandomPlan(len(records), seed)
  else:
    per_batch = samplers.check_m_per_class(records.labels, global_batch=global_batch,
                                           batch_size=batch_size, m=m_per_class)
    plan = samplers.MPerClassPlan(records.labels, classes_per_batch=per_batch, m=m_per_class,
                                  seed=seed)
  loader = _TrainLoader(records, samplers.Stream(plan),
                        transforms.train_transform(augment, image_size=image_size,
                                                   channels=records.channels), seed)

  def make(start_step: int):
    slots = _TrainSlots(start_step, batch_size, global_batch, process_index)
    dataset = (grain.MapDataset.source(slots).map(loader).batch(batch_size)
               .to_iter_dataset(_read_options(num_threads)))
    if num_workers:
      dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
    return dataset

  # Not the process index or count: checkpoints store one process's state for all of them.
  fingerprint = hashlib.sha1(json.dumps(
      [name, task_name, seed, global_batch, sampler, m_per_class, augment, image_size,
       len(records)]).encode()).hexdigest()[:16]
  return TrainIterator(make, fingerprint)


class _EvalLoader:
  """Local slot k -> an item of the split in order, or a padding row past its end."""

  def __init__(self, records, transform, batch_size, global_batch, process_index, pad_shape):
    self.records, self.transform = records, transform
    self.batch_size, self.global_batch = batch_size, global_batch
    self.process_index, self.pad_shape = process_index, pad_shape

  def __call__(self, k: int) -> dict:
    step, j = divmod(int(k), self.batch_size)
    item = step * self.global_batch + self.process_index * self.batch_size + j
    if item >= len(self.records):
      return {"image": np.zeros(self.pad_shape, np.float32), "label": np.int32(-1),
              "mask": np.False_, "index": np.int32(-1)}
    return {"image": self.transform(self.records.image(item)),
            "label": np.int32(self.records.labels[item]), "mask": np.True_,
            "index": np.int32(item)}


def eval_batches(name: str, *, split: str, batch_size: int, data_dir: str | None = None,
                 image_size: int | None = None, process_index: int = 0,
                 process_count: int = 1, task: str | None = None, augment: str = "none",
                 num_threads: int | None = None):
  """Finite iterable of `{"image", "label", "mask", "index"}` over split `split`, in order.

  Every process yields the same number `ceil(N / (batch_size * process_count))` of full
  batches; slot `j` of process `p` in step `s` holds item `s * G + p * batch_size + j`
  (`G = batch_size * process_count`), so concatenating the processes' batches of a step in
  process order gives the items in split order. Slots past the end are padding: zero image,
  `label = -1`, `index = -1`, `mask = False`. `augment` picks the normalisation (use the
  training run's value); evaluation never draws random numbers.

  Example:
    >>> for batch in eval_batches("digits", split="test", batch_size=64):
    ...   keep = batch["mask"]
  """
  import grain  # pylint: disable=g-import-not-at-top
  _check_positive("batch_size", batch_size)
  _check_process(process_index, process_count)
  _image_size(name, image_size, augment)
  records = _Records(name, task, split, data_dir)
  transform = transforms.eval_transform(augment, image_size=image_size,
                                        channels=records.channels)
  n = len(records)
  if n == 0:
    return []
  global_batch = batch_size * process_count
  steps = -(-n // global_batch)
  loader = _EvalLoader(records, transform, batch_size, global_batch, process_index,
                       transform(records.image(0)).shape)
  return (grain.MapDataset.range(steps * batch_size).map(loader).batch(batch_size)
          .to_iter_dataset(_read_options(num_threads)))


def verification_pairs(name: str = "lfw", *, data_dir: str | None = None,
                       task: str | None = None) -> dict[str, np.ndarray]:
  """The verification pairs of `name` as positions in `eval_batches`' `index` order.

  Returns `{"a": int64 (P,), "b": int64 (P,), "same": bool (P,), "fold": int64 (P,)}`; for
  LFW, P = 6,000 in 10 folds of 300 matched + 300 mismatched pairs (View 2).

  Example (needs LFW prepared from its manual download, so not run as a doctest):
    >>> pairs = verification_pairs("lfw")  # doctest: +SKIP
    >>> same_score = (emb[pairs["a"]] * emb[pairs["b"]]).sum(-1)  # doctest: +SKIP
  """
  entry, task_name, task_obj = registry.lookup(name, task)
  if task_obj.protocol != "verification":
    raise ValueError(f"{name} (task {task_name}) is not a verification protocol")
  records = _Records(name, task, task_obj.eval_split, data_dir)
  builder = sources._builder(entry, task_obj, sources.default_data_dir(data_dir))  # pylint: disable=protected-access
  pairs = np.asarray(builder.info.metadata["pairs"], dtype=np.int64).reshape(-1, 4)
  part = sources.open_parts(name, task, records.selection.parts, data_dir)[0]
  ids = np.array([int(part[int(p)]["id"]) for p in records.selection.positions])
  position_of = np.empty(ids.max() + 1, dtype=np.int64)
  position_of[ids] = np.arange(len(ids))
  return {"a": position_of[pairs[:, 0]], "b": position_of[pairs[:, 1]],
          "same": pairs[:, 2].astype(bool), "fold": pairs[:, 3]}
