"""Softmax cross-entropy, the baseline every other loss of dmlax is measured against."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from dmlax import checks
from dmlax.losses import class_sharding
from dmlax.losses import normalization


def softmax_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    class_axis_name: str | None = None,
) -> jax.Array:
  r"""Softmax cross-entropy with integer labels and optional label smoothing.

  .. math::
    \ell_i = -\sum_c q_{ic} \log \mathrm{softmax}(z_i)_c,\qquad
    q_{ic} = (1 - \epsilon)\,\mathbb{1}[c = y_i] + \epsilon / C

  computed as :math:`(1-\epsilon)(\mathrm{lse}(z_i) - z_{iy_i}) +
  \epsilon(\mathrm{lse}(z_i) - \bar z_i)` so no one-hot or log-probability matrix is needed.
  Label smoothing as in Szegedy et al., "Rethinking the Inception Architecture" (CVPR 2016);
  equal to ``optax.softmax_cross_entropy(logits, optax.smooth_labels(onehot, eps))``.

  The first argument is named `logits` (not `features` as in every other loss): its per-example
  vectors are class scores.

  Args:
    logits: (B, C) floating logits.
    labels: (B,) integer labels in [0, C).
    label_smoothing: epsilon in [0, 1) (may be traced).
    reduction: "mean", "sum" or "none" (per example, shape (B,)).
    class_axis_name: mesh axis over which the class axis is sharded (inside ``shard_map``:
      `logits` holds this device's contiguous block of classes, labels are global); the value
      is the full-class one. See `dmlax.losses.class_sharding`.

  Example:
    >>> loss = softmax_cross_entropy(jnp.array([[2.0, 0.0]]), jnp.array([0]))
    >>> bool(jnp.isclose(loss, jnp.log1p(jnp.exp(-2.0))))
    True
  """
  checks.check_reduction(reduction)
  checks.check_floating(logits, "logits", ndim=2)
  batch, num_classes = jnp.shape(logits)
  checks.check_labels(labels, batch)
  checks.check_nonempty(batch, "logits")
  checks.check_scalar(label_smoothing, "label_smoothing", nonnegative=True, below=1.0)
  valid = checks.label_guard(labels, class_sharding.num_classes(num_classes, class_axis_name))
  per_example = smoothed_cross_entropy(
      jnp.asarray(logits), jnp.asarray(labels), label_smoothing, class_axis_name=class_axis_name)
  return checks.reduce_loss(checks.nan_where_invalid(per_example, valid), reduction)


def normalized_softmax_loss(
    features: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike,
    *,
    temperature: float = 0.05,
    reduction: str = "mean",
    class_axis_name: str | None = None,
) -> jax.Array:
  r"""Normalised softmax (NormSoftmax) loss: cosine logits divided by a temperature.

  .. math::
    \ell_i = -\log \frac{\exp(\hat x_i^\top \hat w_{y_i} / T)}
                          {\sum_c \exp(\hat x_i^\top \hat w_c / T)},\qquad
    \hat x = x / \max(\|x\|, \epsilon),\ \hat w_c = W_{:,c} / \max(\|W_{:,c}\|, \epsilon)

  Zhai & Wu, "Classification is a Strong Baseline for Deep Metric Learning" (BMVC 2019). Both the
  classifier columns AND the features are L2-normalised, exactly as pytorch-metric-learning's
  ``NormalizedSoftmaxLoss`` (its default cosine distance normalises the embeddings; its ``W`` is
  (D, C) like ours and is normalised along dim 0), with the same default temperature 0.05. No
  bias. Logits accumulate in float32 for bf16 inputs.

  Args:
    features: (B, D) floating embeddings.
    labels: (B,) integer labels in [0, C).
    weights: (D, C) class weights, one column per class.
    temperature: T > 0 (may be traced).
    reduction: "mean", "sum" or "none" (per example, shape (B,)).
    class_axis_name: mesh axis over which `weights` is sharded by class (the local contiguous
      block of columns; labels global), as in `softmax_cross_entropy`.

  Example:
    >>> x = jnp.array([[3.0, 0.0]]); w = jnp.array([[1.0, 0.0], [0.0, 2.0]])
    >>> loss = normalized_softmax_loss(x, jnp.array([0]), w, temperature=1.0)
    >>> bool(jnp.isclose(loss, jnp.log1p(jnp.exp(-1.0))))
    True
  """
  checks.check_reduction(reduction)
  _, dim = checks.check_features_labels(features, labels)
  num_classes = checks.check_classifier(weights, dim)
  checks.check_scalar(temperature, "temperature", positive=True)
  valid = checks.label_guard(labels, class_sharding.num_classes(num_classes, class_axis_name))
  x, w = checks.as_compute(features, weights)
  x_hat = normalization.l2_normalize(x, axis=1)
  w_hat = normalization.l2_normalize(w, axis=0)
  logits = (x_hat @ w_hat) / temperature
  per_example = smoothed_cross_entropy(
      logits, jnp.asarray(labels), 0.0, class_axis_name=class_axis_name)
  return checks.reduce_loss(checks.nan_where_invalid(per_example, valid), reduction)


def smoothed_cross_entropy(
    logits: jax.Array,
    labels: jax.Array,
    label_smoothing: ArrayLike = 0.0,
    *,
    class_axis_name: str | None = None,
) -> jax.Array:
  """Per-example label-smoothed CE (B,) without checks, for losses that build their own logits.

  The formula of `softmax_cross_entropy`, in `dmlax.checks.compute_dtype`; labels are clipped
  into range (callers mask invalid rows with `dmlax.checks.nan_where_invalid`). With
  `class_axis_name`, (B, C_local) logits of this device's classes (`dmlax.losses.class_sharding`).
  """
  # Accumulate in float32 at least: bf16 log-sum-exp over 1000 classes loses the target logit.
  (z,) = checks.as_compute(logits)
  if class_axis_name is None:
    lse = jax.nn.logsumexp(z, axis=-1)
    target = jnp.take_along_axis(z, labels[:, None], axis=-1, mode="clip")[:, 0]
  else:
    lse = class_sharding.logsumexp(z, class_axis_name)
    target = class_sharding.label_column(z, labels, class_axis_name)
  loss = lse - target
  if checks.is_traced(label_smoothing) or label_smoothing != 0:
    eps = jnp.asarray(label_smoothing, z.dtype)
    if class_axis_name is None:
      mean = jnp.mean(z, axis=-1)
    else:
      total = jax.lax.psum(jnp.sum(z, axis=-1), class_axis_name)
      mean = total / class_sharding.num_classes(z.shape[-1], class_axis_name)
    loss = (1.0 - eps) * loss + eps * (lse - mean)
  return loss
