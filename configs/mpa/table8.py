"""MPA Table 8 and Fig. 3: the number of proxies K of MPA on Cars196 (x100).

Paper: S. Saeki, "Multi Proxy Anchor Family Loss for Several Types of Gradients" (2023), Table
8 (R@1 and nDCG@k) and Fig. 3 (R@1 against K); MPA loss, three runs per K.

    python -m experiments.reproduce --table mpa/table8 --seeds 3
    python -m experiments.plots sweep --summary workdirs/reproduce/mpa/table8/summary.json \
        --x K --metric R@1 --out docs/mpa_fig3.png

| row | K | R@1 | nDCG@2 | nDCG@4 | nDCG@8 |
|---|---|---|---|---|---|
| k1 | 1 | 86.0 | 84.3 | 81.4 | 77.3 |
| k4 | 4 | 86.1 | 84.5 | 81.7 | 77.6 |
| k8 | 8 | 86.6 | 84.9 | 82.1 | 78.1 |
| k12 | 12 | 86.5 | 84.8 | 82.1 | 78.0 |
| k16 | 16 | 86.4 | 84.7 | 82.1 | 78.0 |

Recipe as Table 5 (configs/mpa/recipes.py) with the MPA loss and K proxies per class.
Hardware: one GPU (not named in the paper).
"""

from configs.mpa import recipes

_REPORTED = {
    1: ('86.0', '84.3', '81.4', '77.3'),
    4: ('86.1', '84.5', '81.7', '77.6'),
    8: ('86.6', '84.9', '82.1', '78.1'),
    12: ('86.5', '84.8', '82.1', '78.0'),
    16: ('86.4', '84.7', '82.1', '78.0'),
}

TABLE = recipes.proxy_count_table("mpa/table8", "cars196", _REPORTED)


def get_config(arg=None):
  """`arg`: "row=k<K>,seed=<n>[,pretrained=PATH][,smoke]", K in 1, 4, 8, 12, 16."""
  return TABLE.config(arg)
