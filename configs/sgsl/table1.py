"""SGSL Table 1: retrieval on CUB-200-2011, Cars196 and SOP, 512-d and 2048-d (Recall@K, %).

Paper: L. Yang, P. Wang, Y. Zhang, "Stop-Gradient Softmax Loss for Deep Metric Learning",
AAAI 2023, Table 1, rows "SGSL (Ours)" (the other rows are other papers' numbers).

    python -m experiments.reproduce --table sgsl/table1 --cols cub200_512,cub200_2048
    python -m experiments.train --config configs/sgsl/table1.py:col=cars196_2048 --workdir W

| col | R@1 | R@2 | R@4 | R@8 | R@10 | R@100 |
|---|---|---|---|---|---|---|
| cub200_512 | 72.0 | 81.1 | 88.3 | 93.1 | - | - |
| cars196_512 | 94.1 | 96.7 | 98.0 | 99.0 | - | - |
| sop_512 | 81.4 | - | - | - | 91.8 | 96.2 |
| cub200_2048 | 75.9 | 85.0 | 90.7 | 94.5 | - | - |
| cars196_2048 | 94.7 | 97.2 | 98.3 | 99.1 | - | - |
| sop_2048 | 83.1 | - | - | - | 93.0 | 97.0 |

The authors' own 2048-d runs (`AUTHORS_RUN`, the final epoch-100 evaluation of the completed
run in luyang-NWPU/SGSL `projects/FastRetri/logs/r50-base_{cub,cars,sop}/log.txt`; the log's
later, concurrent Cars196 runs cannot be told apart and are left out):

| col | R@1 | R@2 | R@4 | R@8 | R@10 | R@100 |
|---|---|---|---|---|---|---|
| cub200_2048 | 76.45 | 84.88 | 90.34 | 94.36 | - | - |
| cars196_2048 | 94.43 | 97.01 | 98.35 | 99.09 | - | - |
| sop_2048 | 80.90 | - | - | - | 91.33 | 95.88 |

Recipe: configs/sgsl/recipes.py, the authors' fastreid configs (ResNet-50 with last stride 1,
GeM, BN neck, RBR; label-smoothed softmax + SGSL with gamma 30, beta 1; SGD with the dataset's
rate and momentum, cosine to 1% after a 1000-step warm-up; batch 64 = 16 x 4; 100 epochs; fp16).
The `softmax` row is the same recipe without SGSL and without RBR (Table 4's first row).
Hardware: 2 (SOP: 4) GTX 2080Ti GPUs in the paper.
"""

from configs import paper_tables
from configs.sgsl import recipes

_COLS = {f"{d}_{dim}": recipes.col(d, dim) for dim in (512, 2048)
         for d in ("cub200", "cars196", "sop")}
_REPORTED = {
    "cub200_512": ("72.0", "81.1", "88.3", "93.1", "-", "-"),
    "cars196_512": ("94.1", "96.7", "98.0", "99.0", "-", "-"),
    "sop_512": ("81.4", "-", "-", "-", "91.8", "96.2"),
    "cub200_2048": ("75.9", "85.0", "90.7", "94.5", "-", "-"),
    "cars196_2048": ("94.7", "97.2", "98.3", "99.1", "-", "-"),
    "sop_2048": ("83.1", "-", "-", "-", "93.0", "97.0"),
}

# The authors' achieved numbers for the metrics above (see the module docstring).
AUTHORS_RUN = {
    ("softmax_sgsl", "cub200_2048"): ("76.45", "84.88", "90.34", "94.36", "-", "-"),
    ("softmax_sgsl", "cars196_2048"): ("94.43", "97.01", "98.35", "99.09", "-", "-"),
    ("softmax_sgsl", "sop_2048"): ("80.90", "-", "-", "-", "91.33", "95.88"),
}

TABLE = paper_tables.Table(
    name="sgsl/table1",
    base=lambda: recipes.retrieval("cub200", 512),
    metrics=tuple(paper_tables.Metric(f"R@{k}", f"recall@{k}") for k in (1, 2, 4, 8, 10, 100)),
    rows={"softmax_sgsl": recipes.SGSL, "softmax": recipes.LOSS_ROWS["softmax"]},
    cols=_COLS,
    reported={("softmax_sgsl", c): v for c, v in _REPORTED.items()},
    hardware=recipes.HARDWARE,
)


def get_config(arg=None):
  """`arg`: "col=<dataset>_<dim>[,row=softmax_sgsl|softmax],seed=<n>[,pretrained=PATH][,smoke]"."""
  return TABLE.config(arg)
