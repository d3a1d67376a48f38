"""CPU analogue of W-Softmax Fig. 4: accuracy against the width M around M_min = C - 1 = 9.

Paper: X. Li, W. Wang, "Learning discriminative features via weights-biased softmax loss",
Pattern Recognition 2020, section 5.2: accuracy rises with M below M_min and is flat above it.
Here: the embedded `digits` (C = 10, so M_min = 9), the recipe of configs/wsoftmax/cpu_alpha.py
(small_cnn, softmax first, then W-Softmax with alpha = 1) with an FC layer of M = 2, 4, 9 or 64
units before the classifier; softmax at the same widths for comparison. Accuracy (%).

    python -m experiments.reproduce --table wsoftmax/cpu_width --seeds 3
    python -m experiments.plots sweep --summary workdirs/reproduce/wsoftmax/cpu_width/summary.json \
        --metric "Accuracy (%)" --out docs/cpu/wsoftmax_width.png

The paper prints no numbers for this setting. Hardware: 2 CPU cores, ~15 s a run.
"""

from configs import paper_tables
from configs.wsoftmax import cpu_alpha
from configs.wsoftmax import recipes

WIDTHS = (2, 4, 9, 64)

TABLE = paper_tables.Table(
    name="wsoftmax/cpu_width",
    base=cpu_alpha.base,
    metrics=(recipes.ACCURACY,),
    rows={"softmax": recipes.SOFTMAX, "wsoftmax": recipes.wsoftmax(1.0)},
    cols={f"m{m}": {"model.kwargs.embedding_dim": m} for m in WIDTHS},
    x={f"m{m}": m for m in WIDTHS},
    x_label="M",
    claims=(
        paper_tables.Claim("W-Softmax: accuracy increases with M up to M_min (M = 2, 4, 9)",
                           "Accuracy (%)", (("wsoftmax", "m2"), ("wsoftmax", "m4"),
                                            ("wsoftmax", "m9")), "increasing"),
        paper_tables.Claim("W-Softmax: M = 64 and M = M_min = 9 differ by less than 1 point",
                           "Accuracy (%)", (("wsoftmax", "m64"), ("wsoftmax", "m9")),
                           "within:1.0"),
        paper_tables.Claim("softmax: accuracy increases with M up to M_min (M = 2, 4, 9)",
                           "Accuracy (%)", (("softmax", "m2"), ("softmax", "m4"),
                                            ("softmax", "m9")), "increasing"),
    ),
    hardware="2 CPU cores",
    default_row="wsoftmax",
)


def get_config(arg=None):
  """`arg`: "row=<softmax|wsoftmax>,col=m<2|4|9|64>,seed=<n>[,smoke]"."""
  return TABLE.config(arg)
