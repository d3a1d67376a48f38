"""Parameter containers for classifier weights and proxies (Linen modules with no computation).

They live outside the backbone so that a trainer can give them their own learning rate (MPA:
1e-2 for proxies, 1e-4 for the backbone) and so that one set of features can feed several losses.
Each takes the features only to read their width `D`.

`ClassifierWeights(num_classes, init=...)` and `Proxies(num_classes, num_proxies, init=...)` are
factories: a Linen field named `init` would hide `Module.init`, so the modules call it
`initializer`.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

Initializer = Callable[..., jax.Array]

# PyTorch's nn.Linear default, U(-1/sqrt(D), 1/sqrt(D)) with fan-in D: what the GSL and SGSL
# reference frameworks (PyTorch) give a classifier that sets no initialiser of its own.
torch_linear_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def _feature_dim(features: jax.Array, who: str) -> int:
  if features.ndim < 1:
    raise ValueError(f"{who}: features must be (..., D), got shape {features.shape}")
  return int(features.shape[-1])


class ClassifierWeightsModule(nn.Module):
  """Classifier weights `W` of shape (D, C), one column per class (the layout of docs/spec.md).

  Default initialiser: PyTorch's `nn.Linear` default, `U(-1/sqrt(D), 1/sqrt(D))`
  (`torch_linear_init`), as in the PyTorch code bases of GSL and SGSL. Pass
  `nn.initializers.xavier_uniform()` for W-Softmax's TensorFlow setting (section 5.1).

  Example:
    >>> clf = ClassifierWeights(num_classes=10)
    >>> v = clf.init(jax.random.key(0), jnp.zeros((4, 64)))
    >>> clf.apply(v, jnp.zeros((4, 64))).shape
    (64, 10)
  """
  num_classes: int
  initializer: Initializer = torch_linear_init

  @nn.compact
  def __call__(self, features: jax.Array) -> jax.Array:
    if self.num_classes < 1:
      raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
    dim = _feature_dim(features, "ClassifierWeights")
    return self.param("kernel", self.initializer, (dim, self.num_classes), jnp.float32)


class ClassifierBias(nn.Module):
  """Classifier bias `b` of shape (C,), zero-initialised (GSL's eq. 2 uses a bias).

  Example:
    >>> ClassifierBias(num_classes=10).init_with_output(jax.random.key(0))[0].shape
    (10,)
  """
  num_classes: int

  @nn.compact
  def __call__(self) -> jax.Array:
    return self.param("bias", nn.initializers.zeros, (self.num_classes,), jnp.float32)


class ProxiesModule(nn.Module):
  """Proxies of shape (C, K, D): K per class (SoftTriple, MPA); K = 1 for ProxyAnchor/ProxyNCA.

  Default initialiser: `dmlax.losses.initializers.proxy_anchor_init` (kaiming normal, fan-out),
  ProxyAnchor's reference initialisation; SoftTriple's is `soft_triple_init`.

  Example:
    >>> px = Proxies(num_classes=100, num_proxies=10)
    >>> v = px.init(jax.random.key(0), jnp.zeros((4, 512)))
    >>> px.apply(v, jnp.zeros((4, 512))).shape
    (100, 10, 512)
  """
  num_classes: int
  num_proxies: int = 1
  initializer: Initializer | None = None

  @nn.compact
  def __call__(self, features: jax.Array) -> jax.Array:
    if self.num_classes < 1 or self.num_proxies < 1:
      raise ValueError(f"num_classes and num_proxies must be >= 1, got {self.num_classes}, "
                       f"{self.num_proxies}")
    dim = _feature_dim(features, "Proxies")
    init = self.initializer
    if init is None:
      # Imported here: the losses package is optional for users of the backbones alone.
      from dmlax.losses.initializers import proxy_anchor_init  # pylint: disable=g-import-not-at-top
      init = proxy_anchor_init
    return self.param("proxies", init, (self.num_classes, self.num_proxies, dim), jnp.float32)



def ClassifierWeights(  # pylint: disable=invalid-name
    num_classes: int, init: Initializer = torch_linear_init) -> ClassifierWeightsModule:
  """(D, C) classifier weights; see `ClassifierWeightsModule` (the default init is PyTorch's)."""
  return ClassifierWeightsModule(num_classes=num_classes, initializer=init)


def Proxies(num_classes: int, num_proxies: int = 1,  # pylint: disable=invalid-name
            init: Initializer | None = None) -> ProxiesModule:
  """(C, K, D) proxies; see `ProxiesModule` (the default init is `proxy_anchor_init`)."""
  return ProxiesModule(num_classes=num_classes, num_proxies=num_proxies, initializer=init)
