"""The parameters a trainer loss owns, one small object per kind.

A kind knows four things, so that nothing else in the trainer branches on it:
  * `init(key, dim=D, num_classes=C, num_proxies=K)`: its arrays, `{name: array}`, drawn by
    calling the initialiser directly (`jax.nn.initializers`, `dmlax.losses.initializers`);
  * `call_args(features, params)`: what replaces the features as the loss's first argument and
    the arguments that follow the labels, e.g. `(features, (W,), {})` or, for plain softmax on
    logits, `(features @ W, (), {})`;
  * `logits(features, params, kwargs)`: test-time class scores (N, C) for top-1 error, or None;
  * `class_axes`: `{name: axis}` for the arrays that hold one slice per class on `axis`. Under
    class sharding (`config.mesh = (data, model)`, model > 1) those arrays are split into
    contiguous blocks of classes over the mesh axis "model"; `call_args` and `logits` then see
    the local block (C_local classes) and return the local block of logits, which the loss
    (with `class_axis_name`) or the evaluation combines across the axis.

  Kind                 arrays (in `params["loss"]`)           passed as             test logits
  NO_PARAMS            -                                      -                     None
  LOGITS               classifier (D, C)                      `features @ W`        x W
  CLASSIFIER           classifier (D, C)                      third argument W      x W
  COSINE_CLASSIFIER    classifier (D, C)                      third argument W      x W/|W|
  CLASSIFIER_BIAS      classifier (D, C), bias (C,)           W, `bias=b`           x W + b
  SINGLE_PROXIES       single_proxies (C, D)                  third argument        proxy sim.
  MULTI_PROXIES(_SOFT_TRIPLE)  proxies (C, K, D)              third argument        proxy sim.
  CENTERS              centers (C, D), zeros                  third argument        None
  RADIUS               radius (), one                         after the labels      None
  BETA / CLASS_BETA    beta () or (C,), 1.2                   after the labels      None
  SUBCENTERS           subcenters (D, C, K)                   third argument W      max_k cos

The class axis of each array (`class_axes`) is the C above: 1 for (D, C) and (D, C, K), 0 for
(C,), (C, D) and (C, K, D).

(proxy sim.: `dmlax.losses.multi_proxy_similarity` with the loss's `gamma`, default 0.1;
max_k cos: the largest cosine of a class's K = `config.loss.num_proxies` sub-centers.)

The array names are the keys of the train state's `params["loss"]` (an auxiliary loss's get the
prefix "aux_"), so the optimiser's "head" group and checkpoints see one leaf per array.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from dmlax.losses import initializers
from dmlax.losses import normalization

Array = jax.Array

# PyTorch's nn.Linear default, U(-1/sqrt(D), 1/sqrt(D)) with fan-in D (axis -2 of (D, C)): what
# the GSL and SGSL reference frameworks (PyTorch) give a classifier that sets no initialiser.
torch_linear_init = jax.nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


@dataclasses.dataclass(frozen=True)
class NoParams:
  """A loss that owns no parameters (pair losses)."""
  names: tuple[str, ...] = ()
  has_logits = False
  class_axes = {}

  def init(self, key, *, dim: int, num_classes: int, num_proxies: int) -> dict[str, Array]:
    del key, dim, num_classes, num_proxies
    return {}

  def call_args(self, features, params: dict) -> tuple[Array, tuple, dict]:
    del params
    return features, (), {}

  def logits(self, features, params: dict, kwargs: dict) -> Array | None:
    del features, params, kwargs
    return None


@dataclasses.dataclass(frozen=True)
class Classifier:
  """Classifier weights W (D, C), one column per class, PyTorch's Linear initialisation.

  Attributes:
    on_logits: the loss takes logits `features @ W` (softmax cross-entropy) instead of
      (features, labels, W).
    normalized: test-time logits use L2-normalised columns (cosine classifiers).
    bias: the loss also owns a zero-initialised bias b (C,), passed as `bias=b`.
  """
  on_logits: bool = False
  normalized: bool = False
  bias: bool = False
  has_logits = True

  @property
  def names(self) -> tuple[str, ...]:
    return ("classifier", "bias") if self.bias else ("classifier",)

  @property
  def class_axes(self) -> dict[str, int]:
    return {"classifier": 1, "bias": 0} if self.bias else {"classifier": 1}

  def init(self, key, *, dim: int, num_classes: int, num_proxies: int) -> dict[str, Array]:
    del num_proxies
    out = {"classifier": torch_linear_init(key, (dim, num_classes), jnp.float32)}
    if self.bias:
      out["bias"] = jnp.zeros((num_classes,), jnp.float32)
    return out

  def call_args(self, features, params: dict) -> tuple[Array, tuple, dict]:
    w = params["classifier"]
    if self.on_logits:
      return features @ w, (), {}
    return features, (w,), ({"bias": params["bias"]} if self.bias else {})

  def logits(self, features, params: dict, kwargs: dict) -> Array:
    del kwargs
    w = params["classifier"]
    if self.normalized:
      w = normalization.l2_normalize(w, axis=0)
    out = features @ w
    return out + params["bias"] if self.bias else out


@dataclasses.dataclass(frozen=True)
class Proxies:
  """Proxies (C, D) (`multi=False`: one per class) or (C, K, D) (K = config.loss.num_proxies).

  Attributes:
    multi: K proxies per class, K from `config.loss.num_proxies`.
    initializer: `(key, shape) -> array` of `dmlax.losses.initializers`.
  """
  multi: bool
  initializer: Callable[..., Array] = initializers.proxy_anchor_init
  has_logits = True

  @property
  def names(self) -> tuple[str, ...]:
    return ("proxies",) if self.multi else ("single_proxies",)

  @property
  def class_axes(self) -> dict[str, int]:
    return {self.names[0]: 0}

  def init(self, key, *, dim: int, num_classes: int, num_proxies: int) -> dict[str, Array]:
    if self.multi:
      if num_proxies < 1:
        raise ValueError(f"config.loss.num_proxies must be >= 1, got {num_proxies}")
      return {"proxies": self.initializer(key, (num_classes, num_proxies, dim), jnp.float32)}
    return {"single_proxies": self.initializer(key, (num_classes, dim), jnp.float32)}

  def call_args(self, features, params: dict) -> tuple[Array, tuple, dict]:
    return features, (params[self.names[0]],), {}

  def logits(self, features, params: dict, kwargs: dict) -> Array:
    from dmlax import losses  # pylint: disable=g-import-not-at-top
    p = params[self.names[0]]
    if p.ndim == 2:
      p = p[:, None, :]
    return losses.multi_proxy_similarity(features, p, gamma=kwargs.get("gamma", 0.1))


@dataclasses.dataclass(frozen=True)
class Centers:
  """Class centres (C, D), started at the origin as the center-loss reference code does."""
  names: tuple[str, ...] = ("centers",)
  has_logits = False
  class_axes = {"centers": 0}

  def init(self, key, *, dim: int, num_classes: int, num_proxies: int) -> dict[str, Array]:
    del key, num_proxies
    return {"centers": jnp.zeros((num_classes, dim), jnp.float32)}

  def call_args(self, features, params: dict) -> tuple[Array, tuple, dict]:
    return features, (params["centers"],), {}

  def logits(self, features, params: dict, kwargs: dict) -> None:
    del features, params, kwargs
    return None


@dataclasses.dataclass(frozen=True)
class Radius:
  """Ring loss's learnable radius R (a scalar), started at 1."""
  names: tuple[str, ...] = ("radius",)
  has_logits = False
  class_axes = {}

  def init(self, key, *, dim: int, num_classes: int, num_proxies: int) -> dict[str, Array]:
    del key, dim, num_classes, num_proxies
    return {"radius": jnp.ones((), jnp.float32)}

  def call_args(self, features, params: dict) -> tuple[Array, tuple, dict]:
    return features, (params["radius"],), {}

  def logits(self, features, params: dict, kwargs: dict) -> None:
    del features, params, kwargs
    return None


