"""The group softmax paper's training recipes and the loss rows its tables share.

Kobayashi, "Group Softmax Loss with Discriminative Feature Grouping", WACV 2021, section 4 and
supplementary B.1: SGD, batch 256, momentum 0.9, weight decay 1e-4, lr 0.1 divided by 10 at the
epochs of Table B.1 (fine-tuning: lr 0.0045); standard ImageNet preprocessing and augmentation;
single-crop top-1 error. The classifier has no bias in dmlax's trainer (W of shape (D, C)).
"""

from __future__ import annotations

import ml_collections

from configs import common
from configs import paper_tables

# Supplementary Table B.1 (i-1), (i-2) and (ii): (epochs at which lr /= 10, total epochs).
SCHEDULES = {
    "imagenet": ((30, 60, 90), 120),
    "food101": ((60, 120, 150), 180),
    "caltech256": ((120, 240, 270), 300),
    "sun397": ((120, 240, 270), 300),
    "classes100": ((60, 120, 150), 180),
    "classes200": ((60, 120, 150), 180),
    "classes500": ((30, 60, 90), 120),
    "per_class100": ((90, 180, 210), 240),
    "per_class200": ((90, 180, 210), 240),
    "per_class500": ((60, 120, 150), 180),
    "food101_finetune": ((30, 60, 90), 120),
}

# The backbones of Tables 2-4: ResNet-50 (D = 2048, global average pooling) and VGG16 with
# BatchNorm (D = 4096, its two fc layers, no DropOut inside: section 4.1 "backbone CNNs contain
# no DropOut").
MODELS = {
    "resnet50": {"model.name": "resnet50", "model.kwargs": {"pooling": "avg"}},
    "resnext50": {"model.name": "resnext50_32x4d", "model.kwargs": {"pooling": "avg"}},
    "vgg16": {"model.name": "vgg16_bn", "model.kwargs": {"include_fc": True}},
}
ERROR = paper_tables.Metric("Error (%)", "top1_error", higher_is_better=False)


def group_softmax(loss_type: str, groups: tuple[int, ...], grouping="discriminative") -> dict:
  return {"loss.name": "group_softmax",
          "loss.kwargs": {"loss_type": loss_type, "groups": groups, "grouping": grouping}}


# Rows of Tables 1a, 2, 3 and 4. Type-I uses G = {1, 2}, type-II G = {1, 2, 4} (section 4.1).
LOSS_ROWS = {
    "softmax": {"loss.name": "softmax"},
    # assumption: margin 4 (L-Softmax, Liu et al. 2016, m = 4); GSL gives none.
    "lsoftmax": {"loss.name": "large_margin_softmax", "loss.kwargs": {"margin": 4}},
    "sigsoftmax": {"loss.name": "sigsoftmax"},
    # assumption: noise scale 0.1; GSL gives none.
    "noisy_softmax": {"loss.name": "noisy_softmax", "loss.kwargs": {"noise_scale": 0.1}},
    "virtual_softmax": {"loss.name": "virtual_softmax"},
    # Center loss weight 0.003: Wen et al.'s face setting (the GSL paper gives no value).
    "center": {"loss.name": "softmax", "loss.aux_name": "center", "loss.aux_weight": 0.003},
    # Table 2 rows "DropOut (p = 0.2)", "(p = 0.5)", on the penultimate layer (section 4.1).
    "dropout02": {"loss.name": "softmax", "model.kwargs.feature_dropout": 0.2},
    "dropout05": {"loss.name": "softmax", "model.kwargs.feature_dropout": 0.5},
    # Table 2 "Adversarial DropOut" (Park et al., AAAI 2018) on the penultimate features, GSL
    # section 3.2 "p = 0.005": the step drops the ceil(p D) components that raise the loss most.
    "adv_dropout": {"loss.name": "softmax", "loss.adversarial_dropout": 0.005},
    "type1": group_softmax("I", (1, 2)),
    "type2": group_softmax("II", (1, 2, 4)),
}


