"""The stop-gradient softmax paper's training recipe, as its authors ran it, and its table rows.

L. Yang, P. Wang, Y. Zhang, "Stop-Gradient Softmax Loss for Deep Metric Learning", AAAI 2023,
"Implementation Details": ImageNet-pretrained ResNet-50, GeM pooling, "Batch Normalization (BN),
without scaling and bias, on top of the backbone", the last BN-ReLU removed (RBR), 512-d or
2048-d, images "resized to 256x256 and croped to 224x224", batch 64 = 16 identities x 4 images,
fp16, 100 epochs, cosine learning rate, gamma = 30, label smoothing, SGSL joining "only when the
value of softmax is smaller than 3"; "Other settings are the same as (Boudiaf et al. 2020)".

The paper leaves most values to its code. The authors' code is public (luyang-NWPU/SGSL, built on
fastreid), with the dumped configs of their 2048-d runs,
`projects/FastRetri/logs/r50-base_{cub,cars,sop,inshop}/config.yaml` (the configs printed in the
`log.txt` beside them for the completed runs are the same): the recipe below follows those
files and the code that read them, value by value (the comment beside each value names its
source). Where the code and the paper's wording differ, the code wins and the paper's reading is
an option:
  * RBR: fastreid replaces `layer4[2].bn3` and `layer4[2].relu` by identities
    (`fastreid/modeling/meta_arch/baseline.py`); the bottleneck calls that one `relu` three
    times, so the final block loses all three ReLUs (`rbr_variant="fastreid"`). The paper's
    "remove the last BN-ReLU": `rbr_variant="paper"` (that BN and the ReLU after the sum only).
  * BN neck: `get_norm(..., bias_freeze=True)` trains a scale and keeps the bias at 0
    (`bn_neck_scale=True`); the paper says without scale and bias (`bn_neck_scale=False`).
  * Images: the FastRetri trainer (`projects/FastRetri/fastretri/trainer.py`) resizes CUB's
    shorter side to 256 (`SIZE_TRAIN: [256]`), Cars196 and SOP to 256 x 256, and does not resize
    In-shop (`SIZE_TRAIN: [0]`); it applies the colour jitter to every image and never pads
    (the config's `CJ.PROB: 0.5`, `DO_PAD`, `PADDING: 10` are read only by fastreid's default
    transforms, which this trainer replaces). See `dmlax.data.transforms.FASTRETRI`.
`PAPER_WORDING` holds the paper's readings (on the command line:
`--config.model.kwargs.rbr_variant=paper --config.model.kwargs.bn_neck_scale=False`).

The other reference the paper names, Boudiaf et al.'s code (jeromerony/dml_cross_entropy), runs
plain SGD (momentum 0 by default; 0.99 with Nesterov for SOP and In-shop), lr 0.02 for 30 epochs
on CUB, 0.05 on Cars196, 0.003 on SOP and In-shop, label smoothing 0.1, weight decay 5e-4 off
the 1-D parameters, a 100-iteration warm-up then cosine to 0 (`experiment.py`, README): the
authors' fastreid configs keep those rates and momenta but not the rest.

`TRAINER_PENDING` lists fields set here that no dmlax code reads yet (empty: every field,
the warm-up and the backbone-only frozen BatchNorm included, is a trainer field).
"""

from __future__ import annotations

import ml_collections

from configs import common

KS = {"cub200": (1, 2, 4, 8), "cars196": (1, 2, 4, 8), "sop": (1, 10, 100),
      "inshop": (1, 10, 20, 40), "fashion_mnist": (1, 2, 4, 8)}

_LOGS = "luyang-NWPU/SGSL projects/FastRetri/logs/r50-base_{}/config.yaml"
# Per dataset, from the authors' dumped configs (SOLVER.BASE_LR, SOLVER.MOMENTUM,
# SOLVER.ETA_MIN_LR, MODEL.LOSSES.CE.EPSILON, MODEL.HEADS.NUM_CLASSES):
AUTHORS = {
    #          lr     momentum eta_min  epsilon classes  log directory
    "cub200": (0.05, 0.0, 5e-4, 0.4, 100, "cub"),
    "cars196": (0.05, 0.0, 5e-4, 0.4, 98, "cars"),
    "sop": (0.003, 0.99, 3e-5, 0.1, 11318, "sop"),
    "inshop": (0.003, 0.99, 3e-5, 0.1, 3997, "inshop"),
}

# Fields no dmlax code reads yet, with what the trainer must do for them.
TRAINER_PENDING: dict[str, str] = {}


