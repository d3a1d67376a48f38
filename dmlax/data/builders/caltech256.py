"""`caltech256`: Caltech-256 (Griffin et al. 2007) from its standard folder (manual download).

MANUAL_DIR/256_ObjectCategories/NNN.name/*.jpg; `257.clutter` is left out (the 256-category
benchmark of GSL section 4.3). One split, `images` (30,607 images); the 60-per-class trials are
protocols (`dmlax.data.protocols.per_class_trial`). Label = NNN - 1.

Example:
  Caltech256(data_dir=d, file_format="array_record").download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=m))
"""
import os

import tensorflow_datasets as tfds

from dmlax.data.builders import image_files

_FOLDER = "256_ObjectCategories"
NUM_CATEGORIES = 256  # Categories 001-256; a partial download has fewer.
_WHAT = ("extract 256_ObjectCategories.tar (https://data.caltech.edu/records/nyy15-4j048) in "
         "the manual dir")


class Caltech256(tfds.core.GeneratorBasedBuilder):
  """Caltech-256 object categories (256 classes, clutter excluded)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"Put {_FOLDER}/ (from 256_ObjectCategories.tar) in manual_dir."

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description="Caltech-256, 256 object categories (257.clutter excluded).",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
            "label": tfds.features.ClassLabel(num_classes=256),
            "filename": tfds.features.Text(),
        }),
        supervised_keys=("image", "label"),
        homepage="https://data.caltech.edu/records/nyy15-4j048",
    )

  def _split_generators(self, dl_manager):
    root = image_files.require(os.path.join(dl_manager.manual_dir, _FOLDER), "caltech256", _WHAT)
    files = []
    for folder in sorted(os.listdir(root)):
      number = folder.split(".", 1)[0]
      if not number.isdigit() or not 1 <= int(number) <= NUM_CATEGORIES:
        continue  # 257.clutter and stray files.
      for f in sorted(os.listdir(os.path.join(root, folder))):
        if f.lower().endswith(".jpg"):
          files.append((os.path.join(folder, f), int(number) - 1))
    found = {label for _, label in files}
    if len(found) != NUM_CATEGORIES:
      missing = sorted(set(range(NUM_CATEGORIES)) - found)[:5]
      raise FileNotFoundError(f"caltech256: {root} has images of {len(found)} of the "
                              f"{NUM_CATEGORIES} "
                              f"categories (none for labels {missing}...); {_WHAT}")
    return {"images": self._generate_examples(root, files)}

  def _generate_examples(self, root, files):
    for rel, label in files:
      yield rel, {"image": image_files.rgb_image(os.path.join(root, rel), "caltech256"),
                  "label": label, "filename": rel}
