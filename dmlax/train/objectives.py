"""Training objectives by config: `config.loss` -> a loss of `dmlax.losses` and the parameters
it owns (classifier weights (D, C), proxies (C, K, D) or (C, D), centres (C, D), ...).

Every row of the papers' comparison tables is a config change:

  config.loss.name = "mpa"                    # any name in `LOSSES`
  config.loss.kwargs = {"alpha": 32.0, ...}   # keyword hyperparameters of that loss
  config.loss.num_proxies = 10                # K, for multi-proxy losses
  config.loss.aux_name = "center"             # optional second loss, added with
  config.loss.aux_weight = 0.01               #   this weight and
  config.loss.aux_kwargs = {}                 #   these hyperparameters
  config.loss.softmax_epochs = 0.0            # W-Softmax recipe: plain softmax CE first
  config.loss.adversarial_dropout = 0.0       # GSL: adversarial DropOut rate p of the features
  config.loss.memory_size = 0                 # cross-batch memory slots (0: off), pair losses

Adding a loss to the trainer: write the pure function in `dmlax/losses/` (exported from
`dmlax/losses/__init__.py`), then add one line to `LOSSES` below naming the function and the
kind of parameters it owns (`dmlax.train.loss_params`). That is three files with its test;
`tests/train/test_multidevice.py` picks the new entry up by itself and checks that it builds,
trains a step, and that 8 devices equal one. Nothing else is declared: what the trainer passes is
read from the function's signature, so it cannot drift from the function:

  * `axis_name` in the signature: the loss couples the batch and computes the global-batch value
    itself under pmap/shard_map; the trainer passes the step's axis name;
  * no `axis_name`: the trainer `all_gather`s features and labels, so every device computes the
    loss of the global batch (exact for pair losses, which couple examples, and for per-example
    losses alike);
  * `key` or `rng`: the step's loss key (the same on every device);
  * `lam`: annealed with the step by `dmlax.losses.annealed_lambda` unless the config sets it;
  * a second parameter named `labels`: the labels follow the features (ring loss takes none);
  * `class_axis_name`: the loss can take its classifier/proxies as the local block of classes of
    a mesh axis (`dmlax.losses.class_sharding`); on a (data, model) mesh (`config.mesh`, model >
    1) the trainer passes `class_axis_name="model"` and the arrays of `Objective.class_axes`
    arrive as their local blocks. Only such losses may run with model > 1
    (`check_class_sharding`).

Every device then holds the global loss, and the step's `pmean` of gradients gives the
single-device gradient (the transposes of `psum` and `all_gather` sum the devices' cotangents).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections

from dmlax import losses
from dmlax.train import loss_params as kinds
from dmlax.train.run_config import FIELD_DEFAULTS


@dataclasses.dataclass(frozen=True)
class LossEntry:
  """A loss of `dmlax.losses` and the kind of parameters it owns; the rest is its signature.

  Attributes:
    fn: the loss function.
    params: a kind of `dmlax.train.loss_params` (classifier, proxies, centres, ...).
  """
  fn: Callable
  params: kinds.ParamKind = kinds.NO_PARAMS

  @functools.cached_property
  def _parameters(self) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(self.fn).parameters)

  @property
  def couples_batch(self) -> bool:
    """The loss takes `axis_name` (computes the global-batch value under pmap/shard_map)."""
    return "axis_name" in self._parameters

  @property
  def rng_keyword(self) -> str | None:
    """The keyword under which the loss takes a PRNG key, if any."""
    return next((k for k in ("key", "rng") if k in self._parameters), None)

  @property
  def anneals_lambda(self) -> bool:
    """The loss takes `lam` (the L-Softmax layer's annealed weight)."""
    return "lam" in self._parameters

  @property
  def takes_references(self) -> bool:
    """The loss compares its anchors with `references=` (e.g. a cross-batch memory)."""
    return "references" in self._parameters

  @property
  def shards_classes(self) -> bool:
    """The loss takes `class_axis_name` (its class parameters may be split over a mesh axis)."""
    return "class_axis_name" in self._parameters

  @property
  def takes_labels(self) -> bool:
    names = list(self._parameters)
    return len(names) > 1 and names[1] == "labels"

  @property
  def hyperparameters(self) -> tuple[str, ...]:
    """Keyword-only arguments a config may set (the trainer supplies axis_name,
    class_axis_name and the key)."""
    return tuple(p.name for p in self._parameters.values()
                 if p.kind == inspect.Parameter.KEYWORD_ONLY
                 and p.name not in ("axis_name", "class_axis_name", self.rng_keyword))


LOSSES: dict[str, LossEntry] = {
    "softmax": LossEntry(losses.softmax_cross_entropy, kinds.LOGITS),
    "normalized_softmax": LossEntry(losses.normalized_softmax_loss, kinds.COSINE_CLASSIFIER),
    "group_softmax": LossEntry(losses.group_softmax_loss, kinds.CLASSIFIER),
    # GSL's eq. 2 with its classifier bias b (C,), trained with the weights.
    "group_softmax_bias": LossEntry(losses.group_softmax_loss, kinds.CLASSIFIER_BIAS),
    "weights_biased_softmax": LossEntry(losses.weights_biased_softmax_loss,
                                        kinds.COSINE_CLASSIFIER),
    "stop_gradient_softmax": LossEntry(losses.stop_gradient_softmax_loss,
                                       kinds.COSINE_CLASSIFIER),
    # Returns (total, aux); the gate "SGSL joins once softmax < 3" is on the global batch.
    "softmax_sgsl": LossEntry(losses.softmax_sgsl_loss, kinds.CLASSIFIER),
    "large_margin_softmax": LossEntry(losses.large_margin_softmax_loss, kinds.CLASSIFIER),
    "multiclass_hinge": LossEntry(losses.multiclass_hinge_loss, kinds.CLASSIFIER),
    "sphereface": LossEntry(losses.sphereface_loss, kinds.COSINE_CLASSIFIER),
    "cosface": LossEntry(losses.cosface_loss, kinds.COSINE_CLASSIFIER),
    "arcface": LossEntry(losses.arcface_loss, kinds.COSINE_CLASSIFIER),
    "sigsoftmax": LossEntry(losses.sigsoftmax_loss, kinds.CLASSIFIER),
    "noisy_softmax": LossEntry(losses.noisy_softmax_loss, kinds.CLASSIFIER),
    "virtual_softmax": LossEntry(losses.virtual_softmax_loss, kinds.CLASSIFIER),
    "proxy_anchor": LossEntry(losses.proxy_anchor_loss, kinds.SINGLE_PROXIES),
    "proxy_nca": LossEntry(losses.proxy_nca_loss, kinds.SINGLE_PROXIES),
    "mpa": LossEntry(losses.mpa_loss, kinds.MULTI_PROXIES),
    "mpa_dw": LossEntry(losses.mpa_dw_loss, kinds.MULTI_PROXIES),
    "mpa_ap": LossEntry(losses.mpa_ap_loss, kinds.MULTI_PROXIES),
    "soft_triple": LossEntry(losses.soft_triple_loss, kinds.MULTI_PROXIES_SOFT_TRIPLE),
    "triplet": LossEntry(losses.triplet_margin_loss),
    "contrastive": LossEntry(losses.contrastive_loss),
    "multi_similarity": LossEntry(losses.multi_similarity_loss),
    "center": LossEntry(losses.center_loss, kinds.CENTERS),
    "ring": LossEntry(losses.ring_loss, kinds.RADIUS),
    "ntxent": LossEntry(losses.ntxent_loss),
    "supcon": LossEntry(losses.supcon_loss),
    "circle": LossEntry(losses.circle_loss),
    # Wu et al.'s learnable boundary beta: one scalar (pml's default) or one per class.
    "margin": LossEntry(losses.margin_loss, kinds.BETA),
    "margin_class_beta": LossEntry(losses.margin_loss, kinds.CLASS_BETA),
    "lifted_structure": LossEntry(losses.lifted_structure_loss),
    # K = config.loss.num_proxies sub-centers per class.
    "subcenter_arcface": LossEntry(losses.subcenter_arcface_loss, kinds.SUBCENTERS),
}


@dataclasses.dataclass(frozen=True)
class Objective:
  """A built objective.

  Attributes:
    init: `(rng, features) -> params` (a dict, possibly empty) given a (B, D) feature batch.
    apply: `(features, labels, params, *, step, rng, axis_name, references=None,
      class_axis_name=None) -> (loss, aux)`, `aux` a dict of scalars to log. Per device; with
      `axis_name`, a global-batch loss (see module doc). `references` (the cross-batch memory's)
      go to the main loss. With `class_axis_name`, the arrays named in `class_axes` are this
      device's contiguous block of classes along that mesh axis, and the loss is still the
      full-class value.
    logits: `(features, params) -> (N, C)` class scores for top-1 error, or None when the loss
      owns no class parameters. Given the local blocks of `class_axes`, the local (N, C_local)
      block of the scores (`dmlax.train.class_parallel.top1_predictions` merges them).
    num_classes: C.
    memory_size: slots of the cross-batch memory (`config.loss.memory_size`), 0 for none.
    class_axes: `{name: axis}` for the arrays of `params` that hold one slice per class on
      `axis` (the classifier's 1, the proxies' 0, ...), from the parameter kinds
      (`dmlax.train.loss_params`).
  """
  init: Callable[[jax.Array, jax.Array], dict]
  apply: Callable[..., tuple[jax.Array, dict]]
  logits: Callable[[jax.Array, dict], jax.Array] | None
  num_classes: int
  memory_size: int = 0
  class_axes: dict[str, int] = dataclasses.field(default_factory=dict)

  def init_memory(self, features: jax.Array) -> losses.XBMState | None:
    """An empty cross-batch memory for (B, D) `features`, or None without one."""
    if not self.memory_size:
      return None
    return losses.xbm_init(self.memory_size, int(features.shape[-1]))


def lookup(name: str, field: str = "config.loss.name") -> LossEntry:
  """The entry `name` of `LOSSES`; a ValueError naming `field` and the known names otherwise."""
  if name not in LOSSES:
    raise ValueError(f"{field} must be one of {known_losses()}, got {name!r}")
  return LOSSES[name]


def check_kwargs(entry: LossEntry, kwargs: dict, field: str) -> None:
  """Hyperparameters the loss does not take: an error before anything is traced."""
  accepted = list(entry.hyperparameters)
  unknown = sorted(set(kwargs) - set(accepted))
  if unknown:
    raise ValueError(f"{field} has {unknown}, which dmlax.losses.{entry.fn.__name__} does not "
                     f"take; it takes {accepted}")


class _Term:
  """One loss of the objective, called per device: `(features, labels, params, ...) -> (loss,
  aux)` with `params` the arrays of its kind (see the module doc for what is passed)."""

  def __init__(self, entry: LossEntry, kwargs: dict, field: str, prefix: str = ""):
    check_kwargs(entry, kwargs, field)
    self.entry, self.kwargs, self.field, self.prefix = entry, dict(kwargs), field, prefix

  def own(self, params: dict) -> dict:
    return {n: params[self.prefix + n] for n in self.entry.params.names}

  def init(self, key, *, dim: int, num_classes: int, num_proxies: int) -> dict:
    values = self.entry.params.init(key, dim=dim, num_classes=num_classes,
                                    num_proxies=num_proxies)
    return {self.prefix + n: v for n, v in values.items()}

  @property
  def class_axes(self) -> dict[str, int]:
    return {self.prefix + n: a for n, a in self.entry.params.class_axes.items()}

  def __call__(self, features, labels, params, *, rng, axis_name, step, references=None,
               class_axis_name=None):
    entry, kw = self.entry, dict(self.kwargs)
    if class_axis_name is not None:
      if not entry.shards_classes:
        raise ValueError(f"dmlax.losses.{entry.fn.__name__} does not take class_axis_name; its "
                         f"parameters cannot be split over classes (see check_class_sharding)")
      kw["class_axis_name"] = class_axis_name
    if references is not None:
      kw["references"] = references
    if entry.rng_keyword:
      kw[entry.rng_keyword] = rng
    if entry.anneals_lambda and "lam" not in kw:
      kw["lam"] = losses.annealed_lambda(step)
    if axis_name is not None:
      if entry.couples_batch:
        kw["axis_name"] = axis_name
      else:
        features = jax.lax.all_gather(features, axis_name, tiled=True)
        labels = jax.lax.all_gather(labels, axis_name, tiled=True)
    first, rest, extra = entry.params.call_args(features, self.own(params))
    args = (first, labels, *rest) if entry.takes_labels else (first, *rest)
    try:
      out = entry.fn(*args, **extra, **kw)
    except TypeError as e:
      raise ValueError(f"{self.field} do not fit dmlax.losses.{entry.fn.__name__}: {e}") from e
    return out if isinstance(out, tuple) else (out, {})


def build_objective(config: ml_collections.ConfigDict, *, num_classes: int,
                    steps_per_epoch: int) -> Objective:
  """The objective of `config.loss` for a `num_classes`-way training split.

  Raises:
    ValueError: an unknown `config.loss.name` or `config.loss.aux_name` (listing the known
      names), hyperparameters the loss does not take, or a `config.loss.memory_size` the loss
      or the batch cannot use.

  Example:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from configs import common
    >>> config = common.get_config()
    >>> config.loss.name, config.loss.num_proxies = "mpa", 2   # two proxies per class
    >>> objective = build_objective(config, num_classes=10, steps_per_epoch=50)
    >>> features = jax.random.normal(jax.random.key(0), (8, 16))   # (batch, embedding)
    >>> labels = jnp.arange(8) % 4
    >>> params = objective.init(jax.random.key(1), features)   # the loss's own parameters
    >>> jax.tree.map(jnp.shape, params)
    {'proxies': (10, 2, 16)}
    >>> loss, aux = objective.apply(features, labels, params, step=0, rng=jax.random.key(2),
    ...                             axis_name=None)
    >>> loss.shape, bool(jnp.isfinite(loss))
    ((), True)
    >>> config.loss.kwargs.bogus = 1.0
    >>> build_objective(config, num_classes=10, steps_per_epoch=50)
    Traceback (most recent call last):
    ...
    ValueError: config.loss.kwargs has ['bogus'], which ...
  """
  cfg = config.loss
  main_entry = lookup(cfg.name, "config.loss.name")
  main_kwargs = cfg.kwargs.to_dict()
  main = _Term(main_entry, main_kwargs, "config.loss.kwargs")
  aux = None
  if cfg.aux_name:
    aux = _Term(lookup(cfg.aux_name, "config.loss.aux_name"), cfg.aux_kwargs.to_dict(),
                "config.loss.aux_kwargs", prefix="aux_")
  if (isinstance(main_entry.params, kinds.SubCenters) or (
      isinstance(main_entry.params, kinds.Proxies) and main_entry.params.multi)) and (
      cfg.num_proxies < 1):
    raise ValueError(f"config.loss.num_proxies must be >= 1, got {cfg.num_proxies}")
  softmax_steps = int(round(cfg.softmax_epochs * steps_per_epoch))
  if softmax_steps > 0 and not isinstance(main_entry.params, kinds.Classifier):
    raise ValueError("config.loss.softmax_epochs (softmax first, then the configured loss) needs "
                     f"a classifier loss; config.loss.name={cfg.name!r} owns "
                     f"{main_entry.params.names or 'no parameters'}")
  softmax = _Term(LOSSES["softmax"], {}, "config.loss.kwargs")
  memory_size = _memory_size(config, main_entry)
  adv_rate = float(cfg.get("adversarial_dropout", FIELD_DEFAULTS["loss.adversarial_dropout"])
                   or 0.0)
  if not 0.0 <= adv_rate < 1.0:
    raise ValueError(f"config.loss.adversarial_dropout must be in [0, 1), got {adv_rate}")

  def init(rng, features):
    k_main, k_aux = jax.random.split(rng)
    shape = dict(dim=int(features.shape[-1]), num_classes=num_classes,
                 num_proxies=int(cfg.num_proxies))
    params = main.init(k_main, **shape)
    if aux is not None:
      params.update(aux.init(k_aux, **shape))
    return params

  def apply(features, labels, params, *, step, rng, axis_name=None, references=None,
            class_axis_name=None):
    call = functools.partial(main, rng=rng, axis_name=axis_name, step=step,
                             references=references, class_axis_name=class_axis_name)
    clean = features
    if adv_rate > 0:
      features = adversarial_features(call, features, labels, params, rate=adv_rate,
                                      class_axis_name=class_axis_name)
    if softmax_steps > 0:
      # W-Softmax recipe: softmax CE first, the configured loss afterwards. Both branches
      # return the same aux keys so that lax.cond can join them.
      def first(_):
        loss, _ = softmax(features, labels, params, rng=rng, axis_name=axis_name, step=step,
                          class_axis_name=class_axis_name)
        return loss, {"softmax_phase": jnp.ones((), loss.dtype)}

      def second(_):
        loss, _ = call(features, labels, params)
        return loss, {"softmax_phase": jnp.zeros((), loss.dtype)}

      loss, logs = jax.lax.cond(step < softmax_steps, first, second, None)
    else:
      loss, logs = call(features, labels, params)
    logs = {f"{cfg.name}/{k}": jnp.asarray(v, jnp.float32) for k, v in logs.items()}
    if aux is not None:
      extra, extra_logs = aux(clean, labels, params, rng=jax.random.fold_in(rng, 1),
                              axis_name=axis_name, step=step, class_axis_name=class_axis_name)
      logs[f"{cfg.name}/main"] = loss
      logs[f"{cfg.aux_name}/loss"] = extra
      logs.update({f"{cfg.aux_name}/{k}": jnp.asarray(v, jnp.float32)
                   for k, v in extra_logs.items()})
      loss = loss + cfg.aux_weight * extra
    return loss, logs

  logits = None
  if main_entry.params.has_logits:
    def logits(features, params):
      return main_entry.params.logits(features, main.own(params), main_kwargs)
  class_axes = dict(main.class_axes)
  if aux is not None:
    class_axes.update(aux.class_axes)
  return Objective(init=init, apply=apply, logits=logits, num_classes=num_classes,
                   memory_size=memory_size, class_axes=class_axes)


def class_sharding_losses() -> tuple[str, ...]:
  """The names of `LOSSES` whose function takes `class_axis_name` (may run with model > 1)."""
  return tuple(sorted(n for n, e in LOSSES.items() if e.shards_classes))


def check_class_sharding(config: ml_collections.ConfigDict, *, model: int,
                         num_classes: int | None = None) -> None:
  """A (data, model) mesh with model > 1 splits the classes: the losses must allow it.

  Raises:
    ValueError: the main or auxiliary loss does not take `class_axis_name` (naming it and the
      losses that do), or `num_classes` (when given) does not divide into `model` equal
      blocks.
  """
  if model <= 1:
    return
  cfg = config.loss
  for field, name in (("config.loss.name", cfg.name), ("config.loss.aux_name", cfg.aux_name)):
    if name and not lookup(name, field).shards_classes:
      raise ValueError(
          f"config.mesh={tuple(config.mesh)} splits the classes over {model} devices, but "
          f"{field}={name!r} (dmlax.losses.{LOSSES[name].fn.__name__}) does not take "
          f"class_axis_name. Losses that do: {list(class_sharding_losses())}; or set "
          f"config.mesh=(-1, 1)")
  if num_classes is not None and num_classes % model:
    raise ValueError(f"config.mesh={tuple(config.mesh)}: the {num_classes} classes of "
                     f"config.dataset.name={config.dataset.name!r} do not split into {model} "
                     f"equal blocks (the model axis); use a model size that divides "
                     f"{num_classes}")


def _memory_size(config: ml_collections.ConfigDict, entry: LossEntry) -> int:
  """`config.loss.memory_size`, checked: a non-negative integer, for a loss that takes
  `references`, at least the global batch (each step enqueues it whole)."""
  size = config.loss.get("memory_size", FIELD_DEFAULTS["loss.memory_size"]) or 0
  if isinstance(size, bool) or int(size) != size or size < 0:
    raise ValueError(f"config.loss.memory_size must be a non-negative integer (0: no cross-batch "
                     f"memory), got {size!r}")
  size = int(size)
  if size == 0:
    return 0
  if not entry.takes_references:
    usable = sorted(n for n, e in LOSSES.items() if e.takes_references)
    raise ValueError(f"config.loss.memory_size={size} (cross-batch memory) needs a loss that "
                     f"takes references; config.loss.name={config.loss.name!r} "
                     f"(dmlax.losses.{entry.fn.__name__}) does not. Losses that do: {usable}")
  if size < config.batch_size:
    raise ValueError(f"config.loss.memory_size={size} must be at least config.batch_size="
                     f"{config.batch_size} (every step enqueues the global batch)")
  return size


def adversarial_features(loss_fn, features, labels, params, *, rate: float,
                         class_axis_name: str | None = None):
  """`features * m` with m the adversarial DropOut mask of `loss_fn` (Park et al., AAAI 2018).

  The gradient g of `loss_fn(features, labels, params)[0]` with respect to the features (the
  parameters held fixed) gives `dmlax.models.adversarial_dropout_mask`, which drops the
  ceil(rate D) components of each feature vector whose removal raises the loss most to first
  order (GSL, WACV 2021, section 3.2: p = 0.005). The loss is then trained on the masked
  features. Under pmap/shard_map every device holds the same global loss, so g is the
  single-device gradient times the number of devices, and the mask (a top-k of g * h) is the same.
  With `class_axis_name`, each device's g holds only its classes' part, summed over that axis.
  """
  from dmlax import models  # pylint: disable=g-import-not-at-top
  fixed = jax.lax.stop_gradient(params)
  grads = jax.grad(lambda f: loss_fn(f, labels, fixed)[0])(jax.lax.stop_gradient(features))
  if class_axis_name is not None:
    grads = jax.lax.psum(grads, class_axis_name)
  return features * models.adversarial_dropout_mask(features, grads, rate=rate)


def known_losses() -> tuple[str, ...]:
  return tuple(sorted(LOSSES))
