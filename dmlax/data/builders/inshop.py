"""`inshop`: DeepFashion In-shop Clothes Retrieval (Liu et al. 2016), manual download.

MANUAL_DIR holds `img/` (unzipped img.zip) and `list_eval_partition.txt` (Eval/), whose lines
after the two header lines are `img/WOMEN/.../02_1_front.jpg id_00000002 train|query|gallery`.
Splits `train` (25,882 images, 3,997 items), `query` (14,218) and `gallery` (12,612); query and
gallery share 3,985 items. Label = the number of the item id (`id_00000002` -> 2), so query and
gallery labels agree; the protocol remaps them jointly (`dmlax.data.registry`).

Example:
  Inshop(data_dir=d, file_format="array_record").download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=m))
"""
import os

import numpy as np
import tensorflow_datasets as tfds

from dmlax.data.builders import image_files

_LIST = "list_eval_partition.txt"
_WHAT = ("put img/ (unzipped img.zip) and list_eval_partition.txt of DeepFashion In-shop "
         "(https://mmlab.ie.cuhk.edu.hk/projects/DeepFashion/InShopRetrieval.html) in the "
         "manual dir")
SPLITS = ("train", "query", "gallery")


def read_partition(path: str) -> list[tuple[str, str, str]]:
  """(image path, item id, split) rows of list_eval_partition.txt."""
  with open(path) as f:
    lines = f.read().split("\n")
  rows = [tuple(line.split()) for line in lines[2:] if line.strip()]
  bad = [r for r in rows if len(r) != 3 or r[2] not in SPLITS]
  if bad or not rows:
    raise ValueError(f"inshop: {path} is not a list_eval_partition.txt (bad row {bad[:1]})")
  declared = lines[0].strip()
  if declared.isdigit() and int(declared) != len(rows):
    raise ValueError(f"inshop: {path} declares {declared} images but lists {len(rows)}; "
                     "is the file truncated?")
  return rows


class Inshop(tfds.core.GeneratorBasedBuilder):
  """DeepFashion In-shop clothes retrieval: train / query / gallery."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"Put img/ and {_LIST} in manual_dir."

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description="DeepFashion In-shop Clothes Retrieval benchmark.",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
            "label": tfds.features.Scalar(dtype=np.int64),
            "item_id": tfds.features.Text(),
            "filename": tfds.features.Text(),
        }),
        supervised_keys=("image", "label"),
        homepage="https://mmlab.ie.cuhk.edu.hk/projects/DeepFashion/InShopRetrieval.html",
    )

  def _split_generators(self, dl_manager):
    root = dl_manager.manual_dir
    rows = read_partition(image_files.require(os.path.join(root, _LIST), "inshop", _WHAT))
    image_files.require(os.path.join(root, "img"), "inshop", _WHAT)
    return {s: self._generate_examples(root, [r for r in rows if r[2] == s]) for s in SPLITS}

  def _generate_examples(self, root, rows):
    for rel, item, _ in rows:
      yield rel, {"image": image_files.rgb_image(os.path.join(root, rel), "inshop"),
                  "label": int(item.split("_")[-1]), "item_id": item, "filename": rel}
