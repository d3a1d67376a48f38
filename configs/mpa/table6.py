"""MPA Table 6: proxy losses compared on Stanford Online Products (SOP) (Recall@K, nDCG@k, MAP@R, x100).

Paper: S. Saeki, "Multi Proxy Anchor Family Loss for Several Types of Gradients" (2023), Table
6; one number per cell (three runs per setting, section 4.4), in `_REPORTED` below (rows:
SoftTriple and ProxyAnchor as the paper reruns them, MPA, MPA-DW, MPA-AP).

    python -m experiments.reproduce --table mpa/table6 --seeds 3
    python -m experiments.train --config configs/mpa/table6.py:row=mpa_ap,seed=0 --workdir W

Recipe: configs/mpa/recipes.py (`comparison_table`; batch 32, 100 epochs, K = 2): ImageNet-pretrained
BN-Inception (weights/bn_inception_flax.npz, from `experiments/convert_weights.py`; or
`pretrained=PATH`), cubic GeM, 512-d; AdamW. Retrieval on the held-out classes, every test image
querying all the others. Hardware: one GPU (not named in the paper).
"""

from configs.mpa import recipes

_REPORTED = {
    'soft_triple': ('79.0', '90.7', '96.0', '64.4', '70.7', '51.7'),
    'proxy_anchor': ('77.6', '90.2', '95.9', '62.7', '69.2', '49.7'),
    'mpa': ('77.5', '90.0', '95.8', '62.5', '69.0', '49.6'),
    'mpa_dw': ('78.4', '90.1', '95.5', '63.2', '69.2', '50.5'),
    'mpa_ap': ('78.1', '90.1', '95.6', '62.9', '69.1', '50.2'),
}

TABLE = recipes.comparison_table("mpa/table6", "sop", _REPORTED)


def get_config(arg=None):
  """`arg`: "row=<soft_triple|proxy_anchor|mpa|mpa_dw|mpa_ap>,seed=<n>[,pretrained=PATH][,smoke]"."""
  return TABLE.config(arg)
