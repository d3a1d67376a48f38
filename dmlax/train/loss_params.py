"""The parameters a trainer loss owns, one small object per kind.

A kind knows three things, so that nothing else in the trainer branches on it:
  * `init(key, dim=D, num_classes=C, num_proxies=K)`: its arrays, `{name: array}`, drawn by
    calling the initialiser directly (`jax.nn.initializers`, `dmlax.losses.initializers`);
  * `call_args(features, params)`: what replaces the features as the loss's first argument and
    the arguments that follow the labels, e.g. `(features, (W,), {})` or, for plain softmax on
    logits, `(features @ W, (), {})`;
  * `logits(features, params, kwargs)`: test-time class scores (N, C) for top-1 error, or None.

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

(proxy sim.: `dmlax.losses.multi_proxy_similarity` with the loss's `gamma`, default 0.1.)

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

  def init(self, key, *, dim: int, num_classes: int, num_proxies: int) -> dict[str, Array]:
    del key, dim, num_classes, num_proxies
    return {"radius": jnp.ones((), jnp.float32)}

  def call_args(self, features, params: dict) -> tuple[Array, tuple, dict]:
    return features, (params["radius"],), {}

  def logits(self, features, params: dict, kwargs: dict) -> None:
    del features, params, kwargs
    return None


ParamKind = Any  # any of the classes above: names, has_logits, init, call_args, logits

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