def head(dim: int) -> dict:
  """The authors' head on ResNet-50: GeM, RBR, BN neck; a linear embedding unless dim = 2048."""
  kw = {
      "pooling": "gem",   # paper "Implementation Details"; fastreid POOL_LAYER gempool
      "gem_p": 3.0,       # fastreid fastreid/layers/pooling.py GeneralizedMeanPooling(norm=3)
      "bn_neck": True,    # paper "Implementation Details"; fastreid HEADS.WITH_BNNECK true
      # fastreid embedding_head.py: get_norm(..., bias_freeze=True), a trained scale, no bias;
      # the paper says "without scaling and bias" (PAPER_WORDING).
      "bn_neck_scale": True,
      "rbr": True,        # paper "RBR"; fastreid meta_arch/baseline.py
      "rbr_variant": "fastreid",  # fastreid meta_arch/baseline.py (see the module docstring)
      "last_stride": 1,   # fastreid MODEL.BACKBONE.LAST_STRIDE 1 (config.yaml)
  }
  if dim != 2048:
    # Paper Table 1 "#dims 512"; the authors' 2048-d logs have EMBEDDING_DIM 0 (no layer).
    kw["embedding_dim"] = dim
    # fastreid embedding_head.py: the embedding is nn.Conv2d(feat_dim, dim, 1, bias=False).
    kw["embedding_bias"] = False
  return kw


def label_smoothing(dataset: str) -> float:
  """fastreid's smoothing in dmlax's form: the same targets.

  fastreid (`fastreid/modeling/losses/cross_entroy_loss.py`) puts `1 - eps` on the label and
  `eps / (C - 1)` on every other class; `dmlax.losses.softmax_loss` puts `1 - e + e / C` and
  `e / C`. They agree for `e = eps C / (C - 1)` (CUB: 0.4 -> 0.40404).
  """
  _, _, _, eps, classes, _ = AUTHORS[dataset]
  return eps * classes / (classes - 1)


def _dataset_fields(dataset: str, dim: int) -> dict:
  """Every field that changes with the dataset or the width, as dotted overrides."""
  lr, momentum, eta_min, _, _, logs = AUTHORS[dataset]
  return {
      "dataset.name": dataset,
      "dataset.augment": f"fastretri_{logs}",  # FastRetri trainer.py with config.yaml INPUT
      "eval.ks": KS[dataset],                  # paper Tables 1-2 columns
      "model.kwargs": head(dim),
      "optimizer.lr": lr,                      # config.yaml SOLVER.BASE_LR
      "optimizer.momentum": momentum,          # config.yaml SOLVER.MOMENTUM
      # fastreid solver/build.py: nesterov only when MOMENTUM > 0 (NESTEROV true in all four).
      "optimizer.nesterov": momentum > 0,
      "schedule.final_fraction": eta_min / lr,  # config.yaml SOLVER.ETA_MIN_LR / BASE_LR
      "loss.kwargs.label_smoothing": label_smoothing(dataset),  # config.yaml CE.EPSILON
  }


def retrieval(dataset: str, dim: int = 2048) -> ml_collections.ConfigDict:
  """The authors' recipe on `dataset` with a `dim`-wide embedding and the label-smoothed
  softmax alone (the SGSL rows add `SGSL`); `sgsl(dataset, dim)` has both."""
  c = common.get_config()
  c.dataset.task = "retrieval"
  c.dataset.image_size = 224        # config.yaml INPUT.CROP_SIZE 224; paper "224x224"
  c.dataset.sampler = "m_per_class"  # config.yaml DATALOADER.PK_SAMPLER, NAIVE_WAY
  c.dataset.m_per_class = 4         # config.yaml NUM_INSTANCE 4; paper "4 images/ID"
  c.model.name = "resnet50"         # paper "ResNet50 as the backbone"; DEPTH 50x
  c.model.pretrained = "weights/resnet50_flax.npz"  # paper "pre-trained on ImageNet"
  # config.yaml MODEL.BACKBONE.NORM FrozenBN: the backbone's BatchNorm in inference mode, its
  # scale and bias not trained; the neck (MODEL.HEADS.NORM syncBN) trains.
  c.model.frozen_bn = True
  c.model.frozen_bn_scope = "backbone"
  c.loss.name = "softmax"           # config.yaml LOSSES.NAME [CrossEntropyLoss]
  c.loss.kwargs = ml_collections.ConfigDict()
  c.batch_size = 64                 # config.yaml SOLVER.IMS_PER_BATCH 64; paper "batch size of 64"
  c.num_epochs = 100.0              # config.yaml SOLVER.MAX_EPOCH 100; paper "100 epochs"
  # config.yaml SOLVER.FP16_ENABLED; paper "fp16". assumption: bfloat16, dmlax's half precision.
  c.half_precision = True
  c.optimizer.name = "sgd"          # config.yaml SOLVER.OPT SGD
  c.optimizer.weight_decay = 5e-4   # config.yaml SOLVER.WEIGHT_DECAY
  # SOLVER.WEIGHT_DECAY_BIAS 0 exempts biases; the authors' network trains none (bias-free
  # classifier and embedding, frozen neck bias, FrozenBN backbone), and neither does this one.
  c.schedule.name = "cosine"        # config.yaml SOLVER.SCHED CosineAnnealingLR; paper "cosine"
  # config.yaml SOLVER.WARMUP_ITERS 1000, WARMUP_METHOD linear, then the cosine over the rest.
  # assumption: the cosine is stepped every iteration (fastreid steps it once per epoch).
  c.schedule.warmup_steps = 1000
  c.schedule.warmup_factor = 0.1    # config.yaml SOLVER.WARMUP_FACTOR
  # config.yaml TEST.EVAL_PERIOD 25 (epochs); the reported numbers are those at the end.
  c.eval.every_steps = 0
  c.checkpoint.every_steps = 1000   # assumption: bookkeeping, not part of the recipe
  c.log_every_steps = 50            # assumption: bookkeeping
  for key, value in _dataset_fields(dataset, dim).items():
    *parents, leaf = key.split(".")
    node = c
    for p in parents:
      node = node[p]
    node[leaf] = ml_collections.ConfigDict(value) if isinstance(value, dict) else value
  return c


