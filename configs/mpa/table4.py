"""MPA Table 4: proxy losses compared on CUB-200-2011 (Recall@K, nDCG@k, MAP@R, x100).

Paper: S. Saeki, "Multi Proxy Anchor Family Loss for Several Types of Gradients" (2023), Table
4. The paper reports one number per cell (three runs per setting, section 4.4).

    python -m experiments.reproduce --table mpa/table4 --seeds 3
    python -m experiments.train --config configs/mpa/table4.py:row=mpa_ap,seed=0 --workdir W

| row | R@1 | R@2 | R@4 | R@8 | nDCG@2 | nDCG@4 | nDCG@8 | MAP@R |
|---|---|---|---|---|---|---|---|---|
| soft_triple (SoftTriple (our rerun)) | 67.6 | 78.0 | 85.8 | 91.1 | 65.4 | 62.9 | 59.4 | 25.5 |
| proxy_anchor (ProxyAnchor (our rerun)) | 68.6 | 78.7 | 86.1 | 91.7 | 66.7 | 64.1 | 60.9 | 26.7 |
| mpa (MPA) | 69.2 | 79.4 | 86.6 | 91.6 | 67.3 | 64.7 | 61.3 | 26.6 |
| mpa_dw (MPA-DW) | 68.9 | 79.0 | 86.5 | 91.9 | 66.9 | 64.3 | 61.1 | 26.3 |
| mpa_ap (MPA-AP) | 69.1 | 79.1 | 86.3 | 91.7 | 67.1 | 64.6 | 61.3 | 26.6 |

Recipe (configs/mpa/recipes.py): ImageNet-pretrained BN-Inception (weights/bn_inception_flax.npz,
from `experiments/convert_weights.py`; or `pretrained=PATH`), cubic GeM, 512-d; AdamW lr 1e-4
backbone, 1e-2 proxies and embedding, halved every 20 epochs; batch 180, 60 epochs, K = 10; alpha 32,
delta 0.1, gamma 0.1, tau 0.2 (SoftTriple: lambda 20, delta 0.01). Retrieval on the held-out
classes, every test image querying all the others. Hardware: one GPU (not named in the paper).
"""

from configs import paper_tables
from configs.mpa import recipes

_REPORTED = {
    'soft_triple': ('67.6', '78.0', '85.8', '91.1', '65.4', '62.9', '59.4', '25.5'),
    'proxy_anchor': ('68.6', '78.7', '86.1', '91.7', '66.7', '64.1', '60.9', '26.7'),
    'mpa': ('69.2', '79.4', '86.6', '91.6', '67.3', '64.7', '61.3', '26.6'),
    'mpa_dw': ('68.9', '79.0', '86.5', '91.9', '66.9', '64.3', '61.1', '26.3'),
    'mpa_ap': ('69.1', '79.1', '86.3', '91.7', '67.1', '64.6', '61.3', '26.6'),
}

TABLE = paper_tables.Table(
    name="mpa/table4",
    base=lambda: recipes.retrieval('cub200'),
    metrics=recipes.metrics((1, 2, 4, 8), (2, 4, 8)),
    rows=recipes.loss_rows(recipes.DATASETS['cub200'][2]),
    cols={'cub200': {}},
    reported={(row, 'cub200'): vals for row, vals in _REPORTED.items()},
    hardware=recipes.HARDWARE,
    default_row="mpa",
)


def get_config(arg=None):
  """`arg`: "row=<soft_triple|proxy_anchor|mpa|mpa_dw|mpa_ap>,seed=<n>[,pretrained=PATH][,smoke]"."""
  return TABLE.config(arg)
