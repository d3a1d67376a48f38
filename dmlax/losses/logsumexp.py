"""Stable ``log(1 + sum exp)`` over a masked axis, optionally summed across devices.

The proxy and pair losses (ProxyAnchor, the MPA family, multi-similarity) all have terms
``log(1 + sum_{j in J} exp(z_j))``. Written naively this overflows in float32 once ``z > 88``
(``alpha = 32`` with a cosine margin gets close) and loses everything in bfloat16. Here it is a
log-sum-exp with an appended zero, shifted by ``max(0, max_j z_j)``; a row whose set ``J`` is empty
gives exactly 0 with a zero gradient, as pytorch-metric-learning's ``lmu.logsumexp(...,
add_one=True)`` does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from dmlax import checks


def log1p_sum_exp(
    x: ArrayLike,
    where: ArrayLike | None = None,
    *,
    axis: int = -1,
    axis_name: str | None = None,
) -> jax.Array:
  r"""``log(1 + sum_{j: where_j} exp(x_j))`` along `axis`, computed stably.

  .. math::
    \log\Bigl(1 + \sum_{j \in J} e^{x_j}\Bigr) = m + \log\Bigl(e^{-m} + \sum_{j \in J}
    e^{x_j - m}\Bigr),\qquad m = \max(0, \max_{j\in J} x_j)

  With `axis_name` the sum also runs over every device on that axis (inside ``pmap`` or
  ``shard_map``): each device's shifted partial sums are ``psum``-ed after a ``pmax`` of the
  shift, so the result is the single-device value of the concatenated axis, not a sum of
  per-device logs. The shift is a constant for differentiation (it cancels exactly).

  Args:
    x: values, any floating dtype; computed in float32 or wider.
    where: boolean mask broadcastable to `x`; False entries are left out of the sum.
    axis: the axis summed over (removed from the result).
    axis_name: optional mapped axis name to sum across devices as well.

  Example:
    >>> bool(jnp.isclose(log1p_sum_exp(jnp.array([0.0, 0.0])), jnp.log(3.0)))
    True
  """
  (x,) = checks.as_compute(x)
  if where is not None:
    # -inf (not a large negative number) so exp gives exactly 0 with a zero derivative.
    x = jnp.where(where, x, -jnp.inf)
  shift = jnp.max(x, axis=axis, keepdims=True)
  if axis_name is not None:
    shift = jax.lax.pmax(jax.lax.stop_gradient(shift), axis_name)
  # Include the appended zero in the shift: keeps it finite for empty rows and >= 0 so that
  # exp(-shift) never overflows.
  shift = jax.lax.stop_gradient(jnp.maximum(shift, 0.0))
  total = jnp.sum(jnp.exp(x - shift), axis=axis, keepdims=True)
  if axis_name is not None:
    total = jax.lax.psum(total, axis_name)
  # log1p where nothing was shifted keeps tiny sums (log(1 + 1e-11) != 0).
  out = jnp.where(shift > 0, shift + jnp.log(jnp.exp(-shift) + total), jnp.log1p(total))
  return jnp.squeeze(out, axis=axis)
