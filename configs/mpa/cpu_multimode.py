"""CPU analogue of MPA's claims: several proxies a class when classes have several modes.

Paper: S. Saeki, "Multi Proxy Anchor Family Loss for Several Types of Gradients" (2023), Tables
4-6: the MPA family beats ProxyAnchor (one proxy) and SoftTriple on Recall@1 and nDCG@k, while
"ProxyAnchor loss was the highest MAP@R"; Figs. 2-3 and Tables 7-8: R@1 against the number of
proxies K. Here: `glyphs` task `retrieval`, where half the classes show either one object or a
pair of smaller copies (two visual modes), training and held-out classes alike, so a class's
images form up to two clusters that share their factor values with other classes; train on 64
classes and retrieve among the 36 held-out ones. small_cnn with cubic GeM and a 64-d embedding
at 16x16; AdamW lr 1e-3 backbone, 1e-2 proxies (the paper's 1e-4 is for a pretrained backbone;
this one trains from scratch), cosine, batch 64 (random sampling, as the paper), 200 steps;
K = 2 proxies (the number of modes); alpha 32, delta 0.1, gamma 0.1, tau 0.2 (SoftTriple:
lambda 20, delta 0.01). Rows mpa_k4, mpa_k8 sweep K (ProxyAnchor is K = 1).

    python -m experiments.reproduce --table mpa/cpu_multimode --seeds 5

The paper prints no numbers for this setting. Hardware: 2 CPU cores, ~25 s a run.
"""

import ml_collections

from configs import cpu_glyphs
from configs import paper_tables
from configs.mpa import recipes

K = 2
STEPS = 200


def _base():
  c = cpu_glyphs.retrieval_base(steps=STEPS)
  c.loss.name = "mpa"
  c.loss.num_proxies = K
  c.loss.kwargs = ml_collections.ConfigDict(
      {"alpha": 32.0, "gamma": 0.1, "margin": 0.1, "tau": 0.2})
  return c


_KS = (4, 8)
_ROWS = recipes.loss_rows(K)
_ROWS.update({f"mpa_k{k}": {"loss.name": "mpa", "loss.num_proxies": k} for k in _KS})
_COL = "glyphs"


def _vs(a, b):
  return ((a, _COL), (b, _COL))


TABLE = paper_tables.Table(
    name="mpa/cpu_multimode",
    base=_base,
    metrics=recipes.metrics((1, 2, 4, 8), (2, 4, 8)),
    rows=_ROWS,
    cols={_COL: {}},
    x={"proxy_anchor": 1, "mpa": K, **{f"mpa_k{k}": k for k in _KS}},
    x_label="K",
    claims=(
        paper_tables.Claim("MPA (K = 2) has a higher Recall@1 than ProxyAnchor", "R@1",
                           _vs("mpa", "proxy_anchor"), ">"),
        paper_tables.Claim("MPA (K = 2) has a higher nDCG@4 than ProxyAnchor", "nDCG@4",
                           _vs("mpa", "proxy_anchor"), ">"),
        paper_tables.Claim("ProxyAnchor has a higher MAP@R than MPA (K = 2) (MPA Tables 4-6)",
                           "MAP@R", _vs("proxy_anchor", "mpa"), ">"),
        paper_tables.Claim("MPA (K = 2) has a higher Recall@1 than SoftTriple (K = 2)", "R@1",
                           _vs("mpa", "soft_triple"), ">"),
        paper_tables.Claim("MPA-DW has a higher Recall@1 than ProxyAnchor", "R@1",
                           _vs("mpa_dw", "proxy_anchor"), ">"),
        paper_tables.Claim("MPA-AP has a higher Recall@1 than ProxyAnchor", "R@1",
                           _vs("mpa_ap", "proxy_anchor"), ">"),
        paper_tables.Claim("MPA-AP has a higher Recall@1 than MPA (the paper's most accurate "
                           "of the family)", "R@1", _vs("mpa_ap", "mpa"), ">"),
    ),
    hardware="2 CPU cores",
    default_row="mpa",
)


def get_config(arg=None):
  """`arg`: "row=<soft_triple|proxy_anchor|mpa|mpa_dw|mpa_ap|mpa_k4|mpa_k8>,seed=<n>[,smoke]"."""
  return TABLE.config(arg)
