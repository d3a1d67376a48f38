"""SGSL Table 6: the SGSL loss weight beta on Cars196, 2048-d (Recall@K, %).

Paper: L. Yang, P. Wang, Y. Zhang, "Stop-Gradient Softmax Loss for Deep Metric Learning",
AAAI 2023, Table 6 (L_total = L_softmax + beta L_SGSL, eq. 10).

    python -m experiments.reproduce --table sgsl/table6
    python -m experiments.train --config configs/sgsl/table6.py:row=beta2 --workdir W

| row | beta | R@1 | R@2 | R@4 | R@8 |
|---|---|---|---|---|---|
| beta0.1 | 0.1 | 93.2 | 96.4 | 98.0 | 98.8 |
| beta0.5 | 0.5 | 94.1 | 96.8 | 98.1 | 98.9 |
| beta1 | 1.0 | 94.7 | 97.2 | 98.3 | 99.1 |
| beta2 | 2.0 | 93.5 | 96.7 | 97.9 | 98.9 |
| beta10 | 10.0 | 93.0 | 96.2 | 97.8 | 98.9 |

Recipe: configs/sgsl/recipes.py on Cars196 with the 2048-d embedding. Hardware: 2 GTX 2080Ti.
"""

from configs import paper_tables
from configs.sgsl import recipes

_REPORTED = {
    "beta0.1": (0.1, ("93.2", "96.4", "98.0", "98.8")),
    "beta0.5": (0.5, ("94.1", "96.8", "98.1", "98.9")),
    "beta1": (1.0, ("94.7", "97.2", "98.3", "99.1")),
    "beta2": (2.0, ("93.5", "96.7", "97.9", "98.9")),
    "beta10": (10.0, ("93.0", "96.2", "97.8", "98.9")),
}

TABLE = paper_tables.Table(
    name="sgsl/table6",
    base=lambda: recipes.sgsl("cars196", 2048),
    metrics=tuple(paper_tables.Metric(f"R@{k}", f"recall@{k}") for k in (1, 2, 4, 8)),
    rows={r: {"loss.kwargs.beta": beta} for r, (beta, _) in _REPORTED.items()},
    cols={"cars196_2048": {}},
    reported={(r, "cars196_2048"): v for r, (_, v) in _REPORTED.items()},
    hardware=recipes.HARDWARE,
    default_row="beta1",
)


def get_config(arg=None):
  """`arg`: "row=beta<0.1|0.5|1|2|10>,seed=<n>[,smoke]"."""
  return TABLE.config(arg)
