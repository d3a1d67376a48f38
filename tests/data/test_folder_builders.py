"""Our builders over manually downloaded folders, on small folders of JPEGs written here."""
import os

import numpy as np
import pytest
from PIL import Image

from dmlax import data
from dmlax.data.builders import caltech256


def _write_jpeg(path, value, mode="RGB", size=(20, 16)):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  colour = value % 256 if mode == "L" else (value % 256, 40, 200)
  Image.new(mode, size, colour).save(path, format="JPEG")


def test_caltech256_trials_from_a_folder(tmp_path, monkeypatch):
  monkeypatch.setattr(caltech256, "NUM_CATEGORIES", 3)
  manual = tmp_path / "manual"
  sizes = {"001.ak47": 62, "002.american-flag": 61, "003.backpack": 70, "257.clutter": 5}
  for folder, n in sizes.items():
    for i in range(n):
      _write_jpeg(manual / "256_ObjectCategories" / folder / f"{i:04d}.jpg", i,
                  mode="L" if i == 0 else "RGB")  # Grey JPEGs exist in Caltech-256.
  data_dir = str(tmp_path / "tfds")
  data.prepare("caltech256", data_dir=data_dir, manual_dir=str(manual))
  sel = data.split_labels("caltech256", task="trial1", data_dir=data_dir)
  np.testing.assert_array_equal(np.bincount(sel["train"].labels), [60, 60, 60])
  np.testing.assert_array_equal(np.bincount(sel["test"].labels), [2, 1, 10])  # Clutter out.
  batch = next(data.train_iterator("caltech256", batch_size=6, seed=0, data_dir=data_dir,
                                   image_size=8, task="trial1"))
  assert batch["image"].shape == (6, 8, 8, 3)


def test_caltech256_partial_download_is_reported(tmp_path):
  manual = tmp_path / "manual"
  _write_jpeg(manual / "256_ObjectCategories" / "001.ak47" / "0001.jpg", 1)
  with pytest.raises(data.DataNotFoundError, match="1 of the 256 categories"):
    data.prepare("caltech256", data_dir=str(tmp_path / "tfds"), manual_dir=str(manual))


def _inshop_folder(root):
  rows = []
  for item, split, n in [(2, "train", 3), (5, "train", 2), (7, "query", 1), (7, "gallery", 2),
                         (9, "query", 2), (9, "gallery", 1)]:
    for k in range(n):
      rel = f"img/WOMEN/Dresses/id_{item:08d}/{k:02d}_{split}.jpg"
      _write_jpeg(root / rel, item * 10 + k)
      rows.append(f"{rel} id_{item:08d} {split}")
  (root / "list_eval_partition.txt").write_text(
      f"{len(rows)}\nimage_name item_id evaluation_status\n" + "\n".join(rows) + "\n")


def test_inshop_query_gallery_share_labels(tmp_path):
  manual = tmp_path / "manual"
  _inshop_folder(manual)
  data_dir = str(tmp_path / "tfds")
  data.prepare("inshop", data_dir=data_dir, manual_dir=str(manual))
  info = data.info("inshop", data_dir=data_dir)
  assert info.num_examples == {"train": 5, "query": 3, "gallery": 3, "test": 6}

  def labels(split):
    out = [b for b in data.eval_batches("inshop", split=split, batch_size=4,
                                        image_size=8, data_dir=data_dir)]
    return (np.concatenate([b["label"][b["mask"]] for b in out]),
            np.concatenate([b["image"][b["mask"]][:, 0, 0, 0] for b in out]))

  q_labels, q_red = labels("query")
  g_labels, g_red = labels("gallery")
  # The red channel encodes item * 10 + k; items 7 and 9 map to labels 0 and 1 in both.
  np.testing.assert_array_equal(q_labels, (np.rint(q_red * 255) // 10 == 9).astype(int))
  np.testing.assert_array_equal(g_labels, (np.rint(g_red * 255) // 10 == 9).astype(int))


def test_inshop_without_list_file_says_what_to_download(tmp_path):
  manual = tmp_path / "manual"
  _write_jpeg(manual / "img" / "x.jpg", 1)
  with pytest.raises(data.DataNotFoundError, match="list_eval_partition.txt"):
    data.prepare("inshop", data_dir=str(tmp_path / "tfds"), manual_dir=str(manual))


def test_lfw_pairs_point_at_the_right_images(tmp_path):
  manual = tmp_path / "manual"
  people = {"Ann_A": 3, "Bob_B": 2, "Cid_C": 1}
  value = {}
  for p, n in people.items():
    for k in range(1, n + 1):
      value[(p, k)] = 10 * len(value) + 5
      _write_jpeg(manual / "lfw" / p / f"{p}_{k:04d}.jpg", value[(p, k)])
  # 2 folds of 2 matched + 2 mismatched pairs.
  lines = ["2 2", "Ann_A 1 2", "Bob_B 1 2", "Ann_A 1 Cid_C 1", "Bob_B 2 Cid_C 1",
           "Ann_A 2 3", "Ann_A 1 3", "Ann_A 3 Bob_B 1", "Cid_C 1 Bob_B 2"]
  (manual / "pairs.txt").write_text("\n".join(lines) + "\n")
  data_dir = str(tmp_path / "tfds")
  data.prepare("lfw", data_dir=data_dir, manual_dir=str(manual))
  pairs = data.verification_pairs("lfw", data_dir=data_dir)
  red = np.concatenate([b["image"][b["mask"]][:, 0, 0, 0] for b in data.eval_batches(
      "lfw", split="test", batch_size=4, image_size=8, data_dir=data_dir)])
  red = np.rint(red * 255)
  expected = [(("Ann_A", 1), ("Ann_A", 2)), (("Bob_B", 1), ("Bob_B", 2)),
              (("Ann_A", 1), ("Cid_C", 1)), (("Bob_B", 2), ("Cid_C", 1)),
              (("Ann_A", 2), ("Ann_A", 3)), (("Ann_A", 1), ("Ann_A", 3)),
              (("Ann_A", 3), ("Bob_B", 1)), (("Cid_C", 1), ("Bob_B", 2))]
  for i, (a, b) in enumerate(expected):
    # JPEG may move a flat colour by a level or two.
    assert abs(red[pairs["a"][i]] - value[a]) <= 3 and abs(red[pairs["b"][i]] - value[b]) <= 3
  np.testing.assert_array_equal(pairs["same"], [1, 1, 0, 0, 1, 1, 0, 0])
  np.testing.assert_array_equal(pairs["fold"], [0, 0, 0, 0, 1, 1, 1, 1])
  with pytest.raises(ValueError, match="no training split"):
    data.train_iterator("lfw", batch_size=2, seed=0, data_dir=data_dir, image_size=8)
