"""The multi-proxy anchor paper's training recipe and the loss rows its tables share.

S. Saeki, "Multi Proxy Anchor Family Loss for Several Types of Gradients" (2023), section 4.2: ImageNet-
pretrained BN-Inception, cubic GeM, 512-d embedding; AdamW with lr 1e-4 for the backbone and
1e-2 for the proxies (and, here, the new embedding layer), both halved every 20 epochs; batch
180 / 64 / 32 and 60 / 60 / 100 epochs for CUB-200-2011 / Cars196 / SOP; random sampling;
224 px crops with flips; tau = 0.2, gamma = 0.1, delta = 0.1; K = 10 (CUB, Cars) or 2 (SOP).
Choices the paper leaves open (docs/spec.md section 4): alpha = 32 (ProxyAnchor's default); AdamW
weight decay 1e-4 and frozen BatchNorm statistics, as ProxyAnchor's reference code
(tjddus9597/Proxy-Anchor-CVPR2020) whose setting the paper reruns ("the same architecture").
"""

from __future__ import annotations

import ml_collections

from configs import common
from configs import paper_tables

DATASETS = {
    # name: (batch size, epochs, K, ks of the table)
    "cub200": (180, 60, 10, (1, 2, 4, 8)),
    "cars196": (64, 60, 10, (1, 2, 4, 8)),
    "sop": (32, 100, 2, (1, 10, 100)),
}


def retrieval(dataset: str) -> ml_collections.ConfigDict:
  """MPA section 4.2's recipe on `dataset` (cub200, cars196 or sop), loss MPA with its K."""
  batch, epochs, k, ks = DATASETS[dataset]
  c = common.get_config()
  c.dataset.name = dataset
  c.dataset.task = "retrieval"
  c.dataset.image_size = 224
  c.dataset.augment = "bninception"
  c.dataset.sampler = "random"
  c.model.name = "bn_inception"
  c.model.kwargs = ml_collections.ConfigDict(
      {"pooling": "gem", "gem_p": 3.0, "embedding_dim": 512})
  c.model.pretrained = "weights/bn_inception_flax.npz"
  c.model.frozen_bn = True
  c.loss.name = "mpa"
  c.loss.num_proxies = k
  c.loss.kwargs = ml_collections.ConfigDict(
      {"alpha": 32.0, "gamma": 0.1, "margin": 0.1, "tau": 0.2})
  c.batch_size = batch
  c.num_epochs = float(epochs)
  c.optimizer.name = "adamw"
  c.optimizer.lr = 1e-4
  c.optimizer.head_lr = 1e-2
  c.optimizer.weight_decay = 1e-4
  c.optimizer.new_layers = "head"
  c.schedule.name = "exponential"
  c.schedule.decay_rate = 0.5
  c.schedule.decay_epochs = 20.0
  c.schedule.staircase = True
  c.eval.ks = ks
  c.eval.every_steps = 0
  c.checkpoint.every_steps = 1000
  c.log_every_steps = 50
  return c


def loss_rows(k: int) -> dict:
  """Rows of Tables 4-6: SoftTriple and ProxyAnchor (the paper's reruns) and the MPA family."""
  proxy_kwargs = {"alpha": 32.0, "gamma": 0.1, "margin": 0.1, "tau": 0.2}
  return {
      # SoftTriple's own defaults (Qian et al. 2019): lambda 20, gamma 0.1, delta 0.01, tau 0.2.
      "soft_triple": {"loss.name": "soft_triple", "loss.num_proxies": k,
                      "loss.kwargs": {"la": 20.0, "gamma": 0.1, "margin": 0.01, "tau": 0.2}},
      "proxy_anchor": {"loss.name": "proxy_anchor", "loss.num_proxies": 1,
                       "loss.kwargs": {"alpha": 32.0, "margin": 0.1}},
      "mpa": {"loss.name": "mpa", "loss.num_proxies": k, "loss.kwargs": proxy_kwargs},
      "mpa_dw": {"loss.name": "mpa_dw", "loss.num_proxies": k, "loss.kwargs": proxy_kwargs},
      "mpa_ap": {"loss.name": "mpa_ap", "loss.num_proxies": k, "loss.kwargs": proxy_kwargs},
  }


def metrics(ks, ndcg_ks):
  from configs import paper_tables
  out = [paper_tables.Metric(f"R@{k}", f"recall@{k}") for k in ks]
  out += [paper_tables.Metric(f"nDCG@{k}", f"ndcg@{k}") for k in ndcg_ks]
  out.append(paper_tables.Metric("MAP@R", "map@r"))
  return tuple(out)


HARDWARE = ("GPU (the paper does not name it); BN-Inception at 224 px, batch 180 (CUB) fits one "
            "16 GB GPU; ~2k (CUB) to ~190k (SOP) steps")


PROXY_COUNTS = (1, 4, 8, 12, 16)


def proxy_count_table(name: str, dataset: str, reported: dict) -> paper_tables.Table:
  """Tables 7-8 (Figs. 2-3): R@1 and nDCG@{2,4,8} of MPA against K proxies per class on
  `dataset`; `reported` maps K to the paper's four numbers."""
  return paper_tables.Table(
      name=name,
      base=lambda: retrieval(dataset),
      metrics=(paper_tables.Metric("R@1", "recall@1"),
               *(paper_tables.Metric(f"nDCG@{k}", f"ndcg@{k}") for k in (2, 4, 8))),
      rows={f"k{k}": {"loss.name": "mpa", "loss.num_proxies": k} for k in PROXY_COUNTS},
      cols={dataset: {}},
      reported={(f"k{k}", dataset): vals for k, vals in reported.items()},
      x={f"k{k}": k for k in PROXY_COUNTS},
      x_label="K",
      hardware=HARDWARE,
      default_row="k8",
  )
