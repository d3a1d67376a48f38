"""`digits`: scikit-learn's bundled handwritten digits as a tfds dataset (offline, seconds).

1,797 real 8x8 grey images of the digits 0-9 (UCI "Optical Recognition of Handwritten
Digits", as shipped inside scikit-learn, so no download). Pixel values 0..16 are stored as
uint8 0..255 (`round(v * 255 / 16)`).

Splits: `train` (1,347) and `test` (450), the stratified split of
`sklearn.model_selection.train_test_split(test_size=0.25, stratify=y, random_state=0)`.
The metric-learning class split (digits 0-4 train, 5-9 test, both tfds splits pooled) is a
protocol in `dmlax.data.protocols`, not a separate copy of the images.

Example:
  builder = Digits(data_dir="/tmp/tfds", file_format="array_record")
  builder.download_and_prepare()
"""
import numpy as np
import tensorflow_datasets as tfds

_TEST_FRACTION = 0.25
_SPLIT_SEED = 0


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
  """The 1,797 images as uint8 (N, 8, 8, 1) 0..255 and their int64 labels (N,)."""
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  bunch = datasets.load_digits()
  images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
  return images, bunch.target.astype(np.int64)


def digits_split_indices(labels: np.ndarray) -> dict[str, np.ndarray]:
  """Indices of the stratified classification split (`train`, `test`), each sorted."""
  from sklearn import model_selection  # pylint: disable=g-import-not-at-top
  index = np.arange(len(labels))
  train, test = model_selection.train_test_split(
      index, test_size=_TEST_FRACTION, stratify=labels, random_state=_SPLIT_SEED)
  return {"train": np.sort(train), "test": np.sort(test)}


class Digits(tfds.core.GeneratorBasedBuilder):
  """scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release: stratified 75/25 split, seed 0."}

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description="scikit-learn's bundled 8x8 handwritten digits (UCI optdigits test set).",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(8, 8, 1), encoding_format="png"),
            "label": tfds.features.ClassLabel(num_classes=10),
            "id": tfds.features.Scalar(dtype=np.int64),
        }),
        supervised_keys=("image", "label"),
        homepage="https://scikit-learn.org/stable/modules/generated/sklearn.datasets.load_digits.html",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Everything ships with scikit-learn.
    images, labels = digits_arrays()
    splits = digits_split_indices(labels)
    return {name: self._generate_examples(images, labels, index)
            for name, index in splits.items()}

  def _generate_examples(self, images, labels, index):
    for i in index:
      yield int(i), {"image": images[i], "label": int(labels[i]), "id": int(i)}
