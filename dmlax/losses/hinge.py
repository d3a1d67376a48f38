"""Multi-class hinge (SVM) losses on linear classifier scores: Crammer-Singer and Weston-Watkins.

The baseline "Hinge Loss" rows of Li & Wang's W-Softmax paper ("Learning discriminative features
via weights-biased softmax loss", Pattern Recognition 2020, Tables 1-2) train the same network
with a multi-class hinge loss in place of softmax cross-entropy. The paper gives neither a formula
nor a citation for it; dmlax offers the two standard multi-class hinge losses and defaults to
Crammer & Singer's, the one-term form (a max over negatives, like softmax's log-sum-exp).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from dmlax import checks

VARIANTS = ("crammer_singer", "weston_watkins")


def multiclass_hinge_loss(
    features: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike,
    bias: ArrayLike | None = None,
    *,
    margin: ArrayLike = 1.0,
    variant: str = "crammer_singer",
    reduction: str = "mean",
) -> jax.Array:
  r"""Multi-class hinge loss of the scores ``z = x W + b``.

  .. math::
    \text{crammer\_singer:}\quad \ell_i = \max\bigl(0,\ \Delta + \max_{j \ne y_i} z_{ij}
      - z_{i y_i}\bigr),\qquad
    \text{weston\_watkins:}\quad \ell_i = \sum_{j \ne y_i} \max(0,\ \Delta + z_{ij} - z_{i y_i})

  Crammer & Singer, "On the Algorithmic Implementation of Multiclass Kernel-based Vector
  Machines", JMLR 2001 (unit margin there); Weston & Watkins, "Support Vector Machines for
  Multi-Class Pattern Recognition", ESANN 1999. With C = 2 both are the binary hinge loss of the
  score difference. No weight decay term: add the classifier's L2 penalty in the optimiser, as
  the paper's training does (weight regularisation 0.0005). Computed in float32 or wider; both
  forward and reverse mode (``jax.jacfwd``, ``jax.hessian``) work (the Hessian is zero almost
  everywhere).

  Args:
    features: (B, D) floating features.
    labels: (B,) integer labels in [0, C).
    weights: (D, C) classifier weights.
    bias: optional (C,) bias.
    margin: Delta >= 0 (may be traced).
    variant: "crammer_singer" or "weston_watkins" (structural).
    reduction: "mean", "sum" or "none" (per example, shape (B,)).

  Example:
    >>> x = jnp.array([[2.0, 0.0, 0.0], [0.5, 0.0, 0.0]]); w = jnp.eye(3)
    >>> multiclass_hinge_loss(x, jnp.array([0, 0]), w, reduction="none").tolist()
    [0.0, 0.5]
    >>> multiclass_hinge_loss(x, jnp.array([0, 0]), w, variant="weston_watkins",
    ...                       reduction="none").tolist()
    [0.0, 1.0]
  """
  checks.check_reduction(reduction)
  _, dim = checks.check_features_labels(features, labels)
  num_classes = checks.check_classifier(weights, dim)
  checks.check_bias(bias, num_classes)
  checks.check_scalar(margin, "margin", nonnegative=True)
  checks.check_in(variant, VARIANTS, "variant")
  valid = checks.label_guard(labels, num_classes)
  x, w = checks.as_compute(features, weights)
  labels = jnp.asarray(labels)
  z = x @ w
  if bias is not None:
    z = z + jnp.asarray(bias).astype(z.dtype)
  target_mask = checks.class_mask(labels, num_classes)
  z_y = jnp.sum(jnp.where(target_mask, z, 0.0), axis=1, keepdims=True)
  violation = jnp.asarray(margin, z.dtype) + z - z_y  # (B, C)
  if variant == "crammer_singer":
    per_example = jnp.maximum(jnp.max(jnp.where(target_mask, -jnp.inf, violation), axis=1), 0.0)
  else:
    per_example = jnp.sum(jnp.where(target_mask, 0.0, jax.nn.relu(violation)), axis=1)
  return checks.reduce_loss(checks.nan_where_invalid(per_example, valid), reduction)
