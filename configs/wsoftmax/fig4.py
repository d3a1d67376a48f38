"""W-Softmax Fig. 4: accuracy against the width M of the FC layer (MNIST, CIFAR10, CIFAR100).

Paper: X. Li, W. Wang, "Learning discriminative features via weights-biased softmax loss",
Pattern Recognition 2020, Fig. 4 (a)-(c) and section 5.2: M_min = C - 1 (9 for MNIST and
CIFAR10, 99 for CIFAR100); accuracy rises with M below M_min and is flat above it (softmax
overfits on MNIST at 10-30x M_min, W-Softmax does not). The values are printed only as plots;
the M grid below is ours (the paper's axis is "uneven" and unlabelled in the text).

    python -m experiments.reproduce --table wsoftmax/fig4 --cols mnist_m2,mnist_m9,mnist_m256
    python -m experiments.plots sweep --summary workdirs/reproduce/wsoftmax/fig4/summary.json \
        --x M --metric "Accuracy (%)" --out docs/wsoftmax_fig4.png

Rows: softmax or W-Softmax (alpha = 1); columns `<dataset>_m<M>`: an FC layer of M units. Recipe:
configs/wsoftmax/recipes.py. Hardware: one Quadro P5000 GPU (paper).
"""

from configs import paper_tables
from configs.wsoftmax import recipes

WIDTHS = {"mnist": (2, 4, 6, 9, 16, 32, 64, 128, 256), "cifar10": (2, 4, 6, 9, 16, 32, 64, 256),
          "cifar100": (16, 32, 64, 99, 128, 256, 512)}

TABLE = paper_tables.Table(
    name="wsoftmax/fig4",
    base=lambda: recipes.classification("mnist"),
    metrics=(recipes.ACCURACY,),
    rows={"softmax": recipes.SOFTMAX, "wsoftmax": recipes.wsoftmax(1.0)},
    cols={f"{d}_m{m}": {**recipes.dataset_overrides(d), "model.kwargs.embedding_dim": m}
          for d, ms in WIDTHS.items() for m in ms},
    x={f"{d}_m{m}": m for d, ms in WIDTHS.items() for m in ms},
    x_label="M",
    hardware=recipes.HARDWARE,
    default_row="wsoftmax",
)


def get_config(arg=None):
  """`arg`: "row=<softmax|wsoftmax>,col=<mnist|cifar10|cifar100>_m<M>,seed=<n>[,smoke]"."""
  return TABLE.config(arg)
