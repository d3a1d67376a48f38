"""CPU analogue of W-Softmax Fig. 4: accuracy against the width M around M_min = C - 1 = 31.

Paper: X. Li, W. Wang, "Learning discriminative features via weights-biased softmax loss",
Pattern Recognition 2020, section 5.2: accuracy rises with M below M_min and is flat above it.
Here: `glyphs` task `classes32` (C = 32, so M_min = 31), the recipe of
configs/wsoftmax/cpu_alpha.py (small_cnn, softmax first, then W-Softmax with alpha = 1) with an
FC layer of M = 4, 8, 16, 31 or 64 units before the classifier. Accuracy (%).

    python -m experiments.reproduce --table wsoftmax/cpu_width --seeds 5

The M = 64 cell is the same config as cpu_alpha's alpha1 row and is trained once. The paper
prints no numbers for this setting. Hardware: 2 CPU cores, ~25 s a run.
"""

from configs import paper_tables
from configs.wsoftmax import cpu_alpha
from configs.wsoftmax import recipes

WIDTHS = (4, 8, 16, 31, 64)
M_MIN = 31

TABLE = paper_tables.Table(
    name="wsoftmax/cpu_width",
    base=cpu_alpha.base,
    metrics=(recipes.ACCURACY,),
    rows={"wsoftmax": recipes.wsoftmax(1.0)},
    cols={f"m{m}": {"model.kwargs.embedding_dim": m} for m in WIDTHS},
    x={f"m{m}": m for m in WIDTHS},
    x_label="M",
    claims=(
        paper_tables.Claim("W-Softmax: accuracy increases with M up to M_min (M = 4, 8, 16, 31)",
                           "Accuracy (%)", tuple(("wsoftmax", f"m{m}") for m in (4, 8, 16, 31)),
                           "increasing"),
        paper_tables.Claim("W-Softmax: M = 64 and M = M_min = 31 differ by less than 2 points",
                           "Accuracy (%)", (("wsoftmax", "m64"), ("wsoftmax", "m31")),
                           "within:2.0"),
    ),
    hardware="2 CPU cores",
    default_row="wsoftmax",
)


def get_config(arg=None):
  """`arg`: "row=wsoftmax,col=m<4|8|16|31|64>,seed=<n>[,smoke]"."""
  return TABLE.config(arg)
