"""SGSL Table 4: ablation of RBR and of SGSL's gamma on Cars196, 2048-d (Recall@K, %).

Paper: L. Yang, P. Wang, Y. Zhang, "Stop-Gradient Softmax Loss for Deep Metric Learning",
AAAI 2023, Table 4.

    python -m experiments.reproduce --table sgsl/table4
    python -m experiments.train --config configs/sgsl/table4.py:row=sgsl_g10 --workdir W

| row | method | R@1 | R@2 | R@4 | R@8 |
|---|---|---|---|---|---|
| softmax | Softmax (Boudiaf et al.) | 91.9 | 95.6 | 97.4 | 98.7 |
| softmax_rbr | Softmax + RBR | 92.4 | 96.0 | 97.8 | 98.9 |
| sgsl_g1 | Softmax + RBR + SGSL (gamma = 1) | 94.1 | 96.9 | 98.1 | 99.0 |
| sgsl_g10 | ... gamma = 10 | 94.6 | 97.1 | 98.3 | 99.1 |
| sgsl_g30 | ... gamma = 30 | 94.7 | 97.2 | 98.3 | 99.1 |
| sgsl_g50 | ... gamma = 50 | 94.5 | 97.0 | 98.3 | 99.1 |
| sgsl_g70 | ... gamma = 70 | 94.4 | 97.2 | 98.4 | 99.0 |

Recipe: configs/sgsl/recipes.py on Cars196 with the 2048-d embedding; `softmax` is the recipe
without SGSL and RBR, `softmax_rbr` with RBR. Hardware: 2 GTX 2080Ti.
"""

from configs import paper_tables
from configs.sgsl import recipes

_GAMMAS = (1, 10, 30, 50, 70)
_REPORTED = {
    "softmax": ("91.9", "95.6", "97.4", "98.7"),
    "softmax_rbr": ("92.4", "96.0", "97.8", "98.9"),
    "sgsl_g1": ("94.1", "96.9", "98.1", "99.0"),
    "sgsl_g10": ("94.6", "97.1", "98.3", "99.1"),
    "sgsl_g30": ("94.7", "97.2", "98.3", "99.1"),
    "sgsl_g50": ("94.5", "97.0", "98.3", "99.1"),
    "sgsl_g70": ("94.4", "97.2", "98.4", "99.0"),
}

TABLE = paper_tables.Table(
    name="sgsl/table4",
    base=lambda: recipes.retrieval("cars196", 2048),
    metrics=tuple(paper_tables.Metric(f"R@{k}", f"recall@{k}") for k in (1, 2, 4, 8)),
    rows={"softmax": recipes.LOSS_ROWS["softmax"],
          "softmax_rbr": {},
          **{f"sgsl_g{g}": {**recipes.SGSL, "loss.kwargs.gamma": float(g)}
             for g in _GAMMAS}},
    cols={"cars196_2048": {}},
    reported={(r, "cars196_2048"): v for r, v in _REPORTED.items()},
    hardware=recipes.HARDWARE,
    default_row="sgsl_g30",
)


def get_config(arg=None):
  """`arg`: "row=<softmax|softmax_rbr|sgsl_g<gamma>>,seed=<n>[,smoke]"."""
  return TABLE.config(arg)
