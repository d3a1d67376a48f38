"""MPA Table 7 and Fig. 2: the number of proxies K of MPA on CUB-200-2011 (x100).

Paper: S. Saeki, "Multi Proxy Anchor Family Loss for Several Types of Gradients" (2023), Table
7 (R@1 and nDCG@k) and Fig. 2 (R@1 against K); MPA loss, three runs per K.

    python -m experiments.reproduce --table mpa/table7 --seeds 3
    python -m experiments.plots sweep --summary workdirs/reproduce/mpa/table7/summary.json \
        --x K --metric R@1 --out docs/mpa_fig2.png

| row | K | R@1 | nDCG@2 | nDCG@4 | nDCG@8 |
|---|---|---|---|---|---|
| k1 | 1 | 68.4 | 66.7 | 64.0 | 60.9 |
| k4 | 4 | 69.0 | 67.2 | 64.5 | 61.2 |
| k8 | 8 | 69.1 | 67.4 | 64.7 | 61.4 |
| k12 | 12 | 69.3 | 67.3 | 64.8 | 61.5 |
| k16 | 16 | 67.6 | 66.1 | 63.5 | 60.2 |

Recipe as Table 4 (configs/mpa/recipes.py) with the MPA loss and K proxies per class.
Hardware: one GPU (not named in the paper).
"""

from configs.mpa import recipes

_REPORTED = {
    1: ('68.4', '66.7', '64.0', '60.9'),
    4: ('69.0', '67.2', '64.5', '61.2'),
    8: ('69.1', '67.4', '64.7', '61.4'),
    12: ('69.3', '67.3', '64.8', '61.5'),
    16: ('67.6', '66.1', '63.5', '60.2'),
}

TABLE = recipes.proxy_count_table("mpa/table7", "cub200", _REPORTED)


def get_config(arg=None):
  """`arg`: "row=k<K>,seed=<n>[,pretrained=PATH][,smoke]", K in 1, 4, 8, 12, 16."""
  return TABLE.config(arg)
