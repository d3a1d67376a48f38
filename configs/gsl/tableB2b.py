"""GSL supplementary Table B.2b: the number of training samples per class, ImageNet (error %).

Paper: T. Kobayashi, "Group Softmax Loss with Discriminative Feature Grouping", WACV 2021,
supplementary Table B.2(b); N random training images of each of the 1000 classes (dmlax.data
task `per_class{N}` of `imagenet2012`, a fixed seed), evaluated on the whole validation set.
Rows softmax, type1 (G = {1, 2}), type2 (G = {1, 2, 4}); the paper's numbers: `_REPORTED`.

    python -m experiments.reproduce --table gsl/tableB2b
    python -m experiments.train --config configs/gsl/tableB2b.py:row=type2,col=per_class100 --workdir W

Recipe (configs/gsl/recipes.py, `imagenet_subset_table`): ResNet-50 from scratch, SGD batch 256,
lr 0.1 / 10 at the epochs of Table B.1 (i-2) (100 and 200 per class: 90, 180, 210 of 240; 500:
60, 120, 150 of 180; full: (i-1) 30, 60, 90 of 120). Hardware: NVIDIA V100s (paper); ImageNet
placed by hand.
"""

from configs.gsl import recipes

# Columns: N = 100, 200, 500 per class and the full set (100K, 200K, 500K, 1281K images).
_REPORTED = {"softmax": ("49.3", "40.3", "30.2", "23.5"),
             "type1": ("47.6", "38.0", "28.8", "23.3"),
             "type2": ("46.8", "38.0", "29.3", "24.1")}

TABLE = recipes.imagenet_subset_table(
    "gsl/tableB2b",
    cols={"per_class100": ("per_class100", "per_class100"),
          "per_class200": ("per_class200", "per_class200"),
          "per_class500": ("per_class500", "per_class500"),
          "full": ("full", "imagenet")},
    reported=_REPORTED)


def get_config(arg=None):
  """`arg`: "row=<softmax|type1|type2>,col=<per_class100|...|full>,seed=<n>[,smoke]"."""
  return TABLE.config(arg)
