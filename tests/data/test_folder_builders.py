"""Our builders over manually downloaded folders, on small folders of JPEGs (conftest.py)."""
import numpy as np
import pytest

from dmlax import data
from tests.data import conftest


def test_caltech256_trials_from_a_folder(prepared_dir):
  sel = data.split_labels("caltech256", task="trial1", data_dir=prepared_dir)
  np.testing.assert_array_equal(np.bincount(sel["train"].labels), [60, 60, 60])
  np.testing.assert_array_equal(np.bincount(sel["test"].labels), [2, 1, 10])  # Clutter out.
  batch = next(data.train_iterator("caltech256", batch_size=6, seed=0, data_dir=prepared_dir,
                                   image_size=8, task="trial1"))
  assert batch["image"].shape == (6, 8, 8, 3)


def test_caltech256_partial_download_is_reported(tmp_path):
  manual = tmp_path / "manual"
  conftest.write_jpeg(manual / "256_ObjectCategories" / "001.ak47" / "0001.jpg", 1)
  with pytest.raises(data.DataNotFoundError, match="1 of the 256 categories"):
    data.prepare("caltech256", data_dir=str(tmp_path / "tfds"), manual_dir=str(manual))


def test_inshop_query_gallery_share_labels(prepared_dir):
  info = data.info("inshop", data_dir=prepared_dir)
  assert info.num_examples == {"train": 5, "query": 3, "gallery": 3, "test": 6}

  def labels_and_red(split):
    out = list(data.eval_batches("inshop", split=split, batch_size=4, image_size=8,
                                 data_dir=prepared_dir))
    return (np.concatenate([b["label"][b["mask"]] for b in out]),
            np.concatenate([b["image"][b["mask"]][:, 0, 0, 0] for b in out]))

  # The red channel encodes item * 10 + k; items 7 and 9 must map to labels 0 and 1 in both.
  for split in ("query", "gallery"):
    labels, red = labels_and_red(split)
    np.testing.assert_array_equal(labels, (np.rint(red * 255) // 10 == 9).astype(int))


def test_inshop_without_list_file_says_what_to_download(tmp_path):
  manual = tmp_path / "manual"
  conftest.write_jpeg(manual / "img" / "x.jpg", 1)
  with pytest.raises(data.DataNotFoundError, match="list_eval_partition.txt"):
    data.prepare("inshop", data_dir=str(tmp_path / "tfds"), manual_dir=str(manual))


def test_lfw_pairs_point_at_the_right_images(prepared_dir):
  pairs = data.verification_pairs("lfw", data_dir=prepared_dir)
  red = np.concatenate([b["image"][b["mask"]][:, 0, 0, 0] for b in data.eval_batches(
      "lfw", split="test", batch_size=4, image_size=8, data_dir=prepared_dir)])
  red = np.rint(red * 255)
  for i, line in enumerate(conftest.LFW_PAIRS[1:]):
    f = line.split()
    a, b = ((f[0], int(f[1])), (f[0], int(f[2]))) if len(f) == 3 else (
        (f[0], int(f[1])), (f[2], int(f[3])))
    # JPEG may move a flat colour by a level or two.
    assert abs(red[pairs["a"][i]] - conftest.lfw_value(*a)) <= 3
    assert abs(red[pairs["b"][i]] - conftest.lfw_value(*b)) <= 3
  np.testing.assert_array_equal(pairs["same"], [1, 1, 0, 0, 1, 1, 0, 0])
  np.testing.assert_array_equal(pairs["fold"], [0, 0, 0, 0, 1, 1, 1, 1])
  with pytest.raises(ValueError, match="no training split"):
    data.train_iterator("lfw", batch_size=2, seed=0, data_dir=prepared_dir, image_size=8)
