"""Training objectives by config: `config.loss` -> a loss of `dmlax.losses` and the parameters
it owns (classifier weights (D, C), proxies (C, K, D) or (C, D), centres (C, D)).

Every row of the papers' comparison tables is a config change:

  config.loss.name = "mpa"                    # any name in `LOSSES`
  config.loss.kwargs = {"alpha": 32.0, ...}   # keyword hyperparameters of that loss
  config.loss.num_proxies = 10                # K, for multi-proxy losses
  config.loss.aux_name = "center"             # optional second loss, added with
  config.loss.aux_weight = 0.01               #   this weight and
  config.loss.aux_kwargs = {}                 #   these hyperparameters
  config.loss.softmax_epochs = 0.0            # W-Softmax recipe: plain softmax CE first

The objective is called per device inside the data-parallel step. Losses that couple the batch
get the step's `axis_name` (group softmax scores, ProxyAnchor/MPA class sums); pair losses,
which take no axis name, see the global batch through an `all_gather`. In both cases every
device computes the global loss, and the step's `pmean` of gradients gives the single-device
gradient (the transpose of `psum`/`all_gather` sums the devices' cotangents).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections

from dmlax import losses as dmlax_losses
from dmlax.losses import normalization


@dataclasses.dataclass(frozen=True)
class LossSpec:
  """How the trainer calls one loss of `dmlax.losses`.

  Attributes:
    fn: name of the function in `dmlax.losses`.
    param: the parameter the loss owns: "classifier" (D, C), "proxies" (C, K, D),
      "single_proxies" (C, D), "centers" (C, D), or None.
    init: name of the initialiser in `dmlax.losses.initializers` for proxies (None: the
      container's default).
    on_logits: the loss takes logits `features @ W` instead of features and weights.
    coupling: "axis_name" (the loss takes `axis_name`), "gather" (needs the global batch but
      takes no axis name) or None (a per-example mean).
    normalized_classifier: test-time logits use L2-normalised classifier columns.
    rng_kw: keyword under which the loss takes a PRNG key (always, or for group softmax only
      with `grouping="random"`).
    anneal_lambda: the loss takes `lam`, annealed with the step by `dmlax.losses.annealed_lambda`
      (the L-Softmax layer's schedule) unless the config sets `lam`.
  """
  fn: str
  param: str | None = "classifier"
  init: str | None = None
  on_logits: bool = False
  coupling: str | None = None
  normalized_classifier: bool = False
  rng_kw: str | None = None
  anneal_lambda: bool = False


LOSSES: dict[str, LossSpec] = {
    "softmax": LossSpec("softmax_cross_entropy", on_logits=True),
    "normalized_softmax": LossSpec("normalized_softmax_loss", normalized_classifier=True),
    "group_softmax": LossSpec("group_softmax_loss", coupling="axis_name", rng_kw="rng"),
    "weights_biased_softmax": LossSpec("weights_biased_softmax_loss",
                                       normalized_classifier=True),
    "stop_gradient_softmax": LossSpec("stop_gradient_softmax_loss", normalized_classifier=True),
    # Returns (total, aux); the gate "SGSL joins once softmax < 3" is on the global batch.
    "softmax_sgsl": LossSpec("softmax_sgsl_loss", coupling="axis_name"),
    "large_margin_softmax": LossSpec("large_margin_softmax_loss", anneal_lambda=True),
    "sphereface": LossSpec("sphereface_loss", normalized_classifier=True, anneal_lambda=True),
    "cosface": LossSpec("cosface_loss", normalized_classifier=True),
    "arcface": LossSpec("arcface_loss", normalized_classifier=True),
    "sigsoftmax": LossSpec("sigsoftmax_loss"),
    "noisy_softmax": LossSpec("noisy_softmax_loss", rng_kw="key"),
    "virtual_softmax": LossSpec("virtual_softmax_loss"),
    "proxy_anchor": LossSpec("proxy_anchor_loss", param="single_proxies",
                             init="proxy_anchor_init", coupling="axis_name"),
    "proxy_nca": LossSpec("proxy_nca_loss", param="single_proxies", init="proxy_anchor_init"),
    "mpa": LossSpec("mpa_loss", param="proxies", init="proxy_anchor_init", coupling="axis_name"),
    "mpa_dw": LossSpec("mpa_dw_loss", param="proxies", init="proxy_anchor_init",
                       coupling="axis_name"),
    "mpa_ap": LossSpec("mpa_ap_loss", param="proxies", init="proxy_anchor_init",
                       coupling="axis_name"),
    "soft_triple": LossSpec("soft_triple_loss", param="proxies", init="soft_triple_init"),
    "triplet": LossSpec("triplet_margin_loss", param=None, coupling="gather"),
    "contrastive": LossSpec("contrastive_loss", param=None, coupling="gather"),
    "multi_similarity": LossSpec("multi_similarity_loss", param=None, coupling="gather"),
    "center": LossSpec("center_loss", param="centers"),
    "ring": LossSpec("ring_loss", param="radius"),
}


@dataclasses.dataclass(frozen=True)
class Objective:
  """A built objective.

  Attributes:
    init: `(rng, features) -> params` (a dict, possibly empty) given a (B, D) feature batch.
    apply: `(features, labels, params, *, step, rng, axis_name) -> (loss, aux)`, `aux` a dict
      of scalars to log. Per device; with `axis_name`, a global-batch loss (see module doc).
    logits: `(features, params) -> (N, C)` class scores for top-1 error, or None when the loss
      owns no class parameters.
    num_classes: C.
  """
  init: Callable[[jax.Array, jax.Array], dict]
  apply: Callable[..., tuple[jax.Array, dict]]
  logits: Callable[[jax.Array, dict], jax.Array] | None
  num_classes: int


def _lookup(name: str, field: str) -> LossSpec:
  if name not in LOSSES:
    raise ValueError(f"{field} must be one of {tuple(sorted(LOSSES))}, got {name!r}")
  spec = LOSSES[name]
  if not hasattr(dmlax_losses, spec.fn):
    raise ValueError(f"{field}={name!r} needs dmlax.losses.{spec.fn}, which this installation "
                     "of dmlax does not provide")
  return spec


def _init_param(spec: LossSpec, rng, features, num_classes: int, num_proxies: int):
  # The containers of dmlax.models hold the reference initialisers; the trainer keeps the raw
  # array so that the optimiser's groups and the checkpoints see one leaf per loss parameter.
  from dmlax import models
  if spec.param == "classifier":
    module = models.ClassifierWeights(num_classes)
  elif spec.param in ("proxies", "single_proxies"):
    kwargs = {}
    if spec.init is not None:
      from dmlax.losses import initializers
      kwargs["init"] = getattr(initializers, spec.init)
    k = num_proxies if spec.param == "proxies" else 1
    module = models.Proxies(num_classes, k, **kwargs)
  elif spec.param == "radius":  # ring loss's learnable R, started at 1
    return jnp.ones((), jnp.float32)
  else:  # centres start at the origin, as the center-loss reference code does
    return jnp.zeros((num_classes, features.shape[-1]), jnp.float32)
  # `init_with_output`, not `init`: the containers' `init` field (the initialiser) shadows
  # `nn.Module.init`.
  value, _ = module.init_with_output(rng, features)
  return value[:, 0, :] if spec.param == "single_proxies" else value


def _check_kwargs(fn, kwargs: dict, field: str) -> None:
  """Hyperparameters the loss does not take: an error before anything is traced."""
  accepted = [p.name for p in inspect.signature(fn).parameters.values()
              if p.kind == inspect.Parameter.KEYWORD_ONLY]
  unknown = sorted(set(kwargs) - set(accepted))
  if unknown:
    raise ValueError(f"{field} has {unknown}, which dmlax.losses.{fn.__name__} does not take; "
                     f"it takes {accepted}")


def _term(spec: LossSpec, kwargs: dict, field: str):
  """`(features, labels, param, rng, axis_name, step) -> (loss, aux)` for one loss."""
  fn = getattr(dmlax_losses, spec.fn)
  kwargs = dict(kwargs)
  _check_kwargs(fn, kwargs, field)
  uses_rng = spec.rng_kw == "key" or (spec.rng_kw == "rng" and
                                      kwargs.get("grouping") == "random")

  def call(features, labels, param, rng, axis_name, step):
    kw = dict(kwargs)
    if uses_rng:
      kw[spec.rng_kw] = rng
    if spec.anneal_lambda and "lam" not in kw:
      kw["lam"] = dmlax_losses.annealed_lambda(step)
    if spec.coupling == "axis_name":
      kw["axis_name"] = axis_name
    elif spec.coupling == "gather" and axis_name is not None:
      features = jax.lax.all_gather(features, axis_name, tiled=True)
      labels = jax.lax.all_gather(labels, axis_name, tiled=True)
    args = (features, labels) if spec.param is None else (
        (features @ param, labels) if spec.on_logits else (features, labels, param))
    if spec.param == "radius":  # ring_loss(features, radius) takes no labels
      args = (features, param)
    try:
      out = fn(*args, **kw)
    except TypeError as e:
      raise ValueError(f"{field} do not fit dmlax.losses.{spec.fn}: {e}") from e
    if isinstance(out, tuple):
      return out
    return out, {}

  return call


def build_objective(config: ml_collections.ConfigDict, *, num_classes: int,
                    steps_per_epoch: int) -> Objective:
  """The objective of `config.loss` for a `num_classes`-way training split.

  Raises:
    ValueError: an unknown `config.loss.name` or `config.loss.aux_name` (listing the known
      names), a loss this installation lacks, or hyperparameters the loss does not take.

  Example:
    >>> objective = build_objective(config, num_classes=100, steps_per_epoch=50)
    >>> params = objective.init(jax.random.key(0), features)
    >>> loss, aux = objective.apply(features, labels, params, step=0, rng=key, axis_name=None)
  """
  cfg = config.loss
  main = _lookup(cfg.name, "config.loss.name")
  main_kwargs = cfg.kwargs.to_dict()
  main_call = _term(main, main_kwargs, "config.loss.kwargs")
  aux_spec = aux_call = None
  if cfg.aux_name:
    aux_spec = _lookup(cfg.aux_name, "config.loss.aux_name")
    aux_call = _term(aux_spec, cfg.aux_kwargs.to_dict(), "config.loss.aux_kwargs")
  if main.param in ("proxies",) and cfg.num_proxies < 1:
    raise ValueError(f"config.loss.num_proxies must be >= 1, got {cfg.num_proxies}")
  softmax_steps = int(round(cfg.softmax_epochs * steps_per_epoch))
  if softmax_steps > 0 and main.param != "classifier":
    raise ValueError("config.loss.softmax_epochs (softmax first, then the configured loss) needs "
                     f"a classifier loss; config.loss.name={cfg.name!r} owns {main.param}")
  softmax_call = _term(LOSSES["softmax"], {}, "config.loss.kwargs")

  def init(rng, features):
    k_main, k_aux = jax.random.split(rng)
    params = {}
    if main.param is not None:
      params[main.param] = _init_param(main, k_main, features, num_classes, cfg.num_proxies)
    if aux_spec is not None and aux_spec.param is not None:
      params["aux_" + aux_spec.param] = _init_param(aux_spec, k_aux, features, num_classes,
                                                    cfg.num_proxies)
    return params

  def apply(features, labels, params, *, step, rng, axis_name=None):
    param = params.get(main.param) if main.param else None
    if softmax_steps > 0:
      # W-Softmax recipe (docs/spec.md section 2): softmax CE first, the configured loss afterwards.
      # Both branches return the same aux keys so that lax.cond can join them.
      def first(_):
        loss, _ = softmax_call(features, labels, param, rng, axis_name, step)
        return loss, {"softmax_phase": jnp.ones((), loss.dtype)}

      def second(_):
        loss, _ = main_call(features, labels, param, rng, axis_name, step)
        return loss, {"softmax_phase": jnp.zeros((), loss.dtype)}

      loss, aux = jax.lax.cond(step < softmax_steps, first, second, None)
    else:
      loss, aux = main_call(features, labels, param, rng, axis_name, step)
    aux = {f"{cfg.name}/{k}": jnp.asarray(v, jnp.float32) for k, v in aux.items()}
    if aux_call is not None:
      aux_param = params.get("aux_" + aux_spec.param) if aux_spec.param else None
      extra, extra_aux = aux_call(features, labels, aux_param, jax.random.fold_in(rng, 1),
                                  axis_name, step)
      aux[f"{cfg.name}/main"] = loss
      aux[f"{cfg.aux_name}/loss"] = extra
      aux.update({f"{cfg.aux_name}/{k}": jnp.asarray(v, jnp.float32)
                  for k, v in extra_aux.items()})
      loss = loss + cfg.aux_weight * extra
    return loss, aux

  logits = None
  if main.param == "classifier":
    def logits(features, params):
      w = params["classifier"]
      if main.normalized_classifier:
        w = normalization.l2_normalize(w, axis=0)
      return features @ w
  elif main.param in ("proxies", "single_proxies"):
    def logits(features, params):
      p = params[main.param]
      if p.ndim == 2:
        p = p[:, None, :]
      return dmlax_losses.multi_proxy_similarity(features, p,
                                                 gamma=main_kwargs.get("gamma", 0.1))
  return Objective(init=init, apply=apply, logits=logits, num_classes=num_classes)


def is_batch_coupled(name: str) -> bool:
  """Whether the loss `name` needs the global batch (it gets `axis_name` or an all_gather)."""
  return LOSSES[name].coupling is not None


def known_losses() -> tuple[str, ...]:
  return tuple(sorted(LOSSES))

