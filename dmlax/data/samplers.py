"""Epoch plans (which record fills each slot of the global batch stream) and their stream.

The training stream is the concatenation of epoch plans; global batch `s` is stream positions
`[s * G, (s + 1) * G)` for global batch size `G`, and process `p` of `P` reads the slice
`[s * G + p * B, s * G + (p + 1) * B)` (per-process batch `B = G / P`). The plan depends only on
`(seed, epoch)`, so the global batches do not depend on the number of processes, the slices
of the processes are disjoint, and together they cover the stream.

  - `random_plan`: a fresh permutation of all records every epoch (every record exactly once).
  - `m_per_class_plan`: batches of `G / m` distinct classes with `m` images each (SGSL: 16 x 4).
    A class of `n` images gives `max(1, round(n / m))` chunks of `m` of a fresh permutation of
    its images (wrapping around when short), so an epoch visits every image about once (exactly
    once when `m` divides every class size). Batches draw their classes without replacement
    with probability proportional to the chunks each class has left, so classes run out
    together; the epoch has a fixed `floor(chunks / classes_per_batch)` batches, and a batch
    that finds too few classes with chunks left tops up with fresh chunks of other classes.
"""
import functools
import threading

import numpy as np


def random_plan(num_records: int, *, seed: int, epoch: int) -> np.ndarray:
  """A permutation of `range(num_records)`, a function of `(seed, epoch)` only."""
  return np.random.default_rng([seed, 0, epoch]).permutation(num_records)


def check_m_per_class(labels: np.ndarray, *, global_batch: int, batch_size: int, m: int) -> int:
  """Validates the m-per-class set-up; returns the number of classes per global batch."""
  if m < 1:
    raise ValueError(f"m_per_class={m} must be >= 1")
  if batch_size % m:
    raise ValueError(f"batch_size={batch_size} (per process) must be a multiple of "
                     f"m_per_class={m}, so that every process holds whole classes")
  classes_per_batch = global_batch // m
  num_classes = len(np.unique(labels))
  if classes_per_batch > num_classes:
    raise ValueError(f"a global batch of {global_batch} with m_per_class={m} needs "
                     f"{classes_per_batch} classes; the split has {num_classes}")
  return classes_per_batch


def _chunk_counts(labels: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
  classes, sizes = np.unique(labels, return_counts=True)
  return classes, np.maximum(1, np.rint(sizes / m).astype(np.int64))


def m_per_class_batches_per_epoch(labels: np.ndarray, *, classes_per_batch: int, m: int) -> int:
  """`floor(total chunks / classes_per_batch)`: the fixed number of batches of an epoch."""
  _, chunks = _chunk_counts(labels, m)
  return max(1, int(chunks.sum()) // classes_per_batch)


def m_per_class_plan(labels: np.ndarray, *, classes_per_batch: int, m: int, seed: int,
                     epoch: int) -> np.ndarray:
  """Record indices of one epoch: batches of `classes_per_batch` distinct classes x `m`.

  Returns an int64 array of length `batches_per_epoch * classes_per_batch * m`; each batch is
  `classes_per_batch` consecutive runs of `m` records of one class.
  """
  labels = np.asarray(labels)
  rng = np.random.default_rng([seed, 1, epoch])
  classes, chunks = _chunk_counts(labels, m)
  order = np.argsort(labels, kind="stable")
  starts = np.searchsorted(labels[order], classes)
  ends = np.append(starts[1:], len(labels))
  members = [order[a:b] for a, b in zip(starts, ends)]

  def draw(c: int, count: int) -> np.ndarray:
    """`count` chunks of class `c`: consecutive fresh permutations of its images."""
    need = count * m
    reps = -(-need // len(members[c]))
    pool = np.concatenate([rng.permutation(members[c]) for _ in range(reps)])
    return pool[:need].reshape(count, m)

  queues = [draw(c, int(k)) for c, k in enumerate(chunks)]
  left = chunks.astype(np.float64)
  used = np.zeros(len(classes), dtype=np.int64)
  num_batches = m_per_class_batches_per_epoch(labels, classes_per_batch=classes_per_batch, m=m)
  batches = []
  for _ in range(num_batches):
    avail = np.flatnonzero(left > 0)
    take = min(classes_per_batch, len(avail))
    picked = rng.choice(avail, size=take, replace=False, p=left[avail] / left[avail].sum())
    if take < classes_per_batch:  # Top up: fresh chunks of classes that have none left.
      others = np.setdiff1d(np.arange(len(classes)), picked)
      picked = np.concatenate([picked, rng.choice(others, classes_per_batch - take,
                                                  replace=False)])
    rows = []
    for c in picked:
      if left[c] > 0:
        rows.append(queues[c][used[c]])
        used[c] += 1
        left[c] -= 1
      else:
        rows.append(draw(int(c), 1)[0])
    batches.append(np.concatenate(rows))
  return np.concatenate(batches).astype(np.int64)


class RandomPlan:
  """`plan(epoch)` of the random sampler (a class, so worker processes can unpickle it)."""

  def __init__(self, num_records: int, seed: int):
    self.num_records, self.seed = num_records, seed
    self.epoch_length = num_records

  def __call__(self, epoch: int) -> np.ndarray:
    return random_plan(self.num_records, seed=self.seed, epoch=epoch)


class MPerClassPlan:
  """`plan(epoch)` of the m-per-class sampler (fixed `epoch_length` records per epoch)."""

  def __init__(self, labels: np.ndarray, *, classes_per_batch: int, m: int, seed: int):
    self.labels, self.classes_per_batch, self.m, self.seed = labels, classes_per_batch, m, seed
    self.epoch_length = classes_per_batch * m * m_per_class_batches_per_epoch(
        labels, classes_per_batch=classes_per_batch, m=m)

  def __call__(self, epoch: int) -> np.ndarray:
    return m_per_class_plan(self.labels, classes_per_batch=self.classes_per_batch, m=self.m,
                            seed=self.seed, epoch=epoch)


class Stream:
  """Stream position -> record index over the concatenated epoch plans of fixed length.

  `plan(epoch)` must return an array of the same length `plan.epoch_length` for every epoch.
  Recent plans are cached; safe to call from grain's reader threads, and picklable for its
  worker processes (the cache and lock are rebuilt there).
  """

  def __init__(self, plan):
    if plan.epoch_length < 1:
      raise ValueError("the training split is empty")
    self.plan = plan
    self.epoch_length = plan.epoch_length
    self._setup()

  def _setup(self):
    self._cached = functools.lru_cache(maxsize=4)(self.plan)
    self._lock = threading.Lock()

  def __getstate__(self):
    return {"plan": self.plan, "epoch_length": self.epoch_length}

  def __setstate__(self, state):
    self.__dict__.update(state)
    self._setup()

  def __getitem__(self, position: int) -> int:
    epoch, offset = divmod(int(position), self.epoch_length)
    with self._lock:
      plan = self._cached(epoch)
    return int(plan[offset])
