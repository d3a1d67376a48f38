"""Prepare a registered dataset as array_record for dmlax.data.

  python experiments/prepare_data.py --dataset digits
  python experiments/prepare_data.py --dataset cub200 --data_dir /data/tfds
  python experiments/prepare_data.py --dataset caltech256 --manual_dir ~/Downloads/caltech256

The data directory defaults to $DMLAX_DATA_DIR, else ~/tensorflow_datasets. Datasets behind a
registration (imagenet2012, inshop, caltech256, lfw) read --manual_dir (default
DATA_DIR/downloads/manual); if it is missing, the message says what to download and where.
TensorFlow (used by tfds's writers) is kept off the GPU.
"""
import os
import sys

from absl import app
from absl import flags

_DATASET = flags.DEFINE_string("dataset", None, "a registered dataset (dmlax.data.names())",
                               required=True)
_TASK = flags.DEFINE_string("task", None,
                            "protocol variant (e.g. trial1, classes100); default: the dataset's")
_DATA_DIR = flags.DEFINE_string("data_dir", None,
                                "default: $DMLAX_DATA_DIR, else ~/tensorflow_datasets")
_MANUAL_DIR = flags.DEFINE_string(
    "manual_dir", None, "where manually downloaded files are (imagenet2012, inshop, ...)")


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  # This command only writes data: TensorFlow (tfds's writers) must not take the GPU, and is
  # set so before it is imported.
  os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  from dmlax import data  # pylint: disable=g-import-not-at-top
  if _DATASET.value not in data.names():
    raise app.UsageError(f"--dataset {_DATASET.value!r}: not one of {data.names()}")
  dataset, task, data_dir = _DATASET.value, _TASK.value, _DATA_DIR.value
  try:
    path = data.prepare(dataset, data_dir=data_dir, manual_dir=_MANUAL_DIR.value, task=task)
  except (data.DataNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  info = data.info(dataset, data_dir=data_dir, task=task)
  print(f"prepared {dataset} in {path}")
  print(f"task {info.task} ({info.protocol}): {info.num_classes} training classes, "
        f"splits {info.num_examples}")
  return 0


if __name__ == "__main__":
  app.run(main)
