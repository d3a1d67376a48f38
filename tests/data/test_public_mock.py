"""The public tfds datasets through `tfds.testing.mock_data`: builder names, label features,
configs and splits as the registry reads them, with records whose labels the test chooses."""
import io

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from dmlax import data


def _jpeg(value: int, size=(12, 10)) -> bytes:
  buf = io.BytesIO()
  Image.new("RGB", size, (value % 256, 0, 0)).save(buf, format="JPEG")
  return buf.getvalue()


def _png_grey(value: int) -> bytes:
  buf = io.BytesIO()
  Image.new("L", (28, 28), value % 256).save(buf, format="PNG")
  return buf.getvalue()


def _mock(table, calls=None):
  """mock_data whose data sources hold `table[(builder, config, split)] = (label_key, labels)`."""

  def as_data_source(self, split=None, decoders=None, **kwargs):
    del decoders, kwargs
    config = self.builder_config.name if self.builder_config else None
    if calls is not None:
      calls.append((self.name, config, split))
    key, labels = table[(self.name, config, split)]
    encode = _png_grey if self.name in ("mnist", "fashion_mnist") else _jpeg
    return [{"image": encode(i), key: int(l)} for i, l in enumerate(labels)]

  return tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE,
                                as_data_source_fn=as_data_source)


def test_cub200_retrieval_split_through_the_pipeline(tmp_path):
  train = np.repeat(np.arange(200), 3)
  test = np.repeat(np.arange(200), 2)
  table = {("caltech_birds2011", None, "train"): ("label", train),
           ("caltech_birds2011", None, "test"): ("label", test)}
  with _mock(table):
    info = data.info("cub200", data_dir=str(tmp_path))
    assert info.num_examples == {"train": 500, "test": 500}
    it = data.train_iterator("cub200", batch_size=50, seed=0, data_dir=str(tmp_path),
                             image_size=16, augment="imagenet")
    labels = np.concatenate([next(it)["label"] for _ in range(10)])
    np.testing.assert_array_equal(np.bincount(labels), [5] * 100)
    batch = next(it)
    assert batch["image"].shape == (50, 16, 16, 3)
    evals = list(data.eval_batches("cub200", split="test", batch_size=128, image_size=16,
                                   data_dir=str(tmp_path), augment="imagenet"))
    got = np.concatenate([b["label"][b["mask"]] for b in evals])
    np.testing.assert_array_equal(np.bincount(got), [5] * 100)


def test_sop_reads_class_id_and_remaps(tmp_path):
  table = {("stanford_online_products", None, "train"): ("class_id", np.array([0, 0, 5, 9])),
           ("stanford_online_products", None, "test"): ("class_id", np.array([11, 12, 12]))}
  with _mock(table):
    sel = data.split_labels("sop", data_dir=str(tmp_path))
  np.testing.assert_array_equal(sel["train"].labels, [0, 0, 1, 2])
  np.testing.assert_array_equal(sel["test"].labels, [0, 1, 1])


def test_imagenet_subsets(tmp_path):
  table = {("imagenet2012", None, "train"): ("label", np.repeat(np.arange(1000), 3)),
           ("imagenet2012", None, "validation"): ("label", np.arange(1000))}
  with _mock(table):
    c100 = data.split_labels("imagenet2012", task="classes100", data_dir=str(tmp_path))
    n2 = data.split_labels("imagenet2012", task="per_class200", data_dir=str(tmp_path))
    full = data.info("imagenet2012", data_dir=str(tmp_path))
  assert len(c100["train"]) == 300 and len(c100["test"]) == 100
  assert c100["train"].labels.max() == 99
  assert len(n2["train"]) == 3000  # Only 3 per class exist here: all of them.
  assert full.num_examples == {"train": 3000, "test": 1000} and full.num_classes == 1000


def test_sun397_trials_read_the_official_partitions(tmp_path):
  calls = []
  table = {("sun397", f"standard-part{t}-120k", s): ("label", np.repeat(np.arange(397), 2))
           for t in (1, 2, 3) for s in ("train", "test")}
  with _mock(table, calls):
    for t in range(3):
      assert data.info("sun397", task=f"trial{t}", data_dir=str(tmp_path)).num_examples == {
          "train": 794, "test": 794}
  assert {c[1] for c in calls} == {"standard-part1-120k", "standard-part2-120k",
                                   "standard-part3-120k"}


@pytest.mark.parametrize("name,shape", [("mnist", (28, 28, 1)), ("fashion_mnist", (28, 28, 1)),
                                        ("cifar10", (12, 12, 3)), ("cifar100", (12, 12, 3)),
                                        ("food101", (12, 12, 3))])
def test_classification_datasets(tmp_path, name, shape):
  tfds_test = "validation" if name == "food101" else "test"
  table = {(name, None, "train"): ("label", np.arange(20) % 10),
           (name, None, tfds_test): ("label", np.arange(7) % 10)}
  size = None if name in ("mnist", "fashion_mnist") else 12
  with _mock(table):
    batch = next(data.train_iterator(name, batch_size=5, seed=0, data_dir=str(tmp_path),
                                     image_size=size, augment="flip"))
    evals = list(data.eval_batches(name, split="test", batch_size=4, image_size=size,
                                   data_dir=str(tmp_path)))
  assert batch["image"].shape == (5, *shape)
  assert sum(int(b["mask"].sum()) for b in evals) == 7
