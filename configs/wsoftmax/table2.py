"""W-Softmax Table 2: test accuracy (%) on CIFAR10 and CIFAR100.

Paper: X. Li, W. Wang, "Learning discriminative features via weights-biased softmax loss",
Pattern Recognition 2020, Table 2.

    python -m experiments.reproduce --table wsoftmax/table2 --cols cifar10
    python -m experiments.train --config configs/wsoftmax/table2.py:row=wsoftmax_a1,col=cifar100 --workdir W

| row | method | CIFAR10 | CIFAR100 |
|---|---|---|---|
| hinge | Hinge Loss | 90.09 | 67.10 |
| softmax | original softmax | 90.95 | 67.26 |
| lsoftmax | L-Softmax | 92.42 | 70.47 |
| wsoftmax_a0.5 | W-Softmax (alpha = 0.5) | 92.47 | 69.53 |
| wsoftmax_a1 | W-Softmax (alpha = 1) | 92.84 | 70.62 |
| wsoftmax_a1.5 | W-Softmax (alpha = 1.5) | 93.28 | 71.38 |

Recipe: configs/wsoftmax/recipes.py (prelu_cifar, M = 256, batch 256). Hardware: one Quadro
P5000 GPU (paper).
"""

from configs import paper_tables
from configs.wsoftmax import recipes

_REPORTED = {"hinge": ("90.09", "67.10"), "softmax": ("90.95", "67.26"),
             "lsoftmax": ("92.42", "70.47"), "wsoftmax_a0.5": ("92.47", "69.53"),
             "wsoftmax_a1": ("92.84", "70.62"), "wsoftmax_a1.5": ("93.28", "71.38")}

TABLE = paper_tables.Table(
    name="wsoftmax/table2",
    base=lambda: recipes.classification("cifar10"),
    metrics=(recipes.ACCURACY,),
    rows={"hinge": recipes.HINGE, **recipes.LOSS_ROWS},
    cols={"cifar10": recipes.dataset_overrides("cifar10"),
          "cifar100": recipes.dataset_overrides("cifar100")},
    reported={(r, c): (v,) for r, vals in _REPORTED.items()
              for c, v in zip(("cifar10", "cifar100"), vals)},
    hardware=recipes.HARDWARE,
    default_row="wsoftmax_a1",
)


def get_config(arg=None):
  """`arg`: "row=<row>,col=<cifar10|cifar100>,seed=<n>[,smoke]"."""
  return TABLE.config(arg)
