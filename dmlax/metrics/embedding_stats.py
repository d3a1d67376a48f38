"""Statistics of learned embeddings that the papers report beside accuracy.

`class_separability` (SGSL Table 5), `fisher_scores` and `feature_correlations` (GSL Fig. 4),
`mean_class_angles` (W-Softmax Fig. 5). Labels are concrete here (evaluation time): they are
mapped to 0..M-1 on the host and the statistics are computed with segment sums in JAX.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from dmlax.checks import check_classifier, check_features_labels
from dmlax.metrics.tiles import check_embeddings


def _dense_labels(labels) -> tuple[np.ndarray, int]:
  _, dense = np.unique(np.asarray(labels), return_inverse=True)
  return dense.astype(np.int32), int(dense.max()) + 1


@functools.partial(jax.jit, static_argnames=("num_classes",))
def _scatter_diagonals(x, dense, *, num_classes):
  """Per component: between-class s_b and within-class s_w scatter (diagonals), float32."""
  n = x.shape[0]
  x = x.astype(jnp.float32)
  mean_square = jnp.mean(x * x, axis=0)
  # Centred first, so that a large common offset does not swamp the scatter in float32.
  x = x - jnp.mean(x, axis=0)
  sizes = jax.ops.segment_sum(jnp.ones(n), dense, num_segments=num_classes)
  means = jax.ops.segment_sum(x, dense, num_segments=num_classes) / sizes[:, None]
  mu0 = jnp.mean(x, axis=0)
  s_b = jnp.sum((sizes / n)[:, None] * (means - mu0) ** 2, axis=0)
  s_w = jnp.mean((x - means[dense]) ** 2, axis=0)
  return s_b, s_w, mean_square


def class_separability(embeddings: ArrayLike,
                       labels: ArrayLike) -> tuple[float, float, float]:
  """Class separability criterion CSC = tr(S_b) / tr(S_w) (SGSL paper eq. 9).

    S_b = sum_i P_i (mu_i - mu_0)(mu_i - mu_0)^T,  S_w = sum_i P_i E_i[(x - mu_i)(x - mu_i)^T]

  with P_i = N_i / N the class frequency, mu_i the class mean and mu_0 the global mean
  (Theodoridis & Koutroumbas, Pattern Recognition, 2003, section 5.6). Computed on the
  embeddings as given (normalise them first to match an evaluation on unit embeddings).

  Returns:
    `(csc, trace_sb, trace_sw)` as floats.

  Example:
    >>> x = jnp.array([[0.0, 0.0], [0.0, 2.0], [4.0, 0.0], [4.0, 2.0]])
    >>> j, tr_b, tr_w = class_separability(x, jnp.array([0, 0, 1, 1]))  # tr S_b = 4, tr S_w = 1
    >>> round(j, 4), round(tr_b, 4), round(tr_w, 4)
    (4.0, 4.0, 1.0)
  """
  check_embeddings(embeddings, "embeddings")
  check_features_labels(embeddings, labels, "embeddings")
  dense, m = _dense_labels(labels)
  s_b, s_w, _ = _scatter_diagonals(jnp.asarray(embeddings), dense, num_classes=m)
  trace_sb, trace_sw = jnp.sum(s_b), jnp.sum(s_w)
  return float(trace_sb / trace_sw), float(trace_sb), float(trace_sw)


def fisher_scores(features: ArrayLike, labels: ArrayLike) -> jax.Array:
  """Fisher discriminant score of each feature component, in [0, 1] (GSL paper Fig. 4a).

    J_j = s_b[j] / (s_b[j] + s_w[j]),  s_b[j] = sum_i P_i (mu_ij - mu_0j)^2,
    s_w[j] = sum_i P_i E_i[(x_j - mu_ij)^2]

  Fukunaga's (1990) criterion tr(S_b) / tr(S_m) for one component, S_m = S_b + S_w the mixture
  scatter, hence in [0, 1]: 1 when the component is constant within every class, 0 when its
  class means coincide. A component constant over the whole set (variance below 1e-10 of its
  mean square, i.e. float32 rounding) scores 0.

  Returns:
    (D,) float32 scores.

  Example:
    >>> x = jnp.array([[0.0, 1.0], [0.0, -1.0], [2.0, 1.0], [2.0, -1.0]])
    >>> fisher_scores(x, jnp.array([0, 0, 1, 1])).round(4).tolist()
    [1.0, 0.0]
  """
  check_embeddings(features, "features")
  check_features_labels(features, labels, "features")
  dense, m = _dense_labels(labels)
  s_b, s_w, mean_square = _scatter_diagonals(jnp.asarray(features), dense, num_classes=m)
  total = s_b + s_w
  # Below float32 resolution of the component's magnitude its variance is rounding noise.
  varies = total > 1e-10 * mean_square
  return jnp.where(varies, s_b / jnp.where(varies, total, 1.0), 0.0)


def feature_correlations(features: ArrayLike) -> jax.Array:
  """Pearson correlation coefficients between feature components (GSL paper Fig. 4b).

    rho[j, l] = cov(x_j, x_l) / (std(x_j) std(x_l))

  Fig. 4b is the histogram of the off-diagonal entries, `rho[np.triu_indices(D, 1)]`. A
  component constant over the set has zero correlation with every other (and 1 with itself).

  Returns:
    (D, D) float32 matrix, as `np.corrcoef(features, rowvar=False)`.

  Example:
    >>> x = jnp.array([[1.0, 2.0, 0.0], [2.0, 4.0, 1.0], [3.0, 6.0, 0.0]])
    >>> feature_correlations(x).round(4).tolist()[0]
    [1.0, 1.0, 0.0]
  """
  check_embeddings(features, "features")
  return _correlations(jnp.asarray(features))


@jax.jit
def _correlations(x):
  x = x.astype(jnp.float32)
  x = x - jnp.mean(x, axis=0)
  cov = jnp.matmul(x.T, x, precision=jax.lax.Precision.HIGHEST) / x.shape[0]
  std = jnp.sqrt(jnp.diagonal(cov))
  safe = jnp.where(std > 0, std, 1.0)
  rho = cov / safe[:, None] / safe[None, :]
  rho = jnp.where((std[:, None] > 0) & (std[None, :] > 0), rho, 0.0)
  return jnp.where(jnp.eye(x.shape[1], dtype=bool), 1.0, jnp.clip(rho, -1.0, 1.0))


def mean_class_angles(features: ArrayLike, labels: ArrayLike, weights: ArrayLike) -> jax.Array:
  """Mean angle between each class's features and its classifier column (W-Softmax eq. 14).

    theta_i = (1 / N_i) sum_j arccos( w_i . x_i^(j) / (|w_i| |x_i^(j)|) ),  in radians

  Args:
    features: (N, D) features.
    labels: (N,) integer labels in [0, C).
    weights: (D, C) classifier, one column per class (the layout of docs/spec.md).

  Returns:
    (C,) float32 mean angles in radians; NaN for a class with no feature.

  Example:
    >>> w = jnp.eye(2)
    >>> x = jnp.array([[1.0, 1.0], [1.0, 0.0], [0.0, 3.0]])
    >>> (mean_class_angles(x, jnp.array([0, 0, 1]), w) * 180 / jnp.pi).round(1).tolist()
    [22.5, 0.0]
  """
  check_embeddings(features, "features")
  _, dim = check_features_labels(features, labels, "features")
  num_classes = check_classifier(weights, dim)
  y = np.asarray(labels)
  bad = y[(y < 0) | (y >= num_classes)]
  if bad.size:
    raise ValueError(
        f"labels must lie in [0, {num_classes}); found {np.unique(bad)[:10].tolist()}")
  return _class_angles(jnp.asarray(features), jnp.asarray(y), jnp.asarray(weights),
                       num_classes=num_classes)


@functools.partial(jax.jit, static_argnames=("num_classes",))
def _class_angles(x, y, w, *, num_classes):
  x = x.astype(jnp.float32)
  w = w.astype(jnp.float32)
  x = x / jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), 1e-12)
  w = w / jnp.maximum(jnp.linalg.norm(w, axis=0, keepdims=True), 1e-12)
  cos = jnp.sum(x * w.T[y], axis=1)
  angles = jnp.arccos(jnp.clip(cos, -1.0, 1.0))
  total = jax.ops.segment_sum(angles, y, num_segments=num_classes)
  count = jax.ops.segment_sum(jnp.ones_like(angles), y, num_segments=num_classes)
  return jnp.where(count > 0, total / jnp.where(count > 0, count, 1.0), jnp.nan)
