"""`casia_webface`: CASIA-WebFace (Yi et al. 2014), face-identity training images, manual download.

MANUAL_DIR holds `CASIA-WebFace/<identity>/<image>.jpg`: one folder per subject (the release
names them by 7-digit ids, `0000045/001.jpg`), 494,414 images of 10,575 subjects in the full
release. Aligned copies with the same layout work as they are; the W-Softmax paper (section 5.5)
trains on MTCNN-aligned 160x160 crops. One split, `train`; `label` = the rank of the subject's
folder among the sorted folder names; `identity` keeps the folder name. Cleaned copies with
fewer subjects are accepted (labels stay below 10,575); a folder with more is refused.

Example:
  CasiaWebface(data_dir=d, file_format="array_record").download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=m))
"""
import os

import numpy as np
import tensorflow_datasets as tfds

from dmlax.data.builders import image_files

FOLDER = "CASIA-WebFace"
NUM_SUBJECTS = 10575  # Yi et al. 2014; the full release.
_EXTENSIONS = (".jpg", ".jpeg", ".png")
_WHAT = (f"put the CASIA-WebFace images (Yi et al., arXiv 1411.7923; the release is obtained "
         f"from its authors, CBSR) in {FOLDER}/<subject>/<image>.jpg in the manual dir "
         "(an MTCNN-aligned copy with the same layout for the W-Softmax face tables)")


def list_images(root: str) -> tuple[list[str], list[str]]:
  """(subjects sorted, image paths relative to `root` as `subject/file`, sorted)."""
  subjects = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
  if not subjects:
    raise FileNotFoundError(f"casia_webface: {root} has no subject folders; {_WHAT}")
  if len(subjects) > NUM_SUBJECTS:
    raise ValueError(f"casia_webface: {root} has {len(subjects)} subject folders, more than "
                     f"CASIA-WebFace's {NUM_SUBJECTS}; is it another dataset?")
  files = [f"{s}/{f}" for s in subjects for f in sorted(os.listdir(os.path.join(root, s)))
           if f.lower().endswith(_EXTENSIONS)]
  empty = sorted({s for s in subjects} - {f.split("/")[0] for f in files})
  if empty:
    raise FileNotFoundError(f"casia_webface: {len(empty)} subject folders hold no image (e.g. "
                            f"{root}/{empty[0]}); is the download complete?")
  return subjects, files


class CasiaWebface(tfds.core.GeneratorBasedBuilder):
  """CASIA-WebFace identities for training face-verification networks."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"Put {FOLDER}/<subject>/<image>.jpg in manual_dir."

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description="CASIA-WebFace: 10,575 subjects, 494,414 face images (Yi et al. 2014).",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
            "label": tfds.features.Scalar(dtype=np.int64),
            "identity": tfds.features.Text(),
            "filename": tfds.features.Text(),
        }),
        supervised_keys=("image", "label"),
        homepage="https://arxiv.org/abs/1411.7923",
    )

  def _split_generators(self, dl_manager):
    root = image_files.require(os.path.join(dl_manager.manual_dir, FOLDER), "casia_webface",
                               _WHAT)
    subjects, files = list_images(root)
    return {"train": self._generate_examples(root, files, {s: i for i, s in enumerate(subjects)})}

  def _generate_examples(self, root, files, label):
    for rel in files:
      subject = rel.split("/")[0]
      yield rel, {"image": image_files.rgb_image(os.path.join(root, rel), "casia_webface"),
                  "label": label[subject], "identity": subject, "filename": rel}
