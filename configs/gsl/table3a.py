"""GSL Table 3a: the number of classes, ImageNet subsets (error rate %).

Paper: T. Kobayashi, "Group Softmax Loss with Discriminative Feature Grouping", WACV 2021,
Table 3(a) (= supplementary Table B.2a); C classes drawn at random from the 1000, all their
images (dmlax.data task `classes{C}` of `imagenet2012`, drawn with a fixed seed); one run each.

    python -m experiments.reproduce --table gsl/table3a
    python -m experiments.train --config configs/gsl/table3a.py:row=type2,col=classes100 --workdir W

| row | 100 classes (127K) | 200 (258K) | 500 (639K) | 1000 (1281K) |
|---|---|---|---|---|
| softmax | 15.4 | 18.1 | 20.2 | 23.5 |
| type1 (G = {1, 2}) | 14.6 | 16.3 | 19.0 | 23.3 |
| type2 (G = {1, 2, 4}) | 13.0 | 15.6 | 19.1 | 24.1 |

Recipe: ResNet-50 from scratch, SGD batch 256, lr 0.1 / 10 at the epochs of supplementary Table
B.1 (100 and 200 classes: 60, 120, 150 of 180; 500: 30, 60, 90 of 120; 1000: 30, 60, 90 of 120).
ImageNet must be placed by hand (`python -m experiments.prepare_data imagenet2012 --manual_dir`).
Hardware: NVIDIA V100s (paper); full ImageNet for 120 epochs is ~600k steps of batch 256.
"""

from configs import paper_tables
from configs.gsl import recipes


def _subset(task: str, schedule: str) -> dict:
  boundaries, epochs = recipes.SCHEDULES[schedule]
  return {"dataset.task": task, "num_epochs": float(epochs),
          "schedule.boundaries": tuple(float(b) for b in boundaries)}


_REPORTED = {"softmax": ("15.4", "18.1", "20.2", "23.5"),
             "type1": ("14.6", "16.3", "19.0", "23.3"),
             "type2": ("13.0", "15.6", "19.1", "24.1")}
_COLS = {"classes100": _subset("classes100", "classes100"),
         "classes200": _subset("classes200", "classes200"),
         "classes500": _subset("classes500", "classes500"),
         "classes1000": _subset("full", "imagenet")}

TABLE = paper_tables.Table(
    name="gsl/table3a",
    base=lambda: recipes.classification("imagenet2012", "full", "imagenet"),
    metrics=(paper_tables.Metric("Error (%)", "top1_error", higher_is_better=False),),
    rows={k: recipes.LOSS_ROWS[k] for k in ("softmax", "type1", "type2")},
    cols=_COLS,
    reported={(r, c): (v,) for r, vals in _REPORTED.items() for c, v in zip(_COLS, vals)},
    hardware="NVIDIA V100 GPUs (paper); up to ~600k steps of batch 256 at 224 px",
    default_row="type2",
)


def get_config(arg=None):
  """`arg`: "row=<softmax|type1|type2>,col=<classes100|...|classes1000>,seed=<n>[,smoke]"."""
  return TABLE.config(arg)
