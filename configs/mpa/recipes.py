"""The multi-proxy anchor paper's training recipe and the loss rows its tables share.

S. Saeki, "Multi Proxy Anchor Family Loss for Several Types of Gradients" (2023), section 4.2:
ImageNet-pretrained BN-Inception, cubic GeM, 512-d output; training images randomly resized and
cropped to 224 and flipped, test images "resized to 256x256 and cropped to 224x224 at the image
center"; AdamW, initial rates 1e-4 (backbone) and 1e-2 (proxies), "decay these learning rates
by 0.5 every 20 epochs"; batch 180 / 64 / 32 and 60 / 60 / 100 epochs for CUB-200-2011 /
Cars196 / SOP; random sampling; tau = 0.2, gamma = 0.1, delta = 0.1; K = 10 (CUB, Cars) or 2
(SOP); SoftTriple and ProxyAnchor rerun "in the same architecture and settings".

MPA's own code is not public. What section 4.2 leaves open is taken from ProxyAnchor's reference
code (tjddus9597/Proxy-Anchor-CVPR2020, `code/train.py`, whose BN-Inception setting MPA reruns),
each value's comment naming its source:
  * one warm-up epoch training only the new layers and the proxies (`--warm 1` in its README's
    BN-Inception commands): `optimizer.warmup_epochs = 1` with `new_layers = "head"`;
  * gradients clipped by value at 10 (`clip_grad_value_(..., 10)` on the model and the proxies):
    `optimizer.grad_clip_value = 10`;
  * the embedding layer at the backbone's rate (its param group `lr * 1`, proxies `lr * 100`):
    `optimizer.new_layers_lr = 1e-4`, the proxies at `head_lr`;
  * AdamW weight decay 1e-4 and frozen BatchNorm (`--weight-decay` default, `--bn-freeze 1`;
    its README's SOP command uses `--bn-freeze 0`, kept frozen here as in its default);
  * alpha = 32 and ProxyAnchor's margin 0.1 (`--alpha`, `--mrg` defaults);
  * evaluation: that code evaluates after every epoch and reports the best epoch's Recall@1 on
    the test set; MPA does not say which epoch it reports, and the recipe evaluates the last
    one (per-epoch evaluation with best-checkpoint tracking:
    `--config.eval.every_steps=<steps per epoch> --config.checkpoint.best_metric=recall@1`).
It resizes test images' shorter side to 256 (`code/dataset/utils.py`); MPA's text says 256x256,
which the recipe follows (`augment="bninception_square"`).
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


_PA = "tjddus9597/Proxy-Anchor-CVPR2020"
# Fields no dmlax code reads yet, with what the trainer must do for them (none).
TRAINER_PENDING: dict[str, str] = {}


def retrieval(dataset: str) -> ml_collections.ConfigDict:
  """MPA section 4.2's recipe on `dataset` (cub200, cars196 or sop), loss MPA with its K."""
  batch, epochs, k, ks = DATASETS[dataset]
  c = common.get_config()
  c.dataset.name = dataset
  c.dataset.task = "retrieval"
  c.dataset.image_size = 224          # MPA 4.2 "cropped to 224x224"
  c.dataset.augment = "bninception_square"  # MPA 4.2 crops, flips, test 256x256 -> centre 224
  c.dataset.sampler = "random"        # MPA 4.2 "random sampling, the same as SoftTriple"
  c.model.name = "bn_inception"       # MPA 4.2 "Inception with batch normalization"
  c.model.kwargs = ml_collections.ConfigDict({
      "pooling": "gem",               # MPA 4.2 "cubic GeM"
      "gem_p": 3.0,                   # MPA 4.2 "cubic"
      "embedding_dim": 512,           # MPA 4.2 "512 dimensions"
  })
  c.model.pretrained = "weights/bn_inception_flax.npz"  # MPA 4.2 "trained on ImageNet"
  c.model.frozen_bn = True            # ProxyAnchor code/train.py --bn-freeze 1
  c.loss.name = "mpa"
  c.loss.num_proxies = k              # MPA 4.2 K = 10 (CUB, Cars), 2 (SOP)
  c.loss.kwargs = ml_collections.ConfigDict({
      "alpha": 32.0,                  # ProxyAnchor code/train.py --alpha default
      "gamma": 0.1,                   # MPA 4.2 gamma (eq. 13)
      "margin": 0.1,                  # MPA 4.2 delta (eq. 17)
      "tau": 0.2,                     # MPA 4.2 tau (eq. 7)
  })
  c.batch_size = batch                # MPA 4.2 "180, 64, and 32"
  c.num_epochs = float(epochs)        # MPA 4.2 "60 ... and 100 for SOP"
  c.optimizer.name = "adamw"          # MPA 4.2 "AdamW optimizer"
  c.optimizer.lr = 1e-4               # MPA 4.2 backbone 1.0e-4
  c.optimizer.head_lr = 1e-2          # MPA 4.2 proxies 1.0e-2
  c.optimizer.weight_decay = 1e-4     # ProxyAnchor code/train.py --weight-decay default
  c.optimizer.new_layers = "head"     # ProxyAnchor code/train.py: the embedding is new
  c.optimizer.warmup_epochs = 1.0     # ProxyAnchor README BN-Inception commands --warm 1
  c.optimizer.new_layers_lr = 1e-4    # ProxyAnchor code/train.py embedding param group lr * 1
  c.optimizer.grad_clip_value = 10.0  # ProxyAnchor code/train.py clip_grad_value_(..., 10)
  c.schedule.name = "exponential"     # MPA 4.2 "decay ... by 0.5 every 20 epochs"
  c.schedule.decay_rate = 0.5
  c.schedule.decay_epochs = 20.0
  c.schedule.staircase = True         # ProxyAnchor code/train.py StepLR, stepped per epoch
  c.eval.ks = ks                      # MPA Tables 4-6 columns
  c.eval.every_steps = 0              # assumption: the last epoch (see the module docstring)
  c.checkpoint.every_steps = 1000     # assumption: bookkeeping
  c.log_every_steps = 50              # assumption: bookkeeping
  return c


