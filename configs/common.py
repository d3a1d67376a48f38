"""Every field the trainer reads, with its default; experiment configs start from `get_config()`.

Configs are locked by `experiments/train.py`, so `--config.optimizer.lrr=0.1` (a misspelt field)
is an error naming the field. Fields that may be unset are typed placeholders (None by default).

    python -m experiments.train --config configs/quickstart.py:mpa --workdir /tmp/run \
        --config.optimizer.lr=3e-4 --config.num_epochs=5

Field groups: `dataset`, `model`, `loss` (see `dmlax.train.objectives`), `optimizer` and
`schedule` (see `dmlax.train.optimizers`), `checkpoint`, `eval`, and run-level fields.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The base config: small_cnn + softmax on `digits` for one epoch, on the pmap driver."""
  del arg
  c = ml_collections.ConfigDict()
  c.seed = 0
  # "pmap", "shard_map" (jax.shard_map over a 1-D Mesh of all devices) or "single".
  c.parallel = "pmap"
  c.batch_size = 64          # global batch, over all devices and processes
  c.num_epochs = 1.0         # training length in epochs of the training split ...
  c.num_train_steps = config_dict.placeholder(int)   # ... or in steps, if set
  c.steps_per_epoch = config_dict.placeholder(int)   # default: train split size // batch_size
  c.log_every_steps = 20
  c.half_precision = False   # bfloat16 compute, float32 parameters
  # Multi-host: call jax.distributed.initialize() (coordinator from the environment / flags).
  c.distributed = False

  c.dataset = ml_collections.ConfigDict()
  c.dataset.name = "digits"
  c.dataset.data_dir = config_dict.placeholder(str)
  c.dataset.task = config_dict.placeholder(str)
  c.dataset.image_size = config_dict.placeholder(int)
  c.dataset.augment = "none"
  c.dataset.sampler = "random"
  c.dataset.m_per_class = 4
  c.dataset.prepare = True   # build/prepare the tfds dataset if it is not there yet

  c.model = ml_collections.ConfigDict()
  c.model.name = "small_cnn"
  # Keyword arguments of dmlax.models.get_model (head options, rbr, ...).
  c.model.kwargs = ml_collections.ConfigDict({"embedding_dim": 64})
  c.model.frozen_bn = False
  c.model.pretrained = config_dict.placeholder(str)  # a weights file for load_pretrained

  c.loss = ml_collections.ConfigDict()
  c.loss.name = "softmax"
  c.loss.kwargs = ml_collections.ConfigDict()
  c.loss.num_proxies = 1
  c.loss.aux_name = ""
  c.loss.aux_weight = 1.0
  c.loss.aux_kwargs = ml_collections.ConfigDict()
  c.loss.softmax_epochs = 0.0

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "sgd"
  c.optimizer.lr = 0.1
  c.optimizer.head_lr = config_dict.placeholder(float)
  c.optimizer.momentum = 0.9
  c.optimizer.nesterov = False
  c.optimizer.weight_decay = 1e-4
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.999
  c.optimizer.eps = 1e-8
  c.optimizer.grad_clip_norm = 0.0
  c.optimizer.warmup_epochs = 0.0
  c.optimizer.new_layers = ""

  c.schedule = ml_collections.ConfigDict()
  c.schedule.name = "constant"
  c.schedule.boundaries = ()
  c.schedule.factor = 0.1
  c.schedule.decay_rate = 0.5
  c.schedule.decay_epochs = 20.0
  c.schedule.decay_steps = 0
  c.schedule.staircase = True
  c.schedule.final_fraction = 0.0
  c.schedule.ramp_epochs = 0.0

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every_steps = 200
  c.checkpoint.keep = 2
  c.checkpoint.best_metric = config_dict.placeholder(str)  # default: the protocol's headline
  c.checkpoint.best_mode = "max"
  c.checkpoint.async_save = False

  c.eval = ml_collections.ConfigDict()
  c.eval.every_steps = 0     # 0: only at the end
  c.eval.batch_size = 256
  c.eval.ks = (1, 2, 4, 8)
  return c
