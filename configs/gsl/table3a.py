"""GSL Table 3a: the number of classes, ImageNet subsets (error rate %).

Paper: T. Kobayashi, "Group Softmax Loss with Discriminative Feature Grouping", WACV 2021,
Table 3(a) (= supplementary Table B.2a); C classes drawn at random from the 1000, all their
images (dmlax.data task `classes{C}` of `imagenet2012`, drawn with a fixed seed); one run each.
Rows softmax, type1 (G = {1, 2}), type2 (G = {1, 2, 4}); the paper's numbers: `_REPORTED`.

    python -m experiments.reproduce --table gsl/table3a
    python -m experiments.train --config configs/gsl/table3a.py:row=type2,col=classes100 --workdir W

Recipe (configs/gsl/recipes.py, `imagenet_subset_table`): ResNet-50 from scratch, SGD batch 256,
lr 0.1 / 10 at the epochs of supplementary Table B.1 (i-2) (100 and 200 classes: 60, 120, 150
of 180; 500: 30, 60, 90 of 120; 1000: (i-1) 30, 60, 90 of 120). ImageNet must be placed by hand
(`python -m experiments.prepare_data --dataset imagenet2012 --manual_dir DIR`).
Hardware: NVIDIA V100s (paper); full ImageNet for 120 epochs is ~600k steps of batch 256.
"""

from configs.gsl import recipes

# Columns: C = 100, 200, 500, 1000 classes (127K, 258K, 639K, 1281K images).
_REPORTED = {"softmax": ("15.4", "18.1", "20.2", "23.5"),
             "type1": ("14.6", "16.3", "19.0", "23.3"),
             "type2": ("13.0", "15.6", "19.1", "24.1")}

TABLE = recipes.imagenet_subset_table(
    "gsl/table3a",
    cols={"classes100": ("classes100", "classes100"),
          "classes200": ("classes200", "classes200"),
          "classes500": ("classes500", "classes500"),
          "classes1000": ("full", "imagenet")},
    reported=_REPORTED)


def get_config(arg=None):
  """`arg`: "row=<softmax|type1|type2>,col=<classes100|...|classes1000>,seed=<n>[,smoke]"."""
  return TABLE.config(arg)
