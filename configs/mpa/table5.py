"""MPA Table 5: proxy losses compared on Cars196 (Recall@K, nDCG@k, MAP@R, x100).

Paper: S. Saeki, "Multi Proxy Anchor Family Loss for Several Types of Gradients" (2023), Table
5. The paper reports one number per cell (three runs per setting, section 4.4).

    python -m experiments.reproduce --table mpa/table5 --seeds 3
    python -m experiments.train --config configs/mpa/table5.py:row=mpa_ap,seed=0 --workdir W

| row | R@1 | R@2 | R@4 | R@8 | nDCG@2 | nDCG@4 | nDCG@8 | MAP@R |
|---|---|---|---|---|---|---|---|---|
| soft_triple (SoftTriple (our rerun)) | 86.0 | 91.8 | 95.2 | 97.2 | 84.1 | 81.3 | 77.1 | 27.5 |
| proxy_anchor (ProxyAnchor (our rerun)) | 86.1 | 91.6 | 95.0 | 97.2 | 84.3 | 81.6 | 77.6 | 28.8 |
| mpa (MPA) | 86.8 | 92.0 | 95.1 | 97.2 | 84.9 | 82.1 | 78.0 | 28.4 |
| mpa_dw (MPA-DW) | 86.6 | 91.8 | 95.2 | 97.2 | 84.8 | 82.1 | 78.0 | 28.1 |
| mpa_ap (MPA-AP) | 87.1 | 92.4 | 95.5 | 97.5 | 85.3 | 82.7 | 78.8 | 28.6 |

Recipe (configs/mpa/recipes.py): ImageNet-pretrained BN-Inception (weights/bn_inception_flax.npz,
from `experiments/convert_weights.py`; or `pretrained=PATH`), cubic GeM, 512-d; AdamW lr 1e-4
backbone, 1e-2 proxies and embedding, halved every 20 epochs; batch 64, 60 epochs, K = 10; alpha 32,
delta 0.1, gamma 0.1, tau 0.2 (SoftTriple: lambda 20, delta 0.01). Retrieval on the held-out
classes, every test image querying all the others. Hardware: one GPU (not named in the paper).
"""

from configs import paper_tables
from configs.mpa import recipes

_REPORTED = {
    'soft_triple': ('86.0', '91.8', '95.2', '97.2', '84.1', '81.3', '77.1', '27.5'),
    'proxy_anchor': ('86.1', '91.6', '95.0', '97.2', '84.3', '81.6', '77.6', '28.8'),
    'mpa': ('86.8', '92.0', '95.1', '97.2', '84.9', '82.1', '78.0', '28.4'),
    'mpa_dw': ('86.6', '91.8', '95.2', '97.2', '84.8', '82.1', '78.0', '28.1'),
    'mpa_ap': ('87.1', '92.4', '95.5', '97.5', '85.3', '82.7', '78.8', '28.6'),
}

TABLE = paper_tables.Table(
    name="mpa/table5",
    base=lambda: recipes.retrieval('cars196'),
    metrics=recipes.metrics((1, 2, 4, 8), (2, 4, 8)),
    rows=recipes.loss_rows(recipes.DATASETS['cars196'][2]),
    cols={'cars196': {}},
    reported={(row, 'cars196'): vals for row, vals in _REPORTED.items()},
    hardware=recipes.HARDWARE,
    default_row="mpa",
)


def get_config(arg=None):
  """`arg`: "row=<soft_triple|proxy_anchor|mpa|mpa_dw|mpa_ap>,seed=<n>[,pretrained=PATH][,smoke]"."""
  return TABLE.config(arg)
