"""Evaluation protocols as pure NumPy: which records form each split, and their labels.

A protocol reads the raw integer labels of the prepared tfds splits and returns, for each of
its own split names, a `Selection`: the tfds splits it reads (`parts`, pooled in that order),
positions into their concatenation, and the labels remapped to `[0, n)` (sorted by original
class id).
No image is touched, so protocols are cheap and tested without data.

Protocols (papers' section in brackets):
  - `class_split`: classes `[lo, hi)` of the pooled splits -> one protocol split. CUB-200-2011
    train classes 1-100 / test 101-200, Cars196 1-98 / 99-196 (MPA 4.1; SGSL; docs/spec.md
    section 6); the embedded `digits` 0-4 / 5-9 and `multicenter` 0-9 / 10-19 retrieval splits.
  - `identity`: every part as is (SOP Ebay_train / Ebay_test, In-shop train / query / gallery,
    classification datasets), labels remapped per split unless `shared` ties the maps of
    several splits together (In-shop query and gallery must agree on item ids).
  - `random_classes`: C random classes, all their images (GSL 4.2 / Table 3a).
  - `per_class_subset`: N random training images of every class (GSL supp. B.2 / Table B.2b).
  - `per_class_trial`: N random training images per class, the rest test, one seeded trial
    (Caltech-256: 60 per class, GSL 4.3).
  - `first_classes`: the first k classes of the train and test splits (W-Softmax Table 5).
"""
import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Selection:
  """Records of one protocol split: `positions` into the pooled `parts`, remapped `labels`."""
  parts: tuple[str, ...]
  positions: np.ndarray
  labels: np.ndarray

  def __len__(self) -> int:
    return len(self.positions)


def _pool(raw: Mapping[str, np.ndarray], parts: Sequence[str]) -> np.ndarray:
  missing = [p for p in parts if p not in raw]
  if missing:
    raise ValueError(f"protocol needs the tfds splits {list(parts)}; missing {missing}")
  return np.concatenate([np.asarray(raw[p], dtype=np.int64) for p in parts])


def _remap(labels: np.ndarray, classes: np.ndarray | None = None) -> np.ndarray:
  """Labels -> their rank among `classes` (default: the sorted unique labels)."""
  classes = np.unique(labels) if classes is None else np.asarray(classes)
  return np.searchsorted(classes, labels).astype(np.int32)


def class_split(raw: Mapping[str, np.ndarray], parts: Sequence[str],
                splits: Mapping[str, tuple[int, int]]) -> dict[str, Selection]:
  """Pool `parts`; split `name` holds the records whose 0-based class lies in `[lo, hi)`.

  Example (CUB-200-2011, classes 1-100 train / 101-200 test, 0-based in tfds):
    class_split(raw, ("train", "test"), {"train": (0, 100), "test": (100, 200)})
  """
  pooled = _pool(raw, parts)
  out = {}
  for name, (lo, hi) in splits.items():
    pos = np.flatnonzero((pooled >= lo) & (pooled < hi))
    out[name] = Selection(tuple(parts), pos, _remap(pooled[pos], np.arange(lo, hi)))
  return out


def identity(raw: Mapping[str, np.ndarray], parts: Mapping[str, Sequence[str]],
             shared: Sequence[str] = ()) -> dict[str, Selection]:
  """Protocol split `name` is the tfds splits `parts[name]` pooled, every record kept.

  Labels are remapped per protocol split to its sorted unique labels; the protocol splits named
  in `shared` use one map, built from the union of their labels (In-shop query and gallery).

  Example (SOP): identity(raw, {"train": ("train",), "test": ("test",)})
  """
  pooled = {name: _pool(raw, p) for name, p in parts.items()}
  union = np.unique(np.concatenate([pooled[s] for s in shared])) if shared else None
  return {name: Selection(tuple(parts[name]), np.arange(len(labels)),
                          _remap(labels, union if name in shared else None))
          for name, labels in pooled.items()}


def random_classes(raw: Mapping[str, np.ndarray], *, num_classes: int, seed: int,
                   train: str = "train", test: str = "validation") -> dict[str, Selection]:
  """`num_classes` classes drawn without replacement (seeded); all their train/test images."""
  all_classes = np.unique(_pool(raw, (train,)))
  if not 0 < num_classes <= len(all_classes):
    raise ValueError(f"num_classes={num_classes} must be in [1, {len(all_classes)}]")
  chosen = np.sort(np.random.default_rng(seed).choice(all_classes, num_classes, replace=False))
  out = {}
  for name, part in (("train", train), ("test", test)):
    labels = _pool(raw, (part,))
    pos = np.flatnonzero(np.isin(labels, chosen))
    out[name] = Selection((part,), pos, _remap(labels[pos], chosen))
  return out


def _per_class_choice(labels: np.ndarray, per_class: int, rng: np.random.Generator):
  """Boolean mask picking `per_class` random records of every class (all if fewer)."""
  picked = np.zeros(len(labels), dtype=bool)
  for c in np.unique(labels):
    members = np.flatnonzero(labels == c)
    picked[rng.permutation(members)[:per_class]] = True
  return picked


def per_class_subset(raw: Mapping[str, np.ndarray], *, per_class: int, seed: int,
                     train: str = "train", test: str = "validation") -> dict[str, Selection]:
  """`per_class` random training images of every class (seeded); the whole test split."""
  labels = _pool(raw, (train,))
  pos = np.flatnonzero(_per_class_choice(labels, per_class, np.random.default_rng(seed)))
  test_labels = _pool(raw, (test,))
  classes = np.unique(labels)
  return {"train": Selection((train,), pos, _remap(labels[pos], classes)),
          "test": Selection((test,), np.arange(len(test_labels)), _remap(test_labels, classes))}


def per_class_trial(raw: Mapping[str, np.ndarray], *, part: str, per_class: int,
                    trial: int, seed: int = 0) -> dict[str, Selection]:
  """Trial `trial`: `per_class` random images of every class train, the rest test.

  Every class needs more than `per_class` images (Caltech-256 has at least 80 per class).
  The draw depends on `(seed, trial)` only, so trials are reproducible and differ.
  """
  labels = _pool(raw, (part,))
  counts = np.bincount(labels)
  short = np.flatnonzero((counts > 0) & (counts <= per_class))
  if short.size:
    raise ValueError(f"classes {short[:5].tolist()} have <= {per_class} images; "
                     f"per_class={per_class} leaves them no test image")
  train = _per_class_choice(labels, per_class, np.random.default_rng([seed, trial]))
  classes = np.unique(labels)
  return {name: Selection((part,), np.flatnonzero(m), _remap(labels[m], classes))
          for name, m in (("train", train), ("test", ~train))}


def first_classes(raw: Mapping[str, np.ndarray], *, num_classes: int, train: str = "train",
                  test: str = "test") -> dict[str, Selection]:
  """Classes `[0, num_classes)` of the train and test splits, all their images.

  W-Softmax (Pattern Recognition 2020) Table 5: "select the first k classes from 10 classes".
  """
  out = {}
  for name, part in (("train", train), ("test", test)):
    labels = _pool(raw, (part,))
    pos = np.flatnonzero(labels < num_classes)
    out[name] = Selection((part,), pos, _remap(labels[pos], np.arange(num_classes)))
  return out
