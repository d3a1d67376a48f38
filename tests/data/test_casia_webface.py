"""The CASIA-WebFace builder on a small generated folder of JPEGs (the layout of the release)."""
import os

import numpy as np
import pytest
from PIL import Image

from dmlax import data
from dmlax.data.builders import casia_webface

# subject folder -> number of images; the red channel of image k of subject i is 40 i + 10 k.
SUBJECTS = {"0000045": 3, "0000099": 2, "0000100": 4}


def _write(manual, subjects=SUBJECTS):
  for i, (subject, n) in enumerate(subjects.items()):
    folder = os.path.join(manual, "CASIA-WebFace", subject)
    os.makedirs(folder, exist_ok=True)
    for k in range(n):
      Image.new("RGB", (20, 24), (40 * i + 10 * k, 90, 30)).save(
          os.path.join(folder, f"{k + 1:03d}.jpg"), format="JPEG")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  root = tmp_path_factory.mktemp("casia")
  _write(os.fspath(root / "manual"))
  data.prepare("casia_webface", data_dir=os.fspath(root / "tfds"),
               manual_dir=os.fspath(root / "manual"))
  return os.fspath(root / "tfds")


def test_labels_are_the_sorted_subject_folders(prepared):
  info = data.info("casia_webface", data_dir=prepared)
  assert info.num_examples == {"train": 9} and info.protocol == "classification"
  assert info.num_classes == casia_webface.NUM_SUBJECTS
  batches = list(data.eval_batches("casia_webface", split="train", batch_size=4, image_size=8,
                                   data_dir=prepared))
  labels = np.concatenate([b["label"][b["mask"]] for b in batches])
  red = np.concatenate([b["image"][b["mask"]][:, 0, 0, 0] for b in batches])
  np.testing.assert_array_equal(np.bincount(labels), [3, 2, 4])
  # Each image's red level says its subject: 40 i + 10 k, JPEG moving it by a level or two.
  np.testing.assert_array_equal(np.rint(red * 255 + 5) // 40, labels)
  batch = next(data.train_iterator("casia_webface", batch_size=4, seed=0, data_dir=prepared,
                                   image_size=8, augment="face"))
  assert batch["image"].shape == (4, 8, 8, 3)
  assert float(batch["image"].min()) >= -1.0 and float(batch["image"].max()) <= 1.0


def test_missing_download_says_where_to_put_it(tmp_path):
  with pytest.raises(data.DataNotFoundError, match="CASIA-WebFace/<subject>/<image>.jpg"):
    data.prepare("casia_webface", data_dir=os.fspath(tmp_path / "tfds"),
                 manual_dir=os.fspath(tmp_path / "manual"))


def test_partial_or_foreign_folders_are_refused(tmp_path, monkeypatch):
  manual = os.fspath(tmp_path / "m")
  _write(manual, {"0000001": 1, "0000002": 0})
  with pytest.raises(FileNotFoundError, match="1 subject folders hold no image"):
    casia_webface.list_images(os.path.join(manual, "CASIA-WebFace"))
  monkeypatch.setattr(casia_webface, "NUM_SUBJECTS", 1)
  with pytest.raises(ValueError, match="more than CASIA-WebFace's 1"):
    casia_webface.list_images(os.path.join(manual, "CASIA-WebFace"))