def classification(dataset: str, task: str | None, schedule: str, *,
                   model: str = "resnet50", lr: float = 0.1) -> ml_collections.ConfigDict:
  """SGD recipe of supplementary B.1 for `dataset`/`task` with Table B.1's `schedule`."""
  c = common.get_config()
  c.dataset.name = dataset
  c.dataset.task = task
  # supp. B.1 "standard preprocessing and data augmentation ... applied to ImageNet
  # classification": 224 px random resized crops and flips, centre crop at test.
  c.dataset.image_size = 224
  c.dataset.augment = "imagenet"
  c.model.name = MODELS[model]["model.name"]        # section 4 backbones (MODELS)
  c.model.kwargs = ml_collections.ConfigDict(MODELS[model]["model.kwargs"])
  c.batch_size = 256                                # supp. B.1 "batch size of 256"
  boundaries, epochs = SCHEDULES[schedule]
  c.num_epochs = float(epochs)                      # supp. Table B.1 T
  c.optimizer.name = "sgd"                          # supp. B.1 "SGD"
  c.optimizer.lr = lr                               # supp. B.1 0.1 (fine-tuning 0.0045)
  c.optimizer.momentum = 0.9                        # supp. B.1 "momentum of 0.9"
  c.optimizer.weight_decay = 1e-4                   # supp. B.1 "weight decay of 0.0001"
  c.schedule.name = "step"                          # supp. B.1 "divided by 10 at the t-th epoch"
  c.schedule.boundaries = tuple(float(b) for b in boundaries)  # supp. Table B.1
  c.schedule.factor = 0.1
  c.eval.every_steps = 0                            # assumption: the error after training
  c.eval.ks = (1,)                                  # section 4: top-1 error
  c.checkpoint.every_steps = 2000                   # assumption: bookkeeping
  c.log_every_steps = 100                           # assumption: bookkeeping
  return c


def imagenet_subset_table(name: str, cols: dict[str, tuple[str, str]],
                          reported: dict[str, tuple[str, ...]]) -> paper_tables.Table:
  """Table 3a and supplementary Table B.2b: softmax, type-I and type-II, ResNet-50 from scratch
  on ImageNet subsets.

  Args:
    name: the table's name.
    cols: column -> (dmlax.data task of `imagenet2012`, supp. Table B.1 schedule).
    reported: row -> the paper's error for each column, in `cols`' order.
  """
  def subset(task, schedule):
    boundaries, epochs = SCHEDULES[schedule]
    return {"dataset.task": task, "num_epochs": float(epochs),
            "schedule.boundaries": tuple(float(b) for b in boundaries)}

  return paper_tables.Table(
      name=name,
      base=lambda: classification("imagenet2012", "full", "imagenet"),
      metrics=(ERROR,),
      rows={k: LOSS_ROWS[k] for k in ("softmax", "type1", "type2")},
      cols={col: subset(*spec) for col, spec in cols.items()},
      reported={(r, c): (v,) for r, vals in reported.items() for c, v in zip(cols, vals)},
      hardware=IMAGENET_HARDWARE,
      default_row="type2",
  )


IMAGENET_HARDWARE = "NVIDIA V100 GPUs (paper); up to ~600k steps of batch 256 at 224 px"


def finetune(model: str) -> dict:
  """Fine-tuning overrides (Table 2): ImageNet-pretrained weights (converted with
  `experiments/convert_weights.py`; `pretrained=PATH` in the config argument points elsewhere),
  lr 0.0045, Table B.1(ii) schedule."""
  boundaries, epochs = SCHEDULES["food101_finetune"]
  return {"num_epochs": float(epochs), "schedule.boundaries": tuple(float(b) for b in boundaries),
          "optimizer.lr": 0.0045,
          "model.pretrained": f"weights/{MODELS[model]['model.name']}_flax.npz"}
