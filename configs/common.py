"""Every field the trainer reads, with its default; experiment configs start from `get_config()`.

`experiments/train.py` applies `--config.X=V` overrides with `apply_overrides`: a misspelt field
is an error naming it, its group's fields and the closest match; the open groups
(`OPEN_GROUPS`: a loss's or model's keyword arguments) take new keys, checked later against the
loss's signature or the model's options. Fields that may be unset are typed placeholders (None
by default).

    python -m experiments.train --config configs/quickstart.py:mpa --workdir /tmp/run \
        --config.optimizer.lr=3e-4 --config.num_epochs=5

Field groups: `dataset`, `model`, `loss` (see `dmlax.train.objectives`), `optimizer` and
`schedule` (see `dmlax.train.optimizers`), `checkpoint`, `eval`, and run-level fields.
"""

from __future__ import annotations

import ast
import difflib
import os
from typing import Any, Sequence

import ml_collections
from ml_collections import config_dict

# Groups whose keys are the keyword arguments of the chosen loss / model, so an override may add
# a key (`--config.loss.kwargs.margin=0.2`); `dmlax.train` checks it against the signature.
OPEN_GROUPS = ("loss.kwargs", "loss.aux_kwargs", "model.kwargs")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The base config: small_cnn + softmax on `digits` for one epoch, on the pmap driver."""
  del arg
  c = ml_collections.ConfigDict()
  c.seed = 0
  # "pmap", "shard_map" (jax.shard_map over a 1-D Mesh of all devices) or "single".
  c.parallel = "pmap"
  # Devices as (data, model): the batch splits over data; model > 1 (shard_map only) splits the
  # loss's classifier/proxies and their optimiser state into model blocks of classes (losses that
  # take class_axis_name). -1: all the devices the model axis leaves. (-1, 1): data parallel.
  c.mesh = (-1, 1)
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
  # Which BatchNorm layers `frozen_bn` freezes: "all" (backbone and head) or "backbone" (the
  # backbone's only; the head's BN, e.g. a BN neck, trains normally).
  c.model.frozen_bn_scope = "all"
  c.model.pretrained = config_dict.placeholder(str)  # a weights file for load_pretrained

  c.loss = ml_collections.ConfigDict()
  c.loss.name = "softmax"
  c.loss.kwargs = ml_collections.ConfigDict()
  c.loss.num_proxies = 1
  c.loss.aux_name = ""
  c.loss.aux_weight = 1.0
  c.loss.aux_kwargs = ml_collections.ConfigDict()
  c.loss.softmax_epochs = 0.0
  c.loss.adversarial_dropout = 0.0   # GSL: adversarial DropOut rate p on the features (0: off)
  c.loss.memory_size = 0             # cross-batch memory slots (0: off; losses with references)

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
  c.optimizer.grad_clip_value = 0.0  # clip every gradient component to [-v, v] (0: off)
  c.optimizer.warmup_epochs = 0.0
  c.optimizer.new_layers = ""
  # Learning rate of `new_layers` (same schedule); None: they train at head_lr with the loss.
  c.optimizer.new_layers_lr = config_dict.placeholder(float)

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
  c.schedule.warmup_steps = 0     # linear warm-up from warmup_factor x the rate (0: off)
  c.schedule.warmup_factor = 0.1

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
  # A dataset of the verification protocol ("lfw") evaluated instead of the training dataset's
  # own split: "<name>_accuracy", the 10-fold pair accuracy of cosine scores.
  c.eval.verification_dataset = config_dict.placeholder(str)
  return c


def parse_value(text: str) -> Any:
  """A command-line value: a Python literal (`0.2`, `(1, 5)`, `True`, `None`), else the string."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def _set(config, dotted: str, text: str) -> None:
  *parents, leaf = dotted.split(".")
  node, path = config, "config"
  for p in parents:
    if not isinstance(node, ml_collections.ConfigDict) or p not in node:
      _unknown(node, path, p)
    node, path = node[p], f"{path}.{p}"
  if not isinstance(node, ml_collections.ConfigDict):
    raise ValueError(f"--config.{dotted}: {path} is a value, not a group of fields")
  value = parse_value(text)
  group = ".".join(parents)
  if leaf not in node:
    if group not in OPEN_GROUPS:
      _unknown(node, path, leaf)
    with node.unlocked():
      node[leaf] = value
    return
  old = node[leaf]
  if isinstance(old, str) and not isinstance(value, str):
    value = text  # a string field keeps the text as typed ("1e-3" stays a string)
  if isinstance(old, tuple) and isinstance(value, (int, float)):
    value = (value,)
  if isinstance(old, tuple) and isinstance(value, list):
    value = tuple(value)
  try:
    node[leaf] = value
  except (TypeError, ValueError) as e:
    kind = type(old).__name__ if old is not None else "the field's type"
    raise ValueError(f"--config.{dotted}={text}: expected {kind}, got {value!r} ({e})") from None


