"""GSL Table 1a: the number of feature groups, Food-101, ResNet-50 from scratch.

Paper: T. Kobayashi, "Group Softmax Loss with Discriminative Feature Grouping", WACV 2021,
Table 1(a) (error rate %, mean ± std over three runs with different seeds).

    python -m experiments.reproduce --table gsl/table1a --seeds 3
    python -m experiments.train --config configs/gsl/table1a.py:row=type2_124,seed=0 --workdir W

Rows (config argument `row=`), with the paper's numbers:

| row | loss | groups | error (%) |
|---|---|---|---|
| softmax | softmax | {1} | 19.67 ± 0.48 |
| type1_12 | type-I | {1, 2} | 18.23 ± 0.27 |
| type1_124 | type-I | {1, 2, 4} | 18.43 ± 0.31 |
| type2_12 | type-II | {1, 2} | 17.45 ± 0.69 |
| type2_124 | type-II | {1, 2, 4} | 16.10 ± 0.29 |
| type2_1248 | type-II | {1, 2, 4, 8} | 16.23 ± 0.25 |

Recipe (section 4, supplementary B.1): ResNet-50 (D = 2048), SGD batch 256, momentum 0.9,
weight decay 1e-4, lr 0.1 / 10 at epochs 60, 120, 150, 180 epochs, ImageNet augmentation at
224 px. Hardware: the paper trains on NVIDIA Tesla V100s; 180 epochs of Food-101 (75,750 images)
is about 53k steps of batch 256, a multi-GPU/TPU job (tfds `food101` downloads 5 GB).
"""

from configs import paper_tables
from configs.gsl import recipes

TABLE = paper_tables.Table(
    name="gsl/table1a",
    base=lambda: recipes.classification("food101", None, "food101"),
    metrics=(paper_tables.Metric("Error (%)", "top1_error", higher_is_better=False),),
    rows={
        "softmax": recipes.LOSS_ROWS["softmax"],
        "type1_12": recipes.group_softmax("I", (1, 2)),
        "type1_124": recipes.group_softmax("I", (1, 2, 4)),
        "type2_12": recipes.group_softmax("II", (1, 2)),
        "type2_124": recipes.group_softmax("II", (1, 2, 4)),
        "type2_1248": recipes.group_softmax("II", (1, 2, 4, 8)),
    },
    cols={"resnet50_scratch": {}},
    reported={
        ("softmax", "resnet50_scratch"): ("19.67 ± 0.48",),
        ("type1_12", "resnet50_scratch"): ("18.23 ± 0.27",),
        ("type1_124", "resnet50_scratch"): ("18.43 ± 0.31",),
        ("type2_12", "resnet50_scratch"): ("17.45 ± 0.69",),
        ("type2_124", "resnet50_scratch"): ("16.10 ± 0.29",),
        ("type2_1248", "resnet50_scratch"): ("16.23 ± 0.25",),
    },
    hardware="NVIDIA V100 GPUs (paper); ~53k steps of batch 256 at 224 px",
)


def get_config(arg=None):
  """`arg`: "row=<row>,seed=<n>[,smoke]" (see the module docstring)."""
  return TABLE.config(arg)
