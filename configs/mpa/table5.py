"""MPA Table 5: proxy losses compared on Cars196 (Recall@K, nDCG@k, MAP@R, x100).

Paper: S. Saeki, "Multi Proxy Anchor Family Loss for Several Types of Gradients" (2023), Table
5; one number per cell (three runs per setting, section 4.4), in `_REPORTED` below (rows:
SoftTriple and ProxyAnchor as the paper reruns them, MPA, MPA-DW, MPA-AP).

    python -m experiments.reproduce --table mpa/table5 --seeds 3
    python -m experiments.train --config configs/mpa/table5.py:row=mpa_ap,seed=0 --workdir W

Recipe: configs/mpa/recipes.py (`comparison_table`; batch 64, 60 epochs, K = 10): ImageNet-pretrained
BN-Inception (weights/bn_inception_flax.npz, from `experiments/convert_weights.py`; or
`pretrained=PATH`), cubic GeM, 512-d; AdamW. Retrieval on the held-out classes, every test image
querying all the others. Hardware: one GPU (not named in the paper).
"""

from configs.mpa import recipes

_REPORTED = {
    'soft_triple': ('86.0', '91.8', '95.2', '97.2', '84.1', '81.3', '77.1', '27.5'),
    'proxy_anchor': ('86.1', '91.6', '95.0', '97.2', '84.3', '81.6', '77.6', '28.8'),
    'mpa': ('86.8', '92.0', '95.1', '97.2', '84.9', '82.1', '78.0', '28.4'),
    'mpa_dw': ('86.6', '91.8', '95.2', '97.2', '84.8', '82.1', '78.0', '28.1'),
    'mpa_ap': ('87.1', '92.4', '95.5', '97.5', '85.3', '82.7', '78.8', '28.6'),
}

TABLE = recipes.comparison_table("mpa/table5", "cars196", _REPORTED)


def get_config(arg=None):
  """`arg`: "row=<soft_triple|proxy_anchor|mpa|mpa_dw|mpa_ap>,seed=<n>[,pretrained=PATH][,smoke]"."""
  return TABLE.config(arg)