def _unknown(node, path: str, key: str):
  fields = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
  close = difflib.get_close_matches(key, fields, n=1)
  hint = f"; did you mean {path}.{close[0]}?" if close else ""
  raise ValueError(f"{path}.{key} is not a config field{hint} The fields of {path} are: "
                   f"{', '.join(fields)}")


def apply_overrides(config: ml_collections.ConfigDict, overrides: Sequence[tuple[str, str]]
                    ) -> ml_collections.ConfigDict:
  """Sets each (dotted field, text value) of `overrides` in `config` (locked or not).

  Raises:
    ValueError: a field the config lacks (outside `OPEN_GROUPS`), naming it, the fields of its
      group and the closest match; or a value of the wrong type.

  Example:
    >>> c = apply_overrides(get_config(), [("optimizer.lr", "0.5"), ("loss.kwargs.margin", "0.2")])
    >>> c.optimizer.lr, c.loss.kwargs.margin
    (0.5, 0.2)
  """
  for dotted, text in overrides:
    _set(config, dotted, text)
  return config


def split_overrides(argv: Sequence[str], flag: str = "config") -> tuple[list[str], list]:
  """(argv without `--config.X=V` / `--config.X V`, [(X, V), ...]) in order."""
  rest, overrides, i = [], [], 0
  prefix = f"--{flag}."
  while i < len(argv):
    arg = argv[i]
    if arg.startswith(prefix):
      body = arg[len(prefix):]
      if "=" in body:
        dotted, text = body.split("=", 1)
      elif i + 1 < len(argv):
        dotted, text = body, argv[i + 1]
        i += 1
      else:
        raise ValueError(f"{arg} needs a value ({arg}=VALUE)")
      overrides.append((dotted, text))
    else:
      rest.append(arg)
    i += 1
  return rest, overrides


def flags_parser(overrides: list):
  """An absl `flags_parser` for entry points with a `--config` file flag: absl parses the rest,
  and the `--config.X=V` overrides are stored in `overrides` (a list the caller keeps) to be
  applied by `apply_overrides` after the config file loads, with clean errors and new keys in
  the loss's and model's kwargs."""
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top

  def parse(argv):
    try:
      rest, found = split_overrides(argv)
    except ValueError as e:
      raise app.UsageError(str(e)) from None
    overrides[:] = found
    sys.argv[:] = rest  # config_flags reads its overrides from sys.argv itself
    try:
      return flags.FLAGS(rest)
    except flags.Error as e:
      print(f"error: {e}\nPass --helpshort for the flags.", file=sys.stderr)
      sys.exit(2)

  return parse


def caller_path(path: str | None) -> str | None:
  """`path` made absolute against the directory the user ran the command from:
  `$DMLAX_CALLER_DIR` (set by `experiments/setup_env.sh` before it enters the repository), else
  the current directory."""
  if path is None or os.path.isabs(path):
    return path
  base = os.environ.get("DMLAX_CALLER_DIR") or os.getcwd()
  return os.path.normpath(os.path.join(base, os.path.expanduser(path)))


def resolve_paths(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The config's file paths (`dataset.data_dir`, `model.pretrained`) through `caller_path`."""
  config.dataset.data_dir = caller_path(config.dataset.data_dir)
  config.model.pretrained = caller_path(config.model.pretrained)
  return config
