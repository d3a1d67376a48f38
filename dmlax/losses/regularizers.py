"""Regularisers: the multi-proxy regulariser (SoftTriple / MPA eq. 3), center loss, ring loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from dmlax import checks
from dmlax.checks import check_multi_proxies
from dmlax.losses import class_sharding
from dmlax.losses.normalization import inverse_norm

# SoftTriple's reference code (idstcv/SoftTriple) adds 1e-5 under the square root so that the
# gradient stays finite when two centres coincide.
PROXY_REG_EPS = 1e-5


def proxy_regularizer(proxies: ArrayLike, *, class_axis_name: str | None = None) -> jax.Array:
  r"""Spread penalty of the K proxies of each class (SoftTriple, MPA paper eq. 3).

  .. math::
    R = \frac{1}{C K (K-1)} \sum_c \sum_{t < s}
        \sqrt{2 + 10^{-5} - 2\, \hat w_{cs}^\top \hat w_{ct}}

  with :math:`\hat w` the L2-normalised proxies: the sum of distances between same-class centres,
  which pulls them together. Qian et al., "SoftTriple Loss: Deep Metric Learning Without Triplet
  Sampling" (ICCV 2019); Saeki et al.'s MPA paper eq. 3. Matches the reference code
  idstcv/SoftTriple (including its 1e-5 and the divisor ``C K (K - 1)``).
  pytorch-metric-learning's ``SparseCentersRegularizer`` adds ``finfo(dtype).tiny`` instead of
  1e-5 and clamps ``2 cos`` at 2; the values differ by ~1e-5 / (2 distance) per pair. With
  ``K = 1`` there is nothing to spread and the result is 0 (the reference skips the term).

  Every pair lies within one class, so with the classes sharded each device sums the pairs of
  its own block and one scalar ``psum`` over the class axis completes the sum: no proxy block
  leaves its device.

  Args:
    proxies: (C, K, D) proxies, unnormalised.
    class_axis_name: mesh axis over which `proxies` is sharded by class (inside ``shard_map``:
      the local contiguous (C_local, K, D) block); the value is the full-class one.

  Returns:
    A float32 (or wider) scalar.

  Example:
    >>> w = jnp.array([[[1.0, 0.0], [0.0, 1.0]]])  # one class, two orthogonal proxies
    >>> bool(jnp.isclose(proxy_regularizer(w), jnp.sqrt(2 + 1e-5) / 2))  # / (1 * 2 * 1)
    True
  """
  check_multi_proxies(proxies)
  (w,) = checks.as_compute(proxies)
  return regularizer_from_norms(w, inverse_norm(w, axis=-1)[..., 0],
                                class_axis_name=class_axis_name)


def regularizer_from_norms(w: jax.Array, inv_norms: jax.Array, *,
                           class_axis_name: str | None = None) -> jax.Array:
  """`proxy_regularizer` of raw (C, K, D) proxies and their (C, K) inverse norms (no checks).

  Cosines are raw dot products scaled by the inverse norms, so no normalised (C, K, D) copy is
  made; the losses share the inverse norms with their similarity. With `class_axis_name`, `w`
  is the local block of classes and the result the full-class regulariser.
  """
  num_local, k, _ = w.shape
  if k == 1:
    return jnp.zeros((), w.dtype)
  t, s = np.triu_indices(k, 1)
  if len(t) <= 3:
    # Few pairs: elementwise products of static slices (measured faster on CPU at K = 2 than a
    # batched matmul of C tiny (K, K) blocks).
    dots = jnp.stack([jnp.sum(w[:, i] * w[:, j], axis=-1) for i, j in zip(t, s)], axis=1)
  else:
    dots = jnp.einsum("ckd,cld->ckl", w, w)[:, t, s]
  cos = dots * inv_norms[:, t] * inv_norms[:, s]
  total = class_sharding.psum(jnp.sum(jnp.sqrt(2.0 + PROXY_REG_EPS - 2.0 * cos)), class_axis_name)
  num_classes = class_sharding.num_classes(num_local, class_axis_name)
  return total / (num_classes * k * (k - 1))


def center_loss(
    features: ArrayLike,
    labels: ArrayLike,
    centers: ArrayLike,
    *,
    reduction: str = "mean",
) -> jax.Array:
  r"""Center loss: half the squared distance of each feature to its class centre.

  .. math:: \ell_i = \tfrac12 \lVert x_i - c_{y_i} \rVert_2^2

  Wen et al., "A Discriminative Feature Learning Approach for Deep Face Recognition" (ECCV 2016);
  ``reduction="mean"`` divides the sum by the batch size, as the loss value of their
  Caffe layer does. Deliberate difference: the paper updates
  the centres with its own rule ``c_j -= alpha * sum_{i: y_i=j}(c_j - x_i) / (1 + n_j)``; here the
  centres are ordinary parameters that receive the gradient of this loss, which is
  ``sum_{i: y_i=j}(c_j - x_i) / B`` (no ``1 + n_j`` normaliser). Combine with softmax CE with a
  weight (the paper's lambda).

  Args:
    features: (B, D) features.
    labels: (B,) integer labels in [0, C).
    centers: (C, D) class centres.
    reduction: "mean", "sum" or "none" (per example, shape (B,)).

  Example:
    >>> float(center_loss(jnp.array([[1.0, 2.0]]), jnp.array([0]), jnp.zeros((3, 2))))
    2.5
  """
  checks.check_reduction(reduction)
  _, dim = checks.check_features_labels(features, labels)
  checks.check_floating(centers, "centers", ndim=2)
  num_classes, cdim = np.shape(centers)
  if cdim != dim:
    raise ValueError(
        f"centers must have shape (C, {dim}) to match the features, got {np.shape(centers)}")
  valid = checks.label_guard(labels, num_classes)
  x, centers = checks.as_compute(features, centers)
  c = jnp.take(centers, jnp.asarray(labels), axis=0, mode="clip")
  per_example = 0.5 * jnp.sum(jnp.square(x - c), axis=-1)
  return checks.reduce_loss(checks.nan_where_invalid(per_example, valid), reduction)


def ring_loss(
    features: ArrayLike,
    radius: ArrayLike,
    *,
    loss_weight: float = 0.01,
    reduction: str = "mean",
) -> jax.Array:
  r"""Ring loss: pulls feature norms to a learned radius R.

  .. math:: \ell_i = \tfrac{\lambda}{2} (\lVert x_i \rVert_2 - R)^2

  Zheng, Pal and Savvides, "Ring loss: Convex Feature Normalization for Face Recognition"
  (CVPR 2018) (``reduction="mean"`` gives their ``lambda / (2m) sum_i``). `radius` is a
  learnable scalar parameter (the paper initialises it to the mean feature norm); this loss takes
  no labels, so it has no label check. The norm is
  computed as ``sqrt(max(||x||^2, 1e-24))`` so an all-zero feature has a finite gradient.

  Args:
    features: (B, D) features.
    radius: scalar R.
    loss_weight: lambda (0.01 in the paper's face experiments); may be traced.
    reduction: "mean", "sum" or "none" (per example, shape (B,)).

  Example:
    >>> float(ring_loss(jnp.array([[3.0, 4.0]]), 4.0, loss_weight=2.0))  # (2/2) (5 - 4)^2
    1.0
  """
  checks.check_reduction(reduction)
  checks.check_floating(features, "features", ndim=2)
  checks.check_nonempty(np.shape(features)[0])
  if np.ndim(radius) != 0:
    raise ValueError(f"radius must be a scalar, got shape {np.shape(radius)}")
  checks.check_scalar(loss_weight, "loss_weight", nonnegative=True)
  (x,) = checks.as_compute(features)
  norm = jnp.sqrt(jnp.maximum(jnp.sum(jnp.square(x), axis=-1), 1e-24))
  per_example = 0.5 * loss_weight * jnp.square(norm - jnp.asarray(radius, x.dtype))
  return checks.reduce_loss(per_example, reduction)
