"""Face recognition with the classifier split over the devices: a million identities on 8 GPUs.

The W-Softmax paper's face recipe (`configs/wsoftmax/table3.py`: Liu et al.'s 17-convolution
net, 512-d features, batch 128, SGD 0.1 / 10 every 10k steps, 30k steps, softmax first and then
W-Softmax (alpha = 1), LFW verification) whose (512, C) classifier and its momentum are split
into `model` contiguous
blocks of C / model identities, one per device (`config.mesh = (data, model)`,
`parallel = "shard_map"`, `dmlax.train.class_parallel`). The backbone is data parallel over the
`data` axis and replicated over `model`; every device computes the logits of the global batch
against its own classes only, and the loss (`class_axis_name="model"`) combines the blocks into
the exact full-class value. With C = 10^6 and D = 512 the float32 classifier and its momentum
are 3.81 GiB, of which each GPU holds 0.477 GiB on mesh (1, 8) (measured by the command in the
README section "Training with a million classes on 8 GPUs"). On mesh (1, 8) every GPU runs the
backbone on the whole batch; (2, 4) or (4, 2) trade class memory for data parallelism.

    python -m experiments.train --config configs/scale/million_classes.py:dataset=NAME \
        --workdir /runs/million

NAME: a face dataset registered in `dmlax/data/registry.py` whose training classes divide by
`model` (dmlax ships none with a million identities; CASIA-WebFace's 10,575 divide by no
power of two). Arguments: `dataset=<name>`, `task=<task>` (default: the dataset's), `loss=<name>`
(default weights_biased_softmax, the recipe's; another loss of `dmlax.train.LOSSES` that takes
`class_axis_name` runs with its default hyperparameters and no softmax phase),
`data=<n>,model=<m>` (the mesh, default (1, 8): all 8 GPUs split the classes), `smoke`.

`smoke` runs the same code path on 8 fake CPU devices: small_cnn on the embedded `digits`
(classification task, 10 classes) over a (4, 2) mesh, 4 steps (softmax at step 0, W-Softmax
after) with top-1 error from the class blocks:

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m experiments.train \
        --config configs/scale/million_classes.py:smoke --workdir /tmp/million_smoke
"""

import ml_collections

from configs import paper_tables
from configs.wsoftmax import table3


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """`arg` = "dataset=<name>[,task=<task>][,loss=<name>][,data=<n>,model=<m>]" or "smoke"."""
  a = paper_tables.parse_arg(arg, dataset="", task="", loss="weights_biased_softmax", data=1,
                             model=8, smoke=False)
  c = table3.face_recipe("liu_lfw17")
  if a.loss != c.loss.name:
    c.loss.name = a.loss
    c.loss.kwargs = ml_collections.ConfigDict()
    c.loss.softmax_epochs = 0.0
  c.parallel = "shard_map"
  c.mesh = (a.data, a.model)
  if a.smoke:
    paper_tables.smoke(c)
    c.dataset.task = "classification"   # 10 classes: 2 blocks of 5
    c.parallel = "shard_map"
    c.mesh = (4, 2)
    c.num_train_steps = 4
    return c
  if not a.dataset:
    raise ValueError("configs/scale/million_classes.py needs dataset=<name>: a dataset of "
                     "dmlax.data whose training classes divide by the model axis (or: smoke)")
  c.dataset.name = a.dataset
  c.dataset.task = a.task or None
  c.eval.verification_dataset = "lfw"
  return c
