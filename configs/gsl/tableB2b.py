"""GSL supplementary Table B.2b: the number of training samples per class, ImageNet (error %).

Paper: T. Kobayashi, "Group Softmax Loss with Discriminative Feature Grouping", WACV 2021,
supplementary Table B.2(b); N random training images of each of the 1000 classes (dmlax.data
task `per_class{N}` of `imagenet2012`, a fixed seed), evaluated on the whole validation set.

    python -m experiments.reproduce --table gsl/tableB2b
    python -m experiments.train --config configs/gsl/tableB2b.py:row=type2,col=per_class100 --workdir W

| row | 100 per class (100K) | 200 (200K) | 500 (500K) | 1000* (1281K, full) |
|---|---|---|---|---|
| softmax | 49.3 | 40.3 | 30.2 | 23.5 |
| type1 (G = {1, 2}) | 47.6 | 38.0 | 28.8 | 23.3 |
| type2 (G = {1, 2, 4}) | 46.8 | 38.0 | 29.3 | 24.1 |

Recipe: ResNet-50 from scratch, SGD batch 256, lr 0.1 / 10 at the epochs of Table B.1(i-2)
(100 and 200 per class: 90, 180, 210 of 240; 500: 60, 120, 150 of 180; full: 30, 60, 90 of 120).
Hardware: NVIDIA V100s (paper); ImageNet placed by hand.
"""

from configs import paper_tables
from configs.gsl import recipes


def _subset(task: str, schedule: str) -> dict:
  boundaries, epochs = recipes.SCHEDULES[schedule]
  return {"dataset.task": task, "num_epochs": float(epochs),
          "schedule.boundaries": tuple(float(b) for b in boundaries)}


_REPORTED = {"softmax": ("49.3", "40.3", "30.2", "23.5"),
             "type1": ("47.6", "38.0", "28.8", "23.3"),
             "type2": ("46.8", "38.0", "29.3", "24.1")}
_COLS = {"per_class100": _subset("per_class100", "per_class100"),
         "per_class200": _subset("per_class200", "per_class200"),
         "per_class500": _subset("per_class500", "per_class500"),
         "full": _subset("full", "imagenet")}

TABLE = paper_tables.Table(
    name="gsl/tableB2b",
    base=lambda: recipes.classification("imagenet2012", "full", "imagenet"),
    metrics=(paper_tables.Metric("Error (%)", "top1_error", higher_is_better=False),),
    rows={k: recipes.LOSS_ROWS[k] for k in ("softmax", "type1", "type2")},
    cols=_COLS,
    reported={(r, c): (v,) for r, vals in _REPORTED.items() for c, v in zip(_COLS, vals)},
    hardware="NVIDIA V100 GPUs (paper); up to ~600k steps of batch 256 at 224 px",
    default_row="type2",
)


def get_config(arg=None):
  """`arg`: "row=<softmax|type1|type2>,col=<per_class100|...|full>,seed=<n>[,smoke]"."""
  return TABLE.config(arg)
