"""Softmax cross-entropy, the baseline every other loss of dmlax is measured against."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from dmlax.losses import checks


def softmax_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> jax.Array:
  r"""Softmax cross-entropy with integer labels and optional label smoothing.

  .. math::
    \ell_i = -\sum_c q_{ic} \log \mathrm{softmax}(z_i)_c,\qquad
    q_{ic} = (1 - \epsilon)\,\mathbb{1}[c = y_i] + \epsilon / C

  computed as :math:`(1-\epsilon)(\mathrm{lse}(z_i) - z_{iy_i}) +
  \epsilon(\mathrm{lse}(z_i) - \bar z_i)` so no one-hot or log-probability matrix is needed.
  Label smoothing as in Szegedy et al., "Rethinking the Inception Architecture" (CVPR 2016);
  equal to ``optax.softmax_cross_entropy(logits, optax.smooth_labels(onehot, eps))``.

  Args:
    logits: (B, C) floating logits.
    labels: (B,) integer labels in [0, C).
    label_smoothing: epsilon in [0, 1).
    reduction: "mean", "sum" or "none" (per example, shape (B,)).

  Example:
    >>> softmax_cross_entropy(jnp.array([[2.0, 0.0]]), jnp.array([0]))  # log(1 + e^-2)
    Array(0.126928, dtype=float32)
  """
  checks.check_reduction(reduction)
  checks.check_floating(logits, "logits", ndim=2)
  batch, num_classes = jnp.shape(logits)
  checks.check_labels(labels, batch)
  if not 0.0 <= label_smoothing < 1.0:
    raise ValueError(f"label_smoothing must lie in [0, 1), got {label_smoothing}")
  valid = checks.label_guard(labels, num_classes)
  per_example = _smoothed_ce(jnp.asarray(logits), jnp.asarray(labels), label_smoothing)
  return checks.reduce_loss(checks.nan_where_invalid(per_example, valid), reduction)


def _smoothed_ce(logits: jax.Array, labels: jax.Array, label_smoothing: float) -> jax.Array:
  """Per-example smoothed CE without checks, for losses that build their own logits."""
  # Accumulate in float32 at least: bf16 log-sum-exp over 1000 classes loses the target logit.
  compute_dtype = jnp.promote_types(logits.dtype, jnp.float32)
  z = logits.astype(compute_dtype)
  lse = jax.nn.logsumexp(z, axis=-1)
  target = jnp.take_along_axis(z, labels[:, None], axis=-1)[:, 0]
  loss = lse - target
  if label_smoothing:
    loss = (1.0 - label_smoothing) * loss + label_smoothing * (lse - jnp.mean(z, axis=-1))
  return loss
