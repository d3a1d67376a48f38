"""MPA Table 6: proxy losses compared on Stanford Online Products (SOP) (Recall@K, nDCG@k, MAP@R, x100).

Paper: S. Saeki, "Multi Proxy Anchor Family Loss for Several Types of Gradients" (2023), Table
6. The paper reports one number per cell (three runs per setting, section 4.4).

    python -m experiments.reproduce --table mpa/table6 --seeds 3
    python -m experiments.train --config configs/mpa/table6.py:row=mpa_ap,seed=0 --workdir W

| row | R@1 | R@10 | R@100 | nDCG@10 | nDCG@100 | MAP@R |
|---|---|---|---|---|---|---|
| soft_triple (SoftTriple (our rerun)) | 79.0 | 90.7 | 96.0 | 64.4 | 70.7 | 51.7 |
| proxy_anchor (ProxyAnchor (our rerun)) | 77.6 | 90.2 | 95.9 | 62.7 | 69.2 | 49.7 |
| mpa (MPA) | 77.5 | 90.0 | 95.8 | 62.5 | 69.0 | 49.6 |
| mpa_dw (MPA-DW) | 78.4 | 90.1 | 95.5 | 63.2 | 69.2 | 50.5 |
| mpa_ap (MPA-AP) | 78.1 | 90.1 | 95.6 | 62.9 | 69.1 | 50.2 |

Recipe (configs/mpa/recipes.py): ImageNet-pretrained BN-Inception (weights/bn_inception_flax.npz,
from `experiments/convert_weights.py`; or `pretrained=PATH`), cubic GeM, 512-d; AdamW lr 1e-4
backbone, 1e-2 proxies and embedding, halved every 20 epochs; batch 32, 100 epochs, K = 2; alpha 32,
delta 0.1, gamma 0.1, tau 0.2 (SoftTriple: lambda 20, delta 0.01). Retrieval on the held-out
classes, every test image querying all the others. Hardware: one GPU (not named in the paper).
"""

from configs import paper_tables
from configs.mpa import recipes

_REPORTED = {
    'soft_triple': ('79.0', '90.7', '96.0', '64.4', '70.7', '51.7'),
    'proxy_anchor': ('77.6', '90.2', '95.9', '62.7', '69.2', '49.7'),
    'mpa': ('77.5', '90.0', '95.8', '62.5', '69.0', '49.6'),
    'mpa_dw': ('78.4', '90.1', '95.5', '63.2', '69.2', '50.5'),
    'mpa_ap': ('78.1', '90.1', '95.6', '62.9', '69.1', '50.2'),
}

TABLE = paper_tables.Table(
    name="mpa/table6",
    base=lambda: recipes.retrieval('sop'),
    metrics=recipes.metrics((1, 10, 100), (10, 100)),
    rows=recipes.loss_rows(recipes.DATASETS['sop'][2]),
    cols={'sop': {}},
    reported={(row, 'sop'): vals for row, vals in _REPORTED.items()},
    hardware=recipes.HARDWARE,
    default_row="mpa",
)


def get_config(arg=None):
  """`arg`: "row=<soft_triple|proxy_anchor|mpa|mpa_dw|mpa_ap>,seed=<n>[,pretrained=PATH][,smoke]"."""
  return TABLE.config(arg)