def sgsl(dataset: str, dim: int = 2048) -> ml_collections.ConfigDict:
  """`retrieval(dataset, dim)` with SGSL added (the paper's method)."""
  c = retrieval(dataset, dim)
  c.loss.name = "softmax_sgsl"
  c.loss.kwargs.update({k.split(".")[-1]: v for k, v in SGSL.items() if k.startswith("loss.k")})
  return c


def col(dataset: str, dim: int) -> dict:
  """Overrides that move a `retrieval(...)` base to `dataset` at width `dim`."""
  return _dataset_fields(dataset, dim)


# SGSL beside the label-smoothed softmax (eq. 10). The authors add it inside the head
# (fastreid/modeling/heads/embedding_head.py `center_triplet(bn_feat, targets, weight, 30.0,
# norm=True, end2end=False)`) and the CE (`cross_entroy_loss.py`: added when the CE is not above
# 3.0, weight 1).
SGSL = {
    "loss.name": "softmax_sgsl",
    "loss.kwargs.gamma": 30.0,       # paper "gamma = 30 as default"; embedding_head.py neg_r 30.0
    "loss.kwargs.beta": 1.0,         # paper Table 6 default; cross_entroy_loss.py loss + sgsl
    "loss.kwargs.start_below": 3.0,  # paper "smaller than 3"; cross_entroy_loss.py `> 3.0`
}
# The paper's wording where the authors' code differs (see the module docstring).
PAPER_WORDING = {"model.kwargs.rbr_variant": "paper", "model.kwargs.bn_neck_scale": False}

# The label-smoothed softmax of Boudiaf et al. (epsilon 0.1, jeromerony/dml_cross_entropy
# experiment.py), replacing the loss of a config whose loss is SGSL (the CPU analogue's rows).
SOFTMAX = {"loss.name": "softmax", "loss.kwargs": {"label_smoothing": 0.1}}
# Table 3's other losses, each added to the label-smoothed softmax. The paper gives none of
# their hyperparameters: triplet margin 0.2 with batch-hard mining (Hermans et al.), soft-margin
# triplet (softplus, batch-hard), ring loss weight 0.01 (Zheng et al.'s default).
LOSS_ROWS = {
    # Table 4's first row: the recipe without SGSL and without RBR.
    "softmax": {"model.kwargs.rbr": False},
    "softmax_l2norm": {"model.kwargs.l2_normalize": True},
    "softmax_triplet": {"loss.aux_name": "triplet",
                        "loss.aux_kwargs": {"margin": 0.2, "mining": "hard"}},
    "softmax_softmargin": {"loss.aux_name": "triplet",
                           "loss.aux_kwargs": {"mining": "hard", "soft": True}},
    "softmax_ring": {"loss.aux_name": "ring", "loss.aux_kwargs": {"loss_weight": 0.01}},
    "softmax_sgsl": SGSL,
}

HARDWARE = ("GTX 2080Ti GPUs (paper: 2 GPUs, 4 for SOP), fp16; 100 epochs of batch 64 at 224 px "
            "(CUB ~9k steps, SOP ~93k steps)")
