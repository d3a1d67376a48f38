"""GSL Table 1b: the kind of feature grouping, Food-101, ResNet-50 from scratch.

Paper: T. Kobayashi, "Group Softmax Loss with Discriminative Feature Grouping", WACV 2021,
Table 1(b) (error rate %, mean ± std over three runs).

    python -m experiments.reproduce --table gsl/table1b --seeds 3
    python -m experiments.train --config configs/gsl/table1b.py:row=random,col=type2_124 --workdir W

| grouping (row) | type-I, G = {1, 2} (col type1_12) | type-II, G = {1, 2, 4} (col type2_124) |
|---|---|---|
| discriminative | 18.23 ± 0.27 | 16.10 ± 0.29 |
| random | 19.63 ± 0.50 | 17.70 ± 0.69 |
| prefixed | 19.53 ± 1.28 | 18.18 ± 0.96 |

"random" draws a fresh random equal partition every mini-batch; "prefixed" keeps one fixed
partition for the whole run. Recipe and hardware as Table 1a (configs/gsl/table1a.py).
"""

from configs import paper_tables
from configs.gsl import recipes

TABLE = paper_tables.Table(
    name="gsl/table1b",
    base=lambda: recipes.classification("food101", None, "food101"),
    metrics=(paper_tables.Metric("Error (%)", "top1_error", higher_is_better=False),),
    rows={
        "discriminative": {"loss.kwargs.grouping": "discriminative"},
        "random": {"loss.kwargs.grouping": "random"},
        "prefixed": {"loss.kwargs.grouping": "prefixed"},
    },
    cols={
        "type1_12": recipes.group_softmax("I", (1, 2)),
        "type2_124": recipes.group_softmax("II", (1, 2, 4)),
    },
    reported={
        ("discriminative", "type1_12"): ("18.23 ± 0.27",),
        ("random", "type1_12"): ("19.63 ± 0.50",),
        ("prefixed", "type1_12"): ("19.53 ± 1.28",),
        ("discriminative", "type2_124"): ("16.10 ± 0.29",),
        ("random", "type2_124"): ("17.70 ± 0.69",),
        ("prefixed", "type2_124"): ("18.18 ± 0.96",),
    },
    hardware="NVIDIA V100 GPUs (paper); ~53k steps of batch 256 at 224 px",
)


def get_config(arg=None):
  """`arg`: "row=<grouping>,col=<type1_12|type2_124>,seed=<n>[,smoke]"."""
  return TABLE.config(arg)
