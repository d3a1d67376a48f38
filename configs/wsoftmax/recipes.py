"""The weights-biased softmax paper's training recipe and the loss rows its tables share.

X. Li, W. Wang, "Learning discriminative features via weights-biased softmax loss", Pattern
Recognition 2020, section 5.1: the CNNs of Liu et al. (L-Softmax, ICML 2016; `prelu_mnist`,
`prelu_cifar`: 3x3 conv-PReLU-BN, xavier init, an FC layer of width M = 256 before the
classifier); momentum 0.9, lr 0.01 decayed by 0.9 every 6000 steps, weight decay 5e-4, no
DropOut; batch 50 (MNIST) / 256 (CIFAR); "first train the CNNs using the conventional softmax
loss, and refine the network using the proposed W-Softmax loss". The paper gives neither the
number of steps nor the length of the softmax phase; assumed here: MNIST 30k steps (10k
softmax), CIFAR 40k steps (20k softmax), with CIFAR's standard flip-and-crop augmentation (as
Liu et al.).
"""

from __future__ import annotations

import ml_collections

from configs import common
from configs import paper_tables

# dataset: (model, batch size, train images, total steps, softmax steps, augment)
DATASETS = {
    # 5.1 "the CNN architecture presented by Liu et al."; batch 50 and 256: Liu et al. (ICML
    # 2016) section 5.1 (assumption: the W-Softmax paper does not restate them); the steps
    # and softmax phases are assumptions (see the module docstring).
    "mnist": ("prelu_mnist", 50, 60000, 30000, 10000, "none"),
    "cifar10": ("prelu_cifar", 256, 50000, 40000, 20000, "cifar"),
    "cifar100": ("prelu_cifar", 256, 50000, 40000, 20000, "cifar"),
}
ACCURACY = paper_tables.Metric("Accuracy (%)", "top1_error", complement=True)


def classification(dataset: str, width: int = 256) -> ml_collections.ConfigDict:
  """Section 5.1's recipe on `dataset` with an FC layer of `width` units, loss W-Softmax(1)."""
  model, batch, images, steps, softmax_steps, augment = DATASETS[dataset]
  c = common.get_config()
  c.dataset.name = dataset
  c.dataset.task = "classification"
  c.dataset.augment = augment        # assumption: CIFAR's flip-and-crop, as Liu et al.
  c.model.name = model
  # Liu et al. Table 1: FC 256 (W-Softmax 5.2 sweeps the width M).
  c.model.kwargs = ml_collections.ConfigDict({"pooling": "none", "embedding_dim": width})
  c.batch_size = batch
  c.num_epochs = 0.0
  c.num_train_steps = steps
  c.steps_per_epoch = images // batch
  c.loss.name = "weights_biased_softmax"
  c.loss.kwargs = ml_collections.ConfigDict({"alpha": 1.0})  # rows set alpha (Tables 1-2)
  # 5.1 "first train the CNNs using the conventional softmax loss" (length: assumption).
  c.loss.softmax_epochs = softmax_steps / (images // batch)
  c.optimizer.name = "sgd"           # 5.1 "Momentum optimizer"
  c.optimizer.lr = 0.01              # 5.1 "initial learning rate as 0.01"
  c.optimizer.momentum = 0.9         # 5.1 "the momentum is set to 0.9"
  c.optimizer.weight_decay = 5e-4    # 5.1 "weight parameter of weights regularization is 0.0005"
  c.schedule.name = "exponential"    # 5.1 "exponential decay rate is 0.9 ... decay step is 6000"
  c.schedule.decay_rate = 0.9
  c.schedule.decay_steps = 6000
  c.schedule.staircase = True        # assumption: TensorFlow's staircase decay
  c.eval.ks = (1,)                   # 5.1: test accuracy
  c.eval.every_steps = 0             # assumption: accuracy after training
  c.checkpoint.every_steps = 2000    # assumption: bookkeeping
  c.log_every_steps = 200            # assumption: bookkeeping
  return c


def dataset_overrides(dataset: str) -> dict:
  """The fields of `classification(dataset)` that differ between datasets, as overrides."""
  c = classification(dataset)
  return {"dataset.name": dataset, "model.name": c.model.name, "batch_size": c.batch_size,
          "dataset.augment": c.dataset.augment, "num_train_steps": c.num_train_steps,
          "steps_per_epoch": c.steps_per_epoch, "loss.softmax_epochs": c.loss.softmax_epochs}


def wsoftmax(alpha: float) -> dict:
  return {"loss.name": "weights_biased_softmax", "loss.kwargs": {"alpha": alpha}}


SOFTMAX = {"loss.name": "softmax", "loss.kwargs": {}, "loss.softmax_epochs": 0.0}
LOSS_ROWS = {
    "softmax": SOFTMAX,
    # L-Softmax (Liu et al.) with margin 4 and its original lambda annealing; trained from the
    # start, as in Liu et al.
    "lsoftmax": {"loss.name": "large_margin_softmax", "loss.kwargs": {"margin": 4},
                 "loss.softmax_epochs": 0.0},
    "wsoftmax_a0.5": wsoftmax(0.5),
    "wsoftmax_a1": wsoftmax(1.0),
    "wsoftmax_a1.5": wsoftmax(1.5),
}
# Tables 1-2 "Hinge Loss": the multi-class hinge loss on the classifier scores x W, from the
# start. assumption: the paper names neither the variant nor the margin; Crammer & Singer's
# (the hinge on the largest wrong score) with margin 1, as dmlax.losses.multiclass_hinge_loss.
HINGE = {"loss.name": "multiclass_hinge",
         "loss.kwargs": {"margin": 1.0, "variant": "crammer_singer"},
         "loss.softmax_epochs": 0.0}
# An ablation, not a row of the paper: W-Softmax whose biased negative weights pass no gradient
# into the classifier (`weights_biased_softmax_loss(..., stop_gradient_biased=True)`); it
# reproduces Fig. 5's trend that the class angles shrink as alpha grows.
ABLATION_ROWS = {f"ablation_stopgrad_a{a:g}": {
    "loss.name": "weights_biased_softmax",
    "loss.kwargs": {"alpha": a, "stop_gradient_biased": True}} for a in (0.5, 1.0, 1.5)}
HARDWARE = "one Quadro P5000 GPU (paper); a CPU trains MNIST in hours, CIFAR needs a GPU"
