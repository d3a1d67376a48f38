"""`lfw_verification`: LFW images with the standard 6,000-pair View 2 protocol (manual download).

MANUAL_DIR holds `lfw/Name/Name_0001.jpg` (lfw.tgz, or an aligned copy with that layout such
as the MTCNN 160x160 crops of the W-Softmax paper, section 5.5) and `pairs.txt`: first line
`10 300`, then for each of 10 folds 300 matched lines `name n1 n2` and 300 mismatched lines
`name1 n1 name2 n2` (Huang et al. 2007). One split, `test`: every image, `id` = its rank in
sorted file order, `label` = the person's rank among sorted names. The pairs are stored in the
dataset's metadata as rows `(id_a, id_b, same, fold)`; `dmlax.data.verification_pairs` turns
them into positions of the evaluation stream.
"""
import os

import numpy as np
import tensorflow_datasets as tfds

from dmlax.data.builders import image_files

_WHAT = ("extract lfw.tgz (https://vis-www.cs.umass.edu/lfw/) so that lfw/Name/Name_0001.jpg "
         "exists in the manual dir, and put pairs.txt there")


def read_pairs(path: str) -> list[tuple[str, str, bool, int]]:
  """(file a, file b, same person, fold) of a View 2 pairs.txt; files relative to lfw/."""
  with open(path) as f:
    lines = [line.split() for line in f if line.strip()]
  if not lines or len(lines[0]) != 2:
    raise ValueError(f"lfw: {path} does not start with '<folds> <pairs per half-fold>'")
  folds, half = int(lines[0][0]), int(lines[0][1])
  body = lines[1:]
  if len(body) != folds * 2 * half:
    raise ValueError(f"lfw: {path} should list {folds * 2 * half} pairs, has {len(body)}; "
                     "is it truncated?")
  name = lambda person, n: f"{person}/{person}_{int(n):04d}.jpg"  # noqa: E731
  out = []
  for i, row in enumerate(body):
    fold = i // (2 * half)
    if len(row) == 3:
      out.append((name(row[0], row[1]), name(row[0], row[2]), True, fold))
    elif len(row) == 4:
      out.append((name(row[0], row[1]), name(row[2], row[3]), False, fold))
    else:
      raise ValueError(f"lfw: bad line {i + 2} of {path}: {' '.join(row)}")
  return out


class LfwVerification(tfds.core.GeneratorBasedBuilder):
  """LFW faces with the 10-fold 6,000-pair verification protocol."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = "Put lfw/ (from lfw.tgz) and pairs.txt in manual_dir."

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description="Labeled Faces in the Wild, View 2 verification pairs in the metadata.",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
            "label": tfds.features.Scalar(dtype=np.int64),
            "id": tfds.features.Scalar(dtype=np.int64),
            "filename": tfds.features.Text(),
        }),
        metadata=tfds.core.MetadataDict(),
        homepage="https://vis-www.cs.umass.edu/lfw/",
    )

  def _split_generators(self, dl_manager):
    root = image_files.require(os.path.join(dl_manager.manual_dir, "lfw"), "lfw", _WHAT)
    pairs = read_pairs(image_files.require(
        os.path.join(dl_manager.manual_dir, "pairs.txt"), "lfw", _WHAT))
    people = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    files = [f"{p}/{f}" for p in people for f in sorted(os.listdir(os.path.join(root, p)))
             if f.lower().endswith((".jpg", ".png"))]
    ids = {f: i for i, f in enumerate(files)}
    missing = [f for a, b, _, _ in pairs for f in (a, b) if f not in ids]
    if missing:
      raise FileNotFoundError(f"lfw: {len(missing)} images named in pairs.txt are not in "
                              f"{root} (e.g. {missing[0]}); {_WHAT}")
    self.info.metadata["pairs"] = [[ids[a], ids[b], int(same), fold]
                                   for a, b, same, fold in pairs]
    person = {p: i for i, p in enumerate(people)}
    return {"test": self._generate_examples(root, files, person)}

  def _generate_examples(self, root, files, person):
    for i, rel in enumerate(files):
      yield i, {"image": image_files.rgb_image(os.path.join(root, rel), "lfw"),
                "label": person[rel.split("/")[0]], "id": i, "filename": rel}
