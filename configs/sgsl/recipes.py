"""The stop-gradient softmax paper's training recipe and the loss rows its tables share.

L. Yang, P. Wang, Y. Zhang, "Stop-Gradient Softmax Loss for Deep Metric Learning", AAAI 2023,
"Implementation Details": ImageNet-pretrained ResNet-50, GeM instead of global average pooling,
BatchNorm without scale and bias on top (the embedding), the backbone's last BN-ReLU removed
(RBR); 512-d (a linear embedding) or 2048-d (the pooled features); images 256 -> 224 crops; batch
64 = 16 identities x 4 images; 100 epochs; cosine learning rate; fp16; softmax with label
smoothing (0.1, docs/spec.md section 3) plus beta * SGSL (gamma = 30, beta = 1), SGSL joining once
the softmax loss is below 3. "Other settings are the same as (Boudiaf et al. 2020)": the paper does
not restate them; assumed here from Boudiaf et al.'s reference code (jeromerony/
dml_cross_entropy): SGD with Nesterov momentum 0.9, lr 0.02, weight decay 5e-4.
"""

from __future__ import annotations

import ml_collections

from configs import common

KS = {"cub200": (1, 2, 4, 8), "cars196": (1, 2, 4, 8), "sop": (1, 10, 100),
      "inshop": (1, 10, 20, 40), "fashion_mnist": (1, 2, 4, 8)}


def retrieval(dataset: str, dim: int = 2048) -> ml_collections.ConfigDict:
  """SGSL's recipe on `dataset` with a `dim`-wide embedding (2048: no linear layer)."""
  c = common.get_config()
  c.dataset.name = dataset
  c.dataset.task = "retrieval"
  c.dataset.image_size = 224
  c.dataset.augment = "imagenet"
  c.dataset.sampler = "m_per_class"
  c.dataset.m_per_class = 4
  c.model.name = "resnet50"
  c.model.kwargs = ml_collections.ConfigDict(head(dim))
  c.model.kwargs.rbr = True
  c.model.pretrained = "weights/resnet50_flax.npz"
  c.loss.name = "softmax_sgsl"
  c.loss.kwargs = ml_collections.ConfigDict(
      {"gamma": 30.0, "beta": 1.0, "label_smoothing": 0.1, "start_below": 3.0})
  c.batch_size = 64
  c.num_epochs = 100.0
  c.half_precision = True
  c.optimizer.name = "sgd"
  c.optimizer.lr = 0.02
  c.optimizer.momentum = 0.9
  c.optimizer.nesterov = True
  c.optimizer.weight_decay = 5e-4
  c.schedule.name = "cosine"
  c.eval.ks = KS[dataset]
  c.eval.every_steps = 0
  c.checkpoint.every_steps = 1000
  c.log_every_steps = 50
  return c


def head(dim: int) -> dict:
  """GeM pooling and the BN neck; a linear embedding of width `dim` unless dim = 2048."""
  kw = {"pooling": "gem", "gem_p": 3.0, "bn_neck": True}
  if dim != 2048:
    kw["embedding_dim"] = dim
  return kw


def col(dataset: str, dim: int) -> dict:
  kw = head(dim)
  kw["rbr"] = True
  return {"dataset.name": dataset, "eval.ks": KS[dataset], "model.kwargs": kw}


SOFTMAX = {"loss.name": "softmax", "loss.kwargs": {"label_smoothing": 0.1}}
SGSL = {"loss.name": "softmax_sgsl"}
# Table 3's other losses, each added to the label-smoothed softmax. The paper gives none of
# their hyperparameters: triplet margin 0.2 with batch-hard mining (Hermans et al.), soft-margin
# triplet (softplus, batch-hard), ring loss weight 0.01 (Zheng et al.'s default).
LOSS_ROWS = {
    "softmax": {**SOFTMAX, "model.kwargs.rbr": False},
    "softmax_l2norm": {**SOFTMAX, "model.kwargs.l2_normalize": True},
    "softmax_triplet": {**SOFTMAX, "loss.aux_name": "triplet",
                        "loss.aux_kwargs": {"margin": 0.2, "mining": "hard"}},
    "softmax_softmargin": {**SOFTMAX, "loss.aux_name": "triplet",
                           "loss.aux_kwargs": {"mining": "hard", "soft": True}},
    "softmax_ring": {**SOFTMAX, "loss.aux_name": "ring", "loss.aux_kwargs": {"loss_weight": 0.01}},
    "softmax_sgsl": SGSL,
}

HARDWARE = ("GTX 2080Ti GPUs (paper: 2 GPUs, 4 for SOP), fp16; 100 epochs of batch 64 at 224 px "
            "(CUB ~9k steps, SOP ~93k steps)")