def loss_rows(k: int) -> dict:
  """Rows of Tables 4-6: SoftTriple and ProxyAnchor (the paper's reruns) and the MPA family."""
  proxy_kwargs = {"alpha": 32.0, "gamma": 0.1, "margin": 0.1, "tau": 0.2}  # as `retrieval`
  return {
      # SoftTriple's own defaults (Qian et al. 2019): lambda 20, gamma 0.1, delta 0.01, tau 0.2;
      # K as MPA's (MPA 4.2 "the same architecture and settings").
      "soft_triple": {"loss.name": "soft_triple", "loss.num_proxies": k,
                      "loss.kwargs": {"la": 20.0, "gamma": 0.1, "margin": 0.01, "tau": 0.2}},
      # ProxyAnchor code/train.py --alpha 32, --mrg 0.1 defaults.
      "proxy_anchor": {"loss.name": "proxy_anchor", "loss.num_proxies": 1,
                       "loss.kwargs": {"alpha": 32.0, "margin": 0.1}},
      "mpa": {"loss.name": "mpa", "loss.num_proxies": k, "loss.kwargs": proxy_kwargs},
      "mpa_dw": {"loss.name": "mpa_dw", "loss.num_proxies": k, "loss.kwargs": proxy_kwargs},
      "mpa_ap": {"loss.name": "mpa_ap", "loss.num_proxies": k, "loss.kwargs": proxy_kwargs},
  }


def metrics(ks, ndcg_ks):
  """Recall@k for `ks`, nDCG@k for `ndcg_ks` (MPA eq. 20) and MAP@R, x100."""
  out = [paper_tables.Metric(f"R@{k}", f"recall@{k}") for k in ks]
  out += [paper_tables.Metric(f"nDCG@{k}", f"ndcg@{k}") for k in ndcg_ks]
  out.append(paper_tables.Metric("MAP@R", "map@r"))
  return tuple(out)


HARDWARE = ("GPU (the paper does not name it); BN-Inception at 224 px, batch 180 (CUB) fits one "
            "16 GB GPU; ~2k (CUB) to ~190k (SOP) steps")


PROXY_COUNTS = (1, 4, 8, 12, 16)  # MPA section 4.4 "K = {1, 4, 8, 12, 16}"


def comparison_table(name: str, dataset: str, reported: dict) -> paper_tables.Table:
  """Tables 4-6: SoftTriple, ProxyAnchor and the MPA family on `dataset` with its K, batch
  size and epochs (`DATASETS`); `reported` maps a row to the paper's numbers for
  `metrics(ks, ndcg_ks)` of that dataset (one number per cell: three runs, section 4.4)."""
  ks = DATASETS[dataset][3]
  ndcg_ks = tuple(k for k in ks if k > 1)
  return paper_tables.Table(
      name=name,
      base=lambda: retrieval(dataset),
      metrics=metrics(ks, ndcg_ks),
      rows=loss_rows(DATASETS[dataset][2]),
      cols={dataset: {}},
      reported={(row, dataset): vals for row, vals in reported.items()},
      hardware=HARDWARE,
      default_row="mpa",
  )


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
