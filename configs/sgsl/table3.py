"""SGSL Table 3: softmax plus other metric-learning losses vs softmax + SGSL (Recall@K, %).

Paper: L. Yang, P. Wang, Y. Zhang, "Stop-Gradient Softmax Loss for Deep Metric Learning",
AAAI 2023, Table 3 (CUB-200-2011, Cars196, In-shop; 512-d and 2048-d).

    python -m experiments.reproduce --table sgsl/table3 --cols cub200_512
    python -m experiments.train --config configs/sgsl/table3.py:row=softmax_ring,col=cars196_2048 --workdir W

Reported (R@1 R@2 R@4 R@8 for CUB and Cars; R@1 R@10 R@20 for In-shop):

| row | CUB 512 | Cars 512 | In-shop 512 | CUB 2048 | Cars 2048 | In-shop 2048 |
|---|---|---|---|---|---|---|
| softmax | 67.9 78.5 86.0 91.8 | 92.1 95.7 97.5 98.7 | 92.7 98.5 99.0 | 69.2 79.2 86.9 91.6 | 89.3 93.9 96.6 98.4 | 90.6 98.0 98.6 |
| softmax_l2norm | 59.3 70.7 80.3 87.2 | 88.0 92.4 94.9 96.9 | 92.4 98.4 98.9 | 61.3 72.5 81.3 87.7 | 89.7 93.2 95.8 97.3 | 92.2 98.2 98.9 |
| softmax_triplet | 66.9 77.2 84.9 90.8 | 91.5 95.1 97.1 98.4 | 92.7 98.5 99.0 | 68.0 78.5 86.3 91.7 | 92.5 95.7 97.4 98.5 | 92.2 98.3 98.9 |
| softmax_softmargin | 65.0 75.2 83.7 89.8 | 91.5 94.7 96.9 98.2 | 92.3 98.5 99.0 | 66.1 76.7 84.4 90.2 | 91.6 95.3 97.1 98.2 | 91.8 98.3 98.9 |
| softmax_ring | 69.7 79.6 87.1 92.0 | 92.2 95.6 97.5 98.7 | 92.7 98.5 99.0 | 71.5 81.2 88.3 92.8 | 92.2 95.6 97.5 98.6 | 91.2 98.1 98.7 |
| softmax_sgsl | 72.0 81.1 88.3 93.1 | 94.1 96.7 98.0 99.0 | 93.5 98.6 99.1 | 75.9 85.0 90.7 94.5 | 94.7 97.2 98.3 99.1 | 93.0 98.6 99.1 |

Recipe: configs/sgsl/recipes.py; the added losses' hyperparameters (not in the paper) are listed
there. Hardware: 2 GTX 2080Ti GPUs (paper).
"""

from configs import paper_tables
from configs.sgsl import recipes

_DATASETS = ("cub200", "cars196", "inshop")
_COLS = {f"{d}_{dim}": recipes.col(d, dim) for dim in (512, 2048) for d in _DATASETS}
_RAW = {
    "softmax": ("67.9 78.5 86.0 91.8", "92.1 95.7 97.5 98.7", "92.7 98.5 99.0",
                "69.2 79.2 86.9 91.6", "89.3 93.9 96.6 98.4", "90.6 98.0 98.6"),
    "softmax_l2norm": ("59.3 70.7 80.3 87.2", "88.0 92.4 94.9 96.9", "92.4 98.4 98.9",
                       "61.3 72.5 81.3 87.7", "89.7 93.2 95.8 97.3", "92.2 98.2 98.9"),
    "softmax_triplet": ("66.9 77.2 84.9 90.8", "91.5 95.1 97.1 98.4", "92.7 98.5 99.0",
                        "68.0 78.5 86.3 91.7", "92.5 95.7 97.4 98.5", "92.2 98.3 98.9"),
    "softmax_softmargin": ("65.0 75.2 83.7 89.8", "91.5 94.7 96.9 98.2", "92.3 98.5 99.0",
                           "66.1 76.7 84.4 90.2", "91.6 95.3 97.1 98.2", "91.8 98.3 98.9"),
    "softmax_ring": ("69.7 79.6 87.1 92.0", "92.2 95.6 97.5 98.7", "92.7 98.5 99.0",
                     "71.5 81.2 88.3 92.8", "92.2 95.6 97.5 98.6", "91.2 98.1 98.7"),
    "softmax_sgsl": ("72.0 81.1 88.3 93.1", "94.1 96.7 98.0 99.0", "93.5 98.6 99.1",
                     "75.9 85.0 90.7 94.5", "94.7 97.2 98.3 99.1", "93.0 98.6 99.1"),
}
# Metric columns: R@1, R@2, R@4, R@8 (CUB, Cars) and R@10, R@20 (In-shop).
_KS = (1, 2, 4, 8, 10, 20)


def _cell(text: str, inshop: bool) -> tuple[str, ...]:
  v = text.split()
  if inshop:  # R@1, R@10, R@20
    return (v[0], "-", "-", "-", v[1], v[2])
  return (*v, "-", "-")


TABLE = paper_tables.Table(
    name="sgsl/table3",
    base=lambda: recipes.retrieval("cub200", 512),
    metrics=tuple(paper_tables.Metric(f"R@{k}", f"recall@{k}") for k in _KS),
    rows=recipes.LOSS_ROWS,
    cols=_COLS,
    reported={(r, c): _cell(t, c.startswith("inshop")) for r, cells in _RAW.items()
              for c, t in zip(_COLS, cells)},
    hardware=recipes.HARDWARE,
    default_row="softmax_sgsl",
)


def get_config(arg=None):
  """`arg`: "row=<row>,col=<cub200|cars196|inshop>_<512|2048>,seed=<n>[,smoke]"."""
  return TABLE.config(arg)
