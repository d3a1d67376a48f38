"""Prepare a registered dataset as array_record for dmlax.data.

  python experiments/prepare_data.py --dataset digits
  python experiments/prepare_data.py --dataset cub200 --data_dir /data/tfds
  python experiments/prepare_data.py --dataset caltech256 --manual_dir ~/Downloads/caltech256

The data directory defaults to $DMLAX_DATA_DIR, else ~/tensorflow_datasets. Datasets behind a
registration (imagenet2012, inshop, caltech256, lfw) read --manual_dir (default
DATA_DIR/downloads/manual); if it is missing, the message says what to download and where.
TensorFlow (used by tfds's writers) is kept off the GPU.
"""
import argparse
import os
import sys

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # Before TensorFlow can start.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
  from dmlax import data  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--dataset", required=True, choices=data.names())
  parser.add_argument("--task", default=None,
                      help="protocol variant (e.g. trial1, classes100); default: the dataset's")
  parser.add_argument("--data_dir", default=None,
                      help="default: $DMLAX_DATA_DIR, else ~/tensorflow_datasets")
  parser.add_argument("--manual_dir", default=None,
                      help="where manually downloaded files are (imagenet2012, inshop, ...)")
  args = parser.parse_args(argv)
  try:
    path = data.prepare(args.dataset, data_dir=args.data_dir, manual_dir=args.manual_dir,
                        task=args.task)
  except (data.DataNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  info = data.info(args.dataset, data_dir=args.data_dir, task=args.task)
  print(f"prepared {args.dataset} in {path}")
  print(f"task {info.task} ({info.protocol}): {info.num_classes} training classes, "
        f"splits {info.num_examples}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
