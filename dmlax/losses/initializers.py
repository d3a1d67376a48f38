"""Proxy initialisers that match the reference PyTorch code, ``jax.nn.initializers`` style.

Proxies are stored (C, D) or (C, K, D): one row per proxy, feature dimension last. PyTorch's
fan computations read a 2-D tensor as (fan_out, fan_in) = (size(0), size(1)); JAX's read the
*last* axis as fan-out, so `jax.nn.initializers.he_normal` would use the wrong fan here. These
functions flatten all leading axes into rows (R = C or C K proxies) and reproduce the
distributions of the reference initialisers exactly (not their random streams).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


def _num_rows(shape) -> int:
  if len(shape) < 2:
    raise ValueError(f"shape must be (C, D) or (C, K, D), got {tuple(shape)}")
  return int(np.prod(shape[:-1]))


def proxy_anchor_init(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
  r"""Kaiming-normal with fan-out, as ProxyAnchor's reference code initialises its proxies.

  ``torch.nn.init.kaiming_normal_(proxies, mode="fan_out")`` on a (C, D) tensor: normal with
  std :math:`\sqrt{2 / C}` (gain :math:`\sqrt 2`, fan-out C = the number of proxy rows).
  tjddus9597/Proxy-Anchor-CVPR2020 and pytorch-metric-learning's ``ProxyAnchorLoss`` both do
  this. For (C, K, D) the fan-out is the number of proxies C K.

  Example:
    >>> proxy_anchor_init(jax.random.PRNGKey(0), (100, 512)).shape
    (100, 512)
  """
  std = math.sqrt(2.0 / _num_rows(shape))
  return (std * jax.random.normal(key, tuple(shape), jnp.float32)).astype(dtype)


def soft_triple_init(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
  r"""Kaiming-uniform (a = sqrt 5), as SoftTriple's reference code initialises its centres.

  idstcv/SoftTriple and pytorch-metric-learning's ``SoftTripleLoss`` hold the centres as a
  (D, C K) tensor ``fc`` and call ``init.kaiming_uniform_(fc, a=math.sqrt(5))``: uniform on
  :math:`[-b, b]` with :math:`b = \sqrt{6 / ((1 + a^2)\, \mathrm{fan\_in})} = 1/\sqrt{C K}`
  (fan-in = size(1) = C K). Same bound here for (C, K, D) or (C, D) proxies.

  Example:
    >>> soft_triple_init(jax.random.PRNGKey(0), (100, 10, 512)).shape
    (100, 10, 512)
  """
  bound = 1.0 / math.sqrt(_num_rows(shape))
  return jax.random.uniform(key, tuple(shape), jnp.float32, -bound, bound).astype(dtype)
