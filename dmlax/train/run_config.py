"""The config a run was started with, saved in `workdir/config.json`, and what may change on resume.

Resuming with a different config is a `ConfigChangedError` listing every differing field, unless
every change is in `ALLOWED_CHANGES` (evaluation, logging and checkpoint cadence, the data
location, the run's length) or the caller allows changes explicitly
(`train_and_evaluate(..., allow_config_change=True)`, `--allow_config_change`). Accepted changes
are returned as records `{"step", "field", "from", "to"}`, which the loop keeps in the
checkpoint's metadata and `results.json`, and the saved config becomes the new one.

A config saved before a field existed lacks it; the field then counts as holding its default
(`FIELD_DEFAULTS`: the behaviour before the field existed), so that a workdir of an older
version resumes unless the new value differs from that default.
"""

from __future__ import annotations

import json
import os
from typing import Any

import ml_collections

CONFIG_FILE = "config.json"
# Fields (or groups, ending in ".") that do not change what a step computes, or only how long
# the run is.
ALLOWED_CHANGES = ("eval.", "log_every_steps", "checkpoint.every_steps", "checkpoint.keep",
                   "checkpoint.async_save", "distributed", "dataset.data_dir",
                   "dataset.prepare", "num_epochs", "num_train_steps")


# The fields a config may lack (a workdir saved before they existed), each with its default: the
# behaviour before the field existed and the value `configs/common.py` sets (a test checks that
# they agree). The trainer's fallbacks for a config without one read it from here.
FIELD_DEFAULTS = {
    "mesh": [-1, 1],  # (data, model) as config.json holds it: data parallel only
    "model.frozen_bn_scope": "all",
    "loss.adversarial_dropout": 0.0,
    "loss.memory_size": 0,
    "optimizer.grad_clip_value": 0.0,
    "optimizer.new_layers_lr": None,
    "schedule.warmup_steps": 0,
    "schedule.warmup_factor": 0.1,
    "eval.verification_dataset": None,
}


class ConfigChangedError(ValueError):
  """A resumed run's config differs from the saved one in fields that change the training."""


def _jsonable(x):
  if isinstance(x, dict):
    return {str(k): _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if hasattr(x, "item") and callable(x.item):  # NumPy scalars
    return x.item()
  return x


def flatten(config: ml_collections.ConfigDict | dict) -> dict[str, Any]:
  """{"optimizer.lr": 0.1, ...}: every leaf field by its dotted name, JSON values."""
  d = config.to_dict() if hasattr(config, "to_dict") else config
  out = {}

  def walk(prefix, node):
    for k, v in node.items():
      if isinstance(v, dict) and v:
        walk(f"{prefix}{k}.", v)
      else:
        out[prefix + str(k)] = _jsonable(v)

  walk("", d)
  return out


def save(workdir: str, config) -> None:
  import jax  # pylint: disable=g-import-not-at-top
  if jax.process_index() != 0:
    return
  path = os.path.join(workdir, CONFIG_FILE)
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(_jsonable(config.to_dict()), f, indent=2, sort_keys=True)
  os.replace(tmp, path)


def load(workdir: str) -> dict | None:
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def differences(saved: dict, config) -> list[tuple[str, Any, Any]]:
  """(field, saved value, new value) for every field that differs.

  An absent field holds its `FIELD_DEFAULTS` value if it has one, else it is "<unset>".
  """
  old, new = flatten(saved), flatten(config)

  def value(fields, k):
    return fields.get(k, FIELD_DEFAULTS.get(k, "<unset>"))

  return [(k, value(old, k), value(new, k)) for k in sorted(set(old) | set(new))
          if value(old, k) != value(new, k)]


def _allowed(field: str) -> bool:
  return any(field == a or (a.endswith(".") and field.startswith(a)) for a in ALLOWED_CHANGES)


def reconcile(workdir: str, config, *, step: int, allow_change: bool) -> list[dict]:
  """Compares `config` with the one saved in `workdir` (saving it when there is none).

  Returns:
    The accepted changes as records {"step", "field", "from", "to"} (empty when identical).

  Raises:
    ConfigChangedError: fields outside `ALLOWED_CHANGES` differ and `allow_change` is False.
  """
  saved = load(workdir)
  if saved is None:
    save(workdir, config)
    return []
  diffs = differences(saved, config)
  refused = [d for d in diffs if not _allowed(d[0])]
  if refused and not allow_change:
    lines = "\n".join(f"  config.{k}: {old!r} in the saved run, {new!r} now"
                      for k, old, new in refused)
    raise ConfigChangedError(
        f"{workdir} holds a run (at step {step}) trained with another config; resuming it would "
        f"mix the two. {len(refused)} field(s) differ:\n{lines}\nUse the saved values, start a "
        "new workdir, or pass --allow_config_change (train_and_evaluate(..., "
        "allow_config_change=True)) to continue with the new values from this step on (recorded "
        f"in results.json). Fields that may change freely: {', '.join(ALLOWED_CHANGES)}")
  if diffs:
    save(workdir, config)
  return [{"step": int(step), "field": k, "from": old, "to": new} for k, old, new in diffs]
