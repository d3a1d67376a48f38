"""Session data: the embedded datasets and small generated folders, prepared once.

Preparing imports TensorFlow (tfds's writers), the slowest step of these tests, so everything
that needs preparing happens in one fixture, once for all xdist workers (a file lock makes the
other workers wait for the first).
"""
import fcntl
import os
import pathlib

import pytest
from PIL import Image

from dmlax import data
from dmlax.data.builders import caltech256

CALTECH_SIZES = {"001.ak47": 62, "002.american-flag": 61, "003.backpack": 70,
                 "257.clutter": 5}
INSHOP_ITEMS = [(2, "train", 3), (5, "train", 2), (7, "query", 1), (7, "gallery", 2),
                (9, "query", 2), (9, "gallery", 1)]
LFW_PEOPLE = {"Ann_A": 3, "Bob_B": 2, "Cid_C": 1}
# 2 folds of 2 matched + 2 mismatched pairs.
LFW_PAIRS = ["2 2", "Ann_A 1 2", "Bob_B 1 2", "Ann_A 1 Cid_C 1", "Bob_B 2 Cid_C 1",
             "Ann_A 2 3", "Ann_A 1 3", "Ann_A 3 Bob_B 1", "Cid_C 1 Bob_B 2"]


def write_jpeg(path, value, mode="RGB", size=(20, 16)):
  """A flat JPEG whose red channel (or grey level) is `value`."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  colour = value % 256 if mode == "L" else (value % 256, 40, 200)
  Image.new(mode, size, colour).save(path, format="JPEG")


def lfw_value(person: str, k: int) -> int:
  """The red level of LFW image k of `person` in the generated folder."""
  order = [(p, i) for p, n in LFW_PEOPLE.items() for i in range(1, n + 1)]
  return 10 * order.index((person, k)) + 5


def _make_folders(manual: pathlib.Path) -> None:
  for folder, n in CALTECH_SIZES.items():
    for i in range(n):  # Grey JPEGs exist in Caltech-256: the first of each folder is one.
      write_jpeg(manual / "caltech" / "256_ObjectCategories" / folder / f"{i:04d}.jpg", i,
                 mode="L" if i == 0 else "RGB")
  rows = []
  for item, split, n in INSHOP_ITEMS:
    for k in range(n):
      rel = f"img/WOMEN/Dresses/id_{item:08d}/{k:02d}_{split}.jpg"
      write_jpeg(manual / "inshop" / rel, item * 10 + k)
      rows.append(f"{rel} id_{item:08d} {split}")
  (manual / "inshop" / "list_eval_partition.txt").write_text(
      f"{len(rows)}\nimage_name item_id evaluation_status\n" + "\n".join(rows) + "\n")
  for p, n in LFW_PEOPLE.items():
    for k in range(1, n + 1):
      write_jpeg(manual / "lfw" / "lfw" / p / f"{p}_{k:04d}.jpg", lfw_value(p, k))
  (manual / "lfw" / "pairs.txt").write_text("\n".join(LFW_PAIRS) + "\n")


def _prepare_all(root: pathlib.Path) -> None:
  data_dir = os.fspath(root)
  for name in ("digits", "multicenter", "glyphs"):
    data.prepare(name, data_dir=data_dir)
  manual = root / "manual"
  _make_folders(manual)
  saved = caltech256.NUM_CATEGORIES
  caltech256.NUM_CATEGORIES = 3  # The generated folder has 3 of the 256 categories.
  try:
    data.prepare("caltech256", data_dir=data_dir, manual_dir=os.fspath(manual / "caltech"))
  finally:
    caltech256.NUM_CATEGORIES = saved
  data.prepare("inshop", data_dir=data_dir, manual_dir=os.fspath(manual / "inshop"))
  data.prepare("lfw", data_dir=data_dir, manual_dir=os.fspath(manual / "lfw"))


@pytest.fixture(scope="session")
def prepared_dir(tmp_path_factory):
  """A tfds data_dir with digits, multicenter and the generated caltech256/inshop/lfw."""
  # xdist workers each get their own basetemp under one per-session parent; prepare there
  # once. Without xdist the parent is shared by all sessions, so use the basetemp itself.
  base = tmp_path_factory.getbasetemp()
  root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "dmlax_data"
  root.mkdir(exist_ok=True)
  with open(root / ".lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not (root / ".done").exists():
      _prepare_all(root)
      (root / ".done").touch()
  return os.fspath(root)
