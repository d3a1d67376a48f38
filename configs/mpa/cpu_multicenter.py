"""CPU analogue of MPA's headline claim: multiple proxies help when classes have several modes.

Paper: S. Saeki, "Multi Proxy Anchor Family Loss for Several Types of Gradients" (2023), Tables
4-5 and 7-8: the MPA family beats ProxyAnchor (one proxy) and SoftTriple when each class has
several local centres, judged by Recall@1, nDCG@k and MAP@R. Here: `multicenter`, generated
32x32 images (shown at 16x16 px) whose every class is a union of 3 distinct visual modes;
train on classes 0-9, retrieve among classes 10-19; small_cnn with cubic GeM and a 64-d
embedding; AdamW lr 1e-3 backbone, 1e-2 proxies and embedding (the paper's 1e-4 is for a
pretrained backbone; this one trains from scratch), halved every 100 steps; batch 40, 200
steps; K = 3 proxies; alpha 32, delta 0.1, gamma 0.1, tau 0.2 (SoftTriple: lambda 20,
delta 0.01). Rows mpa_k1, mpa_k6: MPA with K proxies (MPA Figs. 2-3 in small).

    python -m experiments.reproduce --table mpa/cpu_multicenter --seeds 3

The paper prints no numbers for this setting. Hardware: 2 CPU cores, ~20 s a run.
"""

import ml_collections

from configs import common
from configs import paper_tables
from configs.mpa import recipes

K = 3


def _base():
  c = common.get_config()
  c.parallel = "single"
  c.dataset.name = "multicenter"
  c.dataset.task = "retrieval"
  c.dataset.image_size = 16
  c.model.name = "small_cnn"
  c.model.kwargs = ml_collections.ConfigDict({"pooling": "gem", "gem_p": 3.0,
                                              "embedding_dim": 64})
  c.loss.name = "mpa"
  c.loss.num_proxies = K
  c.loss.kwargs = ml_collections.ConfigDict(
      {"alpha": 32.0, "gamma": 0.1, "margin": 0.1, "tau": 0.2})
  c.batch_size = 40
  c.num_epochs = 0.0
  c.num_train_steps = 200
  c.steps_per_epoch = 10
  c.optimizer.name = "adamw"
  c.optimizer.lr = 1e-3
  c.optimizer.head_lr = 1e-2
  c.optimizer.weight_decay = 1e-4
  c.optimizer.new_layers = "head"
  c.schedule.name = "exponential"
  c.schedule.decay_rate = 0.5
  c.schedule.decay_epochs = 10.0
  c.eval.ks = (1, 2, 4, 8)
  c.log_every_steps = 300
  c.checkpoint.every_steps = 10000
  return c


_ROWS = recipes.loss_rows(K)
_KS = (1, 6)
_ROWS.update({f"mpa_k{k}": {"loss.name": "mpa", "loss.num_proxies": k} for k in _KS})
_COL = "multicenter"


def _vs(a, b):
  return ((a, _COL), (b, _COL))


TABLE = paper_tables.Table(
    name="mpa/cpu_multicenter",
    base=_base,
    metrics=recipes.metrics((1, 2, 4, 8), (2, 4, 8)),
    rows=_ROWS,
    cols={_COL: {}},
    x={**{f"mpa_k{k}": k for k in _KS}, "mpa": K},
    x_label="K",
    claims=(
        paper_tables.Claim("MPA (K = 3) has a higher Recall@1 than ProxyAnchor", "R@1",
                           _vs("mpa", "proxy_anchor"), ">"),
        paper_tables.Claim("MPA (K = 3) has a higher nDCG@4 than ProxyAnchor", "nDCG@4",
                           _vs("mpa", "proxy_anchor"), ">"),
        paper_tables.Claim("MPA (K = 3) has a higher MAP@R than ProxyAnchor", "MAP@R",
                           _vs("mpa", "proxy_anchor"), ">"),
        paper_tables.Claim("MPA (K = 3) has a higher Recall@1 than SoftTriple (K = 3)", "R@1",
                           _vs("mpa", "soft_triple"), ">"),
        paper_tables.Claim("MPA-AP has a higher Recall@1 than ProxyAnchor", "R@1",
                           _vs("mpa_ap", "proxy_anchor"), ">"),
        paper_tables.Claim("MPA-DW has a higher Recall@1 than ProxyAnchor", "R@1",
                           _vs("mpa_dw", "proxy_anchor"), ">"),
        paper_tables.Claim("MPA with K = 3 (the number of modes) beats K = 1", "R@1",
                           _vs("mpa", "mpa_k1"), ">"),
    ),
    hardware="2 CPU cores",
    default_row="mpa",
)


def get_config(arg=None):
  """`arg`: "row=<soft_triple|proxy_anchor|mpa|mpa_dw|mpa_ap|mpa_k1|mpa_k6>,seed=<n>[,smoke]"."""
  return TABLE.config(arg)
