"""W-Softmax Table 1: test accuracy (%) on MNIST.

Paper: X. Li, W. Wang, "Learning discriminative features via weights-biased softmax loss",
Pattern Recognition 2020, Table 1 ("best results"; one number per method).

    python -m experiments.reproduce --table wsoftmax/table1 --seeds 3
    python -m experiments.train --config configs/wsoftmax/table1.py:row=wsoftmax_a1.5 --workdir W

| row | method | accuracy (%) |
|---|---|---|
| hinge | Hinge Loss | 99.53 |
| softmax | original softmax | 99.58 |
| lsoftmax | L-Softmax | 99.69 |
| wsoftmax_a0.5 | W-Softmax (alpha = 0.5) | 99.64 |
| wsoftmax_a1 | W-Softmax (alpha = 1) | 99.67 |
| wsoftmax_a1.5 | W-Softmax (alpha = 1.5) | 99.69 |

(Other papers' rows: CNN 99.47, DropConnect 99.43, FitNet 99.49, NiN 99.53, Maxout 99.55, DSN
99.61, R-CNN 99.69, GenPool 99.69.) Recipe: configs/wsoftmax/recipes.py (prelu_mnist, M = 256,
batch 50, softmax first, then W-Softmax). Hardware: one Quadro P5000 GPU (paper).
"""

from configs import paper_tables
from configs.wsoftmax import recipes

_REPORTED = {"hinge": "99.53", "softmax": "99.58", "lsoftmax": "99.69", "wsoftmax_a0.5": "99.64",
             "wsoftmax_a1": "99.67", "wsoftmax_a1.5": "99.69"}

TABLE = paper_tables.Table(
    name="wsoftmax/table1",
    base=lambda: recipes.classification("mnist"),
    metrics=(recipes.ACCURACY,),
    rows={"hinge": recipes.HINGE, **recipes.LOSS_ROWS},
    cols={"mnist": {}},
    reported={(r, "mnist"): (v,) for r, v in _REPORTED.items()},
    hardware=recipes.HARDWARE,
    default_row="wsoftmax_a1",
)


def get_config(arg=None):
  """`arg`: "row=<hinge|softmax|lsoftmax|wsoftmax_a0.5|wsoftmax_a1|wsoftmax_a1.5>,seed=<n>[,smoke]"."""
  return TABLE.config(arg)
