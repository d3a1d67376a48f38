"""W-Softmax Table 5: the number of classes k, MNIST and CIFAR10, alpha = 1 (accuracy %).

Paper: X. Li, W. Wang, "Learning discriminative features via weights-biased softmax loss",
Pattern Recognition 2020, Table 5: the first k of the 10 classes (dmlax.data tasks
`first{k}` of `mnist` and `cifar10`; k = 10 is the whole dataset).

    python -m experiments.reproduce --table wsoftmax/table5 --cols mnist_k5,mnist_k10
    python -m experiments.train --config configs/wsoftmax/table5.py:row=wsoftmax,col=cifar10_k7 --workdir W

| k | MNIST softmax | MNIST W-Softmax | CIFAR10 softmax | CIFAR10 W-Softmax |
|---|---|---|---|---|
| 5 | 99.92 | 99.93 | 94.35 | 95.23 |
| 6 | 99.83 | 99.88 | 91.55 | 93.08 |
| 7 | 99.67 | 99.78 | 91.26 | 92.65 |
| 8 | 99.67 | 99.76 | 91.27 | 92.73 |
| 9 | 99.63 | 99.73 | 91.24 | 92.72 |
| 10 | 99.58 | 99.69 | 90.95 | 92.44 |

Recipe: configs/wsoftmax/recipes.py. Hardware: one Quadro P5000 GPU (paper).
"""

from configs import paper_tables
from configs.wsoftmax import recipes

_REPORTED = {
    5: ("99.92", "99.93", "94.35", "95.23"), 6: ("99.83", "99.88", "91.55", "93.08"),
    7: ("99.67", "99.78", "91.26", "92.65"), 8: ("99.67", "99.76", "91.27", "92.73"),
    9: ("99.63", "99.73", "91.24", "92.72"), 10: ("99.58", "99.69", "90.95", "92.44"),
}


def _col(dataset: str, k: int) -> dict:
  return {**recipes.dataset_overrides(dataset),
          "dataset.task": f"first{k}" if k < 10 else "classification"}


_COLS = {f"{d}_k{k}": _col(d, k) for d in ("mnist", "cifar10") for k in range(5, 11)}

TABLE = paper_tables.Table(
    name="wsoftmax/table5",
    base=lambda: recipes.classification("mnist"),
    metrics=(recipes.ACCURACY,),
    rows={"softmax": recipes.SOFTMAX, "wsoftmax": recipes.wsoftmax(1.0)},
    cols=_COLS,
    reported={**{("softmax", f"mnist_k{k}"): (v[0],) for k, v in _REPORTED.items()},
              **{("wsoftmax", f"mnist_k{k}"): (v[1],) for k, v in _REPORTED.items()},
              **{("softmax", f"cifar10_k{k}"): (v[2],) for k, v in _REPORTED.items()},
              **{("wsoftmax", f"cifar10_k{k}"): (v[3],) for k, v in _REPORTED.items()}},
    hardware=recipes.HARDWARE,
    default_row="wsoftmax",
)


def get_config(arg=None):
  """`arg`: "row=<softmax|wsoftmax>,col=<mnist|cifar10>_k<5..10>,seed=<n>[,smoke]"."""
  return TABLE.config(arg)
