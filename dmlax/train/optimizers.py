"""Optimisers and learning-rate schedules of the papers, built from `config.optimizer` and
`config.schedule`, as optax gradient transformations.

Parameters fall into up to four groups (`param_labels`):
  * "head": the loss's parameters (classifier weights, proxies, centres), and the model's "new
    layers" (`config.optimizer.new_layers`, e.g. a fresh embedding on a pretrained backbone)
    unless they have their own rate, with learning rate `config.optimizer.head_lr` (default:
    `lr`);
  * "new": the new layers, when `config.optimizer.new_layers_lr` is set, at that rate
    (ProxyAnchor's reference code trains its embedding at `lr * 1` and its proxies at
    `lr * 100`);
  * "backbone": every other model parameter, with `config.optimizer.lr`; its rate is zero for the
    first `config.optimizer.warmup_epochs`, so warm-up trains only the new layers (ProxyAnchor's
    reference code, `--warm`);
  * "frozen": BatchNorm scale and bias when `config.model.frozen_bn` (with running statistics in
    the forward pass, as ProxyAnchor/MPA's `set_bn_eval`), never updated; with
    `config.model.frozen_bn_scope = "backbone"` only the backbone's BatchNorm (fastreid's
    FrozenBN backbone under a training BN neck, SGSL's recipe).
Every rate follows the same schedule shape, so MPA's "1e-4 backbone, 1e-2 proxies, halved every
20 epochs" is `adamw`, `lr=1e-4`, `head_lr=1e-2`, schedule `exponential` with `decay_rate=0.5`,
`decay_epochs=20`.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import traverse_util

from dmlax.train.run_config import FIELD_DEFAULTS

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine", "exponential")
FROZEN_BN_SCOPES = ("all", "backbone")


def schedule_fn(
    schedule: ml_collections.ConfigDict,
    *,
    base_lr: float,
    steps_per_epoch: int,
    total_steps: int,
) -> optax.Schedule:
  """The learning rate at each step for one parameter group.

  * constant: `base_lr`.
  * step (GSL, supplementary B.1): `base_lr * factor^(number of boundaries passed)`, boundaries
    given in epochs.
  * cosine (SGSL): `base_lr * (f + (1 - f) (1 + cos(pi t / T)) / 2)`, `f = final_fraction`.
  * exponential (W-Softmax: 0.9 every 6000 steps; MPA: 0.5 every 20 epochs):
    `base_lr * decay_rate^(t / period)`, staircase by default; the period is `decay_steps` when
    positive, else `decay_epochs` epochs.
  An optional linear ramp from 0 over `ramp_epochs` multiplies any of them.

  Warm-up (`warmup_steps > 0`; fastreid's `WarmupLR`, linear method): the rate rises linearly
  from `warmup_factor * base_lr` at step 0 towards `base_lr` at step `warmup_steps`,
  `base_lr * (w + (1 - w) t / warmup_steps)`. For "cosine" the decay then runs over the
  remaining `total_steps - warmup_steps` steps (fastreid's `CosineAnnealingLR` starts after the
  warm-up); the other schedules keep their own step count and are multiplied by the warm-up
  factor (fastreid's `WarmupMultiStepLR`).

  Example:
    >>> fn = schedule_fn(ml_collections.ConfigDict(dict(name="step", boundaries=(30, 60),
    ...     factor=0.1, ramp_epochs=0.0)), base_lr=0.1, steps_per_epoch=10, total_steps=900)
    >>> float(fn(650))  # after both boundaries
    0.001
  """
  name = schedule.name
  if name not in SCHEDULES:
    raise ValueError(f"config.schedule.name must be one of {SCHEDULES}, got {name!r}")
  warm = int(schedule.get("warmup_steps", FIELD_DEFAULTS["schedule.warmup_steps"]) or 0)
  factor = float(schedule.get("warmup_factor", FIELD_DEFAULTS["schedule.warmup_factor"]))
  if warm < 0 or not 0.0 <= factor <= 1.0:
    raise ValueError("config.schedule.warmup_steps must be >= 0 and warmup_factor in [0, 1], "
                     f"got {warm} and {factor}")
  if warm >= total_steps > 0:
    raise ValueError(f"config.schedule.warmup_steps={warm} must be fewer than the run's "
                     f"{total_steps} steps")
  if name == "constant":
    fn = optax.constant_schedule(base_lr)
  elif name == "step":
    boundaries = [int(round(e * steps_per_epoch)) for e in schedule.boundaries]
    if sorted(boundaries) != boundaries or any(b <= 0 for b in boundaries):
      raise ValueError("config.schedule.boundaries must be increasing positive epochs, got "
                       f"{tuple(schedule.boundaries)}")
    fn = optax.piecewise_constant_schedule(
        base_lr, {b: schedule.factor for b in boundaries})
  elif name == "cosine":
    fn = optax.cosine_decay_schedule(base_lr, max(total_steps - warm, 1),
                                     alpha=schedule.final_fraction)
  else:
    period = schedule.decay_steps or int(round(schedule.decay_epochs * steps_per_epoch))
    if period <= 0:
      raise ValueError("config.schedule.decay_steps or decay_epochs must give a positive "
                       f"period, got {schedule.decay_steps} steps / {schedule.decay_epochs} epochs")
    fn = optax.exponential_decay(base_lr, period, schedule.decay_rate,
                                 staircase=schedule.staircase)
  if warm > 0 and name == "cosine":
    fn = optax.join_schedules([optax.linear_schedule(factor * base_lr, base_lr, warm), fn],
                              [warm])
  elif warm > 0:
    main = fn
    ramp_up = optax.linear_schedule(factor, 1.0, warm)
    fn = lambda step: main(step) * ramp_up(step)
  ramp = int(round(schedule.ramp_epochs * steps_per_epoch))
  if ramp > 0:
    base = fn
    fn = lambda step: base(step) * jnp.minimum(1.0, (step + 1) / ramp)
  return fn


def param_labels(params: dict, *, batch_stats, new_layers: tuple[str, ...] = (),
                 frozen_bn: bool = False, frozen_bn_scope: str = "all",
                 new_layers_group: str = "head") -> dict:
  """"head", "new", "backbone" or "frozen" for every leaf of `{"model": ..., "loss": ...}` params.

  BatchNorm layers are recognised as the modules that own batch statistics, whatever their names;
  with `frozen_bn_scope="backbone"` only those under the model's "backbone" are frozen. The new
  layers get `new_layers_group` ("head", or "new" for a rate of their own).
  """
  if frozen_bn_scope not in FROZEN_BN_SCOPES:
    raise ValueError(f"config.model.frozen_bn_scope must be one of {FROZEN_BN_SCOPES}, got "
                     f"{frozen_bn_scope!r}")
  flat = traverse_util.flatten_dict(params)
  bn_modules = {path[:-1] for path in traverse_util.flatten_dict(batch_stats or {})}
  if frozen_bn_scope == "backbone":
    bn_modules = {m for m in bn_modules if m[:1] == ("backbone",)}
  known = {path[1] for path in flat if path[0] == "model" and len(path) > 1}
  for layer in new_layers:
    if layer not in known:
      raise ValueError(f"config.optimizer.new_layers names {layer!r}, which is not a top-level "
                       f"module of the model; the model has {sorted(known)}")

  def label(path):
    if path[0] != "model":
      return "head"
    if frozen_bn and path[1:-1] in bn_modules:
      return "frozen"
    return new_layers_group if path[1] in new_layers else "backbone"

  # Mapped over `params` itself, not rebuilt from `flat`: flattening drops empty subtrees (the
  # {} of a loss that owns no parameters), and multi_transform needs the very same structure.
  return jax.tree_util.tree_map_with_path(lambda path, _: label(tuple(k.key for k in path)),
                                          params)


def _base_optimizer(opt: ml_collections.ConfigDict, lr: Callable) -> optax.GradientTransformation:
  if opt.name == "sgd":
    # PyTorch SGD: decay enters the gradient before momentum (the papers' training recipes).
    return optax.chain(optax.add_decayed_weights(opt.weight_decay),
                       optax.sgd(lr, momentum=opt.momentum or None, nesterov=opt.nesterov))
  if opt.name == "adam":
    return optax.chain(optax.add_decayed_weights(opt.weight_decay),
                       optax.adam(lr, b1=opt.b1, b2=opt.b2, eps=opt.eps))
  return optax.adamw(lr, b1=opt.b1, b2=opt.b2, eps=opt.eps, weight_decay=opt.weight_decay)


def build_optimizer(
    config: ml_collections.ConfigDict,
    *,
    params: dict,
    batch_stats,
    steps_per_epoch: int,
    total_steps: int,
) -> tuple[optax.GradientTransformation, dict[str, optax.Schedule]]:
  """The optimiser of `config.optimizer`/`config.schedule` and the schedule of each group.

  Gradients are clipped before the update, over all parameters together (model and loss):
  element-wise to `[-v, v]` when `config.optimizer.grad_clip_value = v > 0` (PyTorch's
  `clip_grad_value_`, ProxyAnchor's reference code), then by global norm when
  `config.optimizer.grad_clip_norm > 0`.

  Example:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from configs import common
    >>> config = common.get_config()               # SGD with momentum, constant rate
    >>> config.optimizer.lr, config.optimizer.head_lr = 0.1, 0.01
    >>> config.optimizer.warmup_epochs = 1.0       # the backbone waits one epoch
    >>> params = {"model": {"backbone": {"kernel": jnp.ones((3, 4))}},
    ...           "loss": {"proxies": jnp.ones((10, 4))}}
    >>> tx, schedules = build_optimizer(config, params=params, batch_stats={},
    ...                                 steps_per_epoch=100, total_steps=6000)
    >>> sorted(schedules)
    ['backbone', 'head']
    >>> [bool(jnp.isclose(schedules[g](s), lr)) for g, s, lr in
    ...  [("head", 0, 0.01), ("backbone", 0, 0.0), ("backbone", 100, 0.1)]]
    [True, True, True]
    >>> grads = jax.tree.map(jnp.ones_like, params)
    >>> updates, _ = tx.update(grads, tx.init(params), params)
    >>> bool((updates["model"]["backbone"]["kernel"] == 0).all())   # step 0: warm-up
    True
    >>> bool((updates["loss"]["proxies"] < 0).all())                # the head moves
    True
  """
  opt = config.optimizer
  if opt.name not in OPTIMIZERS:
    raise ValueError(f"config.optimizer.name must be one of {OPTIMIZERS}, got {opt.name!r}")
  clip_value = float(opt.get("grad_clip_value", FIELD_DEFAULTS["optimizer.grad_clip_value"])
                     or 0.0)
  if clip_value < 0:
    raise ValueError(f"config.optimizer.grad_clip_value must be >= 0 (0: off), got {clip_value}")
  new_layers = tuple(n.strip() for n in opt.new_layers.split(",") if n.strip())
  new_lr = opt.get("new_layers_lr", FIELD_DEFAULTS["optimizer.new_layers_lr"])
  if new_lr is not None and new_lr <= 0:
    raise ValueError(f"config.optimizer.new_layers_lr must be positive (or None), got {new_lr}")
  labels = param_labels(params, batch_stats=batch_stats, new_layers=new_layers,
                        frozen_bn=config.model.frozen_bn,
                        frozen_bn_scope=config.model.get(
                            "frozen_bn_scope", FIELD_DEFAULTS["model.frozen_bn_scope"]),
                        new_layers_group="new" if new_lr is not None else "head")

  def schedule(base_lr):
    return schedule_fn(config.schedule, base_lr=base_lr, steps_per_epoch=steps_per_epoch,
                       total_steps=total_steps)

  head_lr = opt.lr if opt.head_lr is None else opt.head_lr
  schedules = {"head": schedule(head_lr)}
  backbone_base = schedule(opt.lr)
  warm = int(round(opt.warmup_epochs * steps_per_epoch))
  schedules["backbone"] = (backbone_base if warm <= 0 else
                           lambda step: jnp.where(step < warm, 0.0, backbone_base(step)))
  used = set(jax.tree.leaves(labels))
  if "new" in used:
    schedules["new"] = schedule(new_lr)
  transforms = {k: _base_optimizer(opt, fn) for k, fn in schedules.items()}
  transforms["frozen"] = optax.set_to_zero()
  tx = optax.multi_transform({k: v for k, v in transforms.items() if k in used}, labels)
  if opt.grad_clip_norm > 0:
    tx = optax.chain(optax.clip_by_global_norm(opt.grad_clip_norm), tx)
  if clip_value > 0:
    tx = optax.chain(optax.clip(clip_value), tx)
  return tx, schedules
