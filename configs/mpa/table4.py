"""MPA Table 4: proxy losses compared on CUB-200-2011 (Recall@K, nDCG@k, MAP@R, x100).

Paper: S. Saeki, "Multi Proxy Anchor Family Loss for Several Types of Gradients" (2023), Table
4; one number per cell (three runs per setting, section 4.4), in `_REPORTED` below (rows:
SoftTriple and ProxyAnchor as the paper reruns them, MPA, MPA-DW, MPA-AP).

    python -m experiments.reproduce --table mpa/table4 --seeds 3
    python -m experiments.train --config configs/mpa/table4.py:row=mpa_ap,seed=0 --workdir W

Recipe: configs/mpa/recipes.py (`comparison_table`; batch 180, 60 epochs, K = 10): ImageNet-pretrained
BN-Inception (weights/bn_inception_flax.npz, from `experiments/convert_weights.py`; or
`pretrained=PATH`), cubic GeM, 512-d; AdamW. Retrieval on the held-out classes, every test image
querying all the others. Hardware: one GPU (not named in the paper).
"""

from configs.mpa import recipes

_REPORTED = {
    'soft_triple': ('67.6', '78.0', '85.8', '91.1', '65.4', '62.9', '59.4', '25.5'),
    'proxy_anchor': ('68.6', '78.7', '86.1', '91.7', '66.7', '64.1', '60.9', '26.7'),
    'mpa': ('69.2', '79.4', '86.6', '91.6', '67.3', '64.7', '61.3', '26.6'),
    'mpa_dw': ('68.9', '79.0', '86.5', '91.9', '66.9', '64.3', '61.1', '26.3'),
    'mpa_ap': ('69.1', '79.1', '86.3', '91.7', '67.1', '64.6', '61.3', '26.6'),
}

TABLE = recipes.comparison_table("mpa/table4", "cub200", _REPORTED)


def get_config(arg=None):
  """`arg`: "row=<soft_triple|proxy_anchor|mpa|mpa_dw|mpa_ap>,seed=<n>[,pretrained=PATH][,smoke]"."""
  return TABLE.config(arg)
