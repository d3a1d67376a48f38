"""L2 normalisation shared by the cosine-based losses (normalised softmax, W-Softmax, SGSL).

One definition, so that every loss and its tests agree on the epsilon: like
``torch.nn.functional.normalize``, ``x / max(||x||, eps)`` with ``eps = dmlax.checks.NORM_EPS =
1e-12``, which keeps the all-zero vector at zero (no NaN) and has the ordinary gradient wherever
``||x|| > eps``. Computed in `dmlax.checks.compute_dtype` (float32 or wider).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dmlax import checks
from dmlax.checks import NORM_EPS

__all__ = ["NORM_EPS", "inverse_norm", "l2_normalize"]


def inverse_norm(x: jax.Array, axis: int, eps: float = NORM_EPS) -> jax.Array:
  """``1 / max(||x||, eps)`` along `axis` (kept as a size-1 axis), computed in float32 or wider."""
  (x,) = checks.as_compute(x)
  sq = jnp.sum(jnp.square(x), axis=axis, keepdims=True)
  return jax.lax.rsqrt(jnp.maximum(sq, eps * eps))


def l2_normalize(x: jax.Array, axis: int, eps: float = NORM_EPS) -> jax.Array:
  """``x / max(||x||, eps)`` along `axis`, in float32 or wider."""
  (x,) = checks.as_compute(x)
  return x * inverse_norm(x, axis, eps)