@dataclasses.dataclass(frozen=True)
class Boundary:
  """Margin loss's learnable boundary beta: one scalar, or one per class (`per_class`).

  Wu et al. ("Sampling Matters in Deep Embedding Learning", ICCV 2017, section 5) learn beta,
  class-specific beta^(class) in their experiments, starting at beta_0 = 1.2; pml's `MarginLoss`
  learns one scalar unless given `num_classes`.
  """
  per_class: bool = False
  initial: float = 1.2
  names: tuple[str, ...] = ("beta",)
  has_logits = False

  @property
  def class_axes(self) -> dict[str, int]:
    return {"beta": 0} if self.per_class else {}

  def init(self, key, *, dim: int, num_classes: int, num_proxies: int) -> dict[str, Array]:
    del key, dim, num_proxies
    shape = (num_classes,) if self.per_class else ()
    return {"beta": jnp.full(shape, self.initial, jnp.float32)}

  def call_args(self, features, params: dict) -> tuple[Array, tuple, dict]:
    return features, (params["beta"],), {}

  def logits(self, features, params: dict, kwargs: dict) -> None:
    del features, params, kwargs
    return None


# U(-1/sqrt(D), 1/sqrt(D)) as `torch_linear_init`, for (D, C, K): fan-in D, every sub-center
# initialised as one column of a Linear layer.
_subcenter_init = jax.nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform",
                                                        in_axis=0, out_axis=(1, 2))


@dataclasses.dataclass(frozen=True)
class SubCenters:
  """Sub-center ArcFace's K sub-centers per class, W (D, C, K), K = config.loss.num_proxies.

  Test-time logits are each class's largest sub-center cosine, max_k x^T W_ck / (|x| |W_ck|)
  (Deng et al., "Sub-center ArcFace", ECCV 2020, eq. 1 without the margin).
  """
  names: tuple[str, ...] = ("subcenters",)
  has_logits = True
  class_axes = {"subcenters": 1}

  def init(self, key, *, dim: int, num_classes: int, num_proxies: int) -> dict[str, Array]:
    if num_proxies < 1:
      raise ValueError(f"config.loss.num_proxies (sub-centers per class) must be >= 1, got "
                       f"{num_proxies}")
    return {"subcenters": _subcenter_init(key, (dim, num_classes, num_proxies), jnp.float32)}

  def call_args(self, features, params: dict) -> tuple[Array, tuple, dict]:
    return features, (params["subcenters"],), {}

  def logits(self, features, params: dict, kwargs: dict) -> Array:
    del kwargs
    w = normalization.l2_normalize(params["subcenters"], axis=0)
    x = normalization.l2_normalize(features, axis=-1)
    return jnp.max(jnp.einsum("nd,dck->nck", x, w), axis=-1)


ParamKind = Any  # any of the classes above: names, has_logits, class_axes, init, call_args, logits

NO_PARAMS = NoParams()
LOGITS = Classifier(on_logits=True)
CLASSIFIER = Classifier()
COSINE_CLASSIFIER = Classifier(normalized=True)
CLASSIFIER_BIAS = Classifier(bias=True)
SINGLE_PROXIES = Proxies(multi=False)
MULTI_PROXIES = Proxies(multi=True)
MULTI_PROXIES_SOFT_TRIPLE = Proxies(multi=True, initializer=initializers.soft_triple_init)
CENTERS = Centers()
RADIUS = Radius()
BETA = Boundary()
CLASS_BETA = Boundary(per_class=True)
SUBCENTERS = SubCenters()
