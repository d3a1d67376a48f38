"""Negative-focused weights-biased softmax, W-Softmax (Li & Wang, Pattern Recognition 2020).

Xiaobin Li and Weiqiang Wang, "Learning discriminative features via weights-biased softmax
loss", Pattern Recognition, 2020.

Each negative class ``j`` of a sample of class ``y`` is scored with the per-sample weight
``(alpha w_y + w_j) / ||alpha w_y + w_j||`` (eq. 1). Those (B, C, D) weights are never built: with
unit columns, ``(alpha w_y + w_j) . x = alpha s_y + s_j`` for ``s = x @ w`` and
``||alpha w_y + w_j||^2 = alpha^2 + 2 alpha (w_y . w_j) + 1``, so the loss costs two (B, D, C)
matmuls (``x @ w`` and ``w[:, y].T @ w``, stacked into one) instead of one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from dmlax import checks
from dmlax.losses import class_sharding
from dmlax.losses import normalization
from dmlax.losses.softmax import smoothed_cross_entropy

# ||alpha w_y + w_j||^2 vanishes when w_j = -w_y and alpha = 1; the floor keeps the logit and
# its gradient finite there (the direction of a zero vector is undefined anyway).
_MIN_SQ_NORM = 1e-6


def min_feature_dim(num_classes: int) -> int:
  """Smallest feature width M for which C unit class vectors can have pairwise dot -1/(C-1).

  ``M_min = C - 1`` (Li & Wang, "Learning discriminative features via weights-biased softmax
  loss", Pattern Recognition 2020, sec. 3);
  `simplex_classifier` builds such a (C - 1, C) classifier.

  Example:
    >>> min_feature_dim(10)
    9
  """
  num_classes = _check_num_classes(num_classes)
  return num_classes - 1


def simplex_classifier(num_classes: int, dtype=jnp.float32) -> jax.Array:
  r"""The (C - 1, C) classifier of eq. 3: unit columns, pairwise dot products -1/(C - 1) (eq. 4).

  .. math::
    W_2 = [1, -1],\qquad
    W_C = \begin{bmatrix} \sqrt{1 - (C-1)^{-2}}\, W_{C-1} & 0 \\ -\tfrac{1}{C-1}\mathbf 1^\top & 1
    \end{bmatrix}

  (Li & Wang, PR 2020, sec. 3), the vertices of a regular simplex centred at the origin. Built in
  closed form in float64 (row ``r`` is the row added at step ``r + 2`` times the scale factors of
  every later step) and cast to `dtype`.

  Example:
    >>> w = simplex_classifier(3)  # columns at 120 degrees
    >>> w.shape, bool(jnp.allclose(w.T @ w, 1.5 * jnp.eye(3) - 0.5, atol=1e-6))
    ((2, 3), True)
  """
  num_classes = _check_num_classes(num_classes)
  c = num_classes
  k = np.arange(3, c + 1, dtype=np.float64)  # steps that rescale the rows built before them
  factors = np.sqrt(1.0 - 1.0 / (k - 1.0) ** 2)
  # scale[r] = product of the factors of steps r + 3 .. C (row r is created at step r + 2).
  scale = np.ones(c - 1)
  if c > 2:
    suffix = np.cumprod(factors[::-1])[::-1]  # suffix[i] = prod factors[i:]
    scale[: c - 2] = suffix[np.arange(c - 2)]
  rows = np.arange(c - 1)[:, None]
  cols = np.arange(c)[None, :]
  base = np.where(cols < rows + 1, -1.0 / (rows + 1.0), np.where(cols == rows + 1, 1.0, 0.0))
  base[0, :2] = (1.0, -1.0)  # W_2 = [1, -1] starts the recursion
  return jnp.asarray(base * scale[:, None], dtype=dtype)


def _check_num_classes(num_classes) -> int:
  if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
    raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
  if num_classes < 2:
    raise ValueError(f"num_classes must be >= 2, got {num_classes}")
  return int(num_classes)


def weights_biased_softmax_loss(
    features: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike,
    *,
    alpha: ArrayLike = 1.0,
    stop_gradient_biased: bool = False,
    reduction: str = "mean",
    class_axis_name: str | None = None,
) -> jax.Array:
  r"""W-Softmax: softmax CE where each negative class is pulled towards the target (eqs. 1, 11-13).

  .. math::
    \ell_i = -\log \frac{e^{w_{y}^\top x}}{e^{w_{y}^\top x} + \sum_{j \ne y}
      e^{w_j'^\top x}},\qquad
    w_j' = \frac{\alpha w_{y} + w_j}{\|\alpha w_{y} + w_j\|},\qquad
    w_c = \frac{W_{:,c}}{\|W_{:,c}\|}

  Li & Wang, "Learning discriminative features via weights-biased softmax loss", Pattern
  Recognition 2020. No bias (the paper removes the last layer's biases, sec. 4.2); columns
  normalised, features not. ``alpha = 0`` is softmax with normalised columns; test-time logits
  are ``x @ w``. Computed without per-sample weights:
  ``s = (x @ W) / ||W_{:,c}||``, ``g = (w[:, y].T @ W) / ||W_{:,c}||`` (or rows of the Gram
  matrix ``w.T @ w`` when B > C), logit ``(alpha s_y + s_j) / sqrt(max(alpha^2 + 2 alpha g_j + 1,
  1e-6))``: two (B, D, C) products where softmax has one, computed as one product of the stacked
  (2B, D) ``[x; W[:, y].T]`` with W. Logits accumulate in float32 (float64 for float64 inputs).

  ``stop_gradient_biased=True`` is an ablation, not the paper's loss and not the default: the
  biased negative weights :math:`w_j'` are constants for differentiation (``stop_gradient``), so
  the classifier receives gradient only through the target logit :math:`w_y^\top x`, while the
  features still see the biased negatives. It isolates the feature-side pull that the paper's
  Fig. 5 reports (mean angle between features and their class weight, eq. 14, falling as alpha
  grows) from the effect of the biased weights on the classifier. Its value equals the default's.

  With `class_axis_name` the biased logits of a shard's classes need only the target columns
  ``w_y``, gathered from the shard holding each label by one (B, D + 1) ``psum``; ``s_y`` is a
  (B,) ``psum`` and the softmax normaliser a (B,) ``pmax`` and ``psum``
  (`dmlax.losses.class_sharding`).

  Args:
    features: (B, D) floating features.
    labels: (B,) integer labels in [0, C).
    weights: (D, C) classifier weights, one column per class.
    alpha: margin parameter, a real >= 0 (the paper uses 0.5 - 1.5); may be traced.
    stop_gradient_biased: the ablation above (structural, a Python bool).
    reduction: "mean", "sum" or "none" (per example, shape (B,)).
    class_axis_name: mesh axis over which `weights` is sharded by class (inside ``shard_map``:
      the local contiguous block of columns, labels global); the value is the full-class one.

  Example:
    >>> x = jnp.array([[2.0, 0.0]]); w = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> loss = weights_biased_softmax_loss(x, jnp.array([0]), w, alpha=1.0)
    >>> bool(jnp.isclose(loss, jnp.log1p(jnp.exp(jnp.sqrt(2.0) - 2.0))))
    True
  """
  checks.check_reduction(reduction)
  batch, dim = checks.check_features_labels(features, labels)
  num_classes = checks.check_classifier(weights, dim)
  checks.check_scalar(alpha, "alpha", nonnegative=True)
  if not isinstance(stop_gradient_biased, bool):
    raise ValueError(f"stop_gradient_biased must be a Python bool, got {stop_gradient_biased!r}")
  valid = checks.label_guard(labels, class_sharding.num_classes(num_classes, class_axis_name))
  dtype = checks.compute_dtype(features, weights)
  x = jnp.asarray(features).astype(dtype)
  labels = jnp.asarray(labels)
  weights = jnp.asarray(weights)
  w_raw = weights.astype(dtype)
  # The column norms scale the (B, C) products, not the (D, C) weights: normalising W first
  # writes a second (D, C) array and sends its gradient through two more (D, C) passes.
  inv_norm = normalization.inverse_norm(weights, axis=0)  # (1, C), compute dtype
  if not checks.is_traced(alpha) and alpha == 0:
    s = jnp.matmul(x, w_raw, preferred_element_type=dtype) * inv_norm
    per_example = smoothed_cross_entropy(s, labels, 0.0, class_axis_name=class_axis_name)
  else:
    alpha = jnp.asarray(alpha, dtype)
    s, s_b, g = _products(x, w_raw, inv_norm, labels, dtype, stop_gradient_biased,
                          class_axis_name)
    target_mask = class_sharding.local_mask(labels, num_classes, class_axis_name)
    s_y = class_sharding.label_column(s_b, labels, class_axis_name)[:, None]
    sq_norm = alpha * alpha + 2.0 * alpha * g + 1.0
    negative = (alpha * s_y + s_b) * jax.lax.rsqrt(jnp.maximum(sq_norm, _MIN_SQ_NORM))
    # The target column of the formula is s_y * (1 + alpha) / (1 + alpha): use s_y exactly.
    logits = jnp.where(target_mask, s, negative)
    # Softmax CE with the target logit already at hand: no second gather of it, and no (B, C)
    # scatter of its gradient.
    target = s_y[:, 0]
    if stop_gradient_biased:  # the ablation's target logit keeps its gradient into W
      target = class_sharding.label_column(s, labels, class_axis_name)
    per_example = class_sharding.logsumexp(logits, class_axis_name) - target
  return checks.reduce_loss(checks.nan_where_invalid(per_example, valid), reduction)


def _products(x, w_raw, inv_norm, labels, dtype, stop_gradient_biased, class_axis_name):
  """The (B, C) products of W-Softmax: ``s = x @ w``, ``s_b`` (s, or for the ablation s with W a
  constant) and ``g = w_y.T @ w`` (unit columns ``w``), from raw (D, C_local) weights `w_raw` and
  their (1, C_local) inverse norms.

  Without the ablation one product of the stacked (2B, D) ``[x; W[:, y].T]`` with W gives s and
  g together: one pass over W forward and one per gradient instead of two each, and one dW, not
  a sum of two. With B > C (one device) the Gram matrix ``w.T w`` is the smaller product.
  """
  batch, num_local = x.shape[0], w_raw.shape[1]
  if stop_gradient_biased:
    raw, inv = map(jax.lax.stop_gradient, (w_raw, inv_norm))
  else:
    raw, inv = w_raw, inv_norm
  gram = class_axis_name is None and batch > num_local
  if gram or stop_gradient_biased:  # s and g from separate products
    s = jnp.matmul(x, w_raw, preferred_element_type=dtype) * inv_norm
    s_b = jnp.matmul(x, raw, preferred_element_type=dtype) * inv if stop_gradient_biased else s
  if gram:
    w_b = raw * inv
    return s, s_b, jnp.take(w_b.T @ w_b, labels, axis=0, mode="clip")
  raw_y, inv_y = _target_rows(raw, inv, labels, dtype, class_axis_name)
  if stop_gradient_biased:
    g = jnp.matmul(raw_y, raw, preferred_element_type=dtype)
  else:
    both = jnp.matmul(jnp.concatenate([x, raw_y]), w_raw, preferred_element_type=dtype)
    s = s_b = both[:batch] * inv_norm
    g = both[batch:]
  # The norms scale the (B, C) product, not the gathered columns: their gradient is then a row
  # sum over (B, C), not a column reduction over (B, D).
  return s, s_b, g * inv_y[:, None] * inv


def _target_rows(raw, inv, labels, dtype, class_axis_name):
  """(B, D) raw target columns ``W[:, y].T`` of the (D, C_local) `raw` weights and their (B,)
  inverse norms (from the local inverse norms `inv`, (1, C_local)).

  With `class_axis_name` each shard gathers the labels it holds (zeros elsewhere) and one
  ``psum`` of (B, D + 1) assembles them.
  """
  num_local = raw.shape[1]
  local = labels - class_sharding.offset(num_local, class_axis_name)
  raw_y = jnp.take(raw, local, axis=1, mode="clip").T.astype(dtype)
  inv_y = jnp.take(inv[0], local, mode="clip")
  if class_axis_name is None:
    return raw_y, inv_y
  held = (local >= 0) & (local < num_local)
  both = jnp.where(held[:, None], jnp.concatenate([raw_y, inv_y[:, None]], axis=1), 0.0)
  both = class_sharding.psum(both, class_axis_name)
  return both[:, :-1], both[:, -1]
