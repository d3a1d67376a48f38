"""SGSL Fig. 4: continuous BN-ReLU blocks before the BN neck, Cars196 (Recall@K, %).

Paper: L. Yang, P. Wang, Y. Zhang, "Stop-Gradient Softmax Loss for Deep Metric Learning",
AAAI 2023, Fig. 4: x = -1 (the backbone's last BN-ReLU removed, RBR), 0 (the plain backbone),
1, 2, 3 (extra BN-ReLU blocks added before the last BN). The paper prints the values only as a
plot (no numbers in the text); its finding: RBR (x = -1) is best and every extra block lowers
Recall@1.

    python -m experiments.reproduce --table sgsl/fig4
    python -m experiments.plots sweep --summary workdirs/reproduce/sgsl/fig4/summary.json \
        --x "extra BN-ReLU" --metric R@1 --out docs/sgsl_fig4.png

Recipe: configs/sgsl/recipes.py (softmax + SGSL, gamma 30) on Cars196; the embedding width is
not stated for Fig. 4: 2048-d, as the ablations of Tables 4 and 6. Hardware: 2 GTX 2080Ti.
"""

from configs import paper_tables
from configs.sgsl import recipes

X = {"rbr": -1, "bnrelu0": 0, "bnrelu1": 1, "bnrelu2": 2, "bnrelu3": 3}

TABLE = paper_tables.Table(
    name="sgsl/fig4",
    base=lambda: recipes.sgsl("cars196", 2048),
    metrics=tuple(paper_tables.Metric(f"R@{k}", f"recall@{k}") for k in (1, 2, 4, 8)),
    rows={r: {"model.kwargs.rbr": x < 0, "model.kwargs.extra_bn_relu": max(x, 0)}
          for r, x in X.items()},
    cols={"cars196_2048": {}},
    x=X,
    x_label="extra BN-ReLU",
    hardware=recipes.HARDWARE,
)


def get_config(arg=None):
  """`arg`: "row=<rbr|bnrelu0|bnrelu1|bnrelu2|bnrelu3>,seed=<n>[,smoke]"."""
  return TABLE.config(arg)
