"""Stop-gradient softmax loss, SGSL (Yang et al., AAAI 2023), alone and beside softmax CE.

SGSL scores cosine similarities between features and classifier columns but sends no gradient
into the classifier. The cosines are the softmax logits ``x @ W`` rescaled by the inverse norms of
``x``'s rows and ``W``'s columns, so one `jax.custom_vjp` primitive returns both from one matmul
and, in the backward pass, folds the cosine cotangent into the logit cotangent before the single
``(.) @ W.T``: softmax + SGSL costs the three big matmuls of softmax CE alone.

With `class_axis_name` (classifier columns sharded by class inside ``shard_map``,
`dmlax.losses.class_sharding`) each shard computes its block of logits and cosines; the
features enter the custom VJP cast to vary over the class axis, so the transpose of that cast
sums the shards' partial feature cotangents (one (B, D) ``psum``).

Because of that `jax.custom_vjp`, these losses support reverse mode only: ``jax.grad``,
``jax.vjp`` and ``jax.jacrev`` work, ``jax.jvp``, ``jax.jacfwd`` and ``jax.hessian`` raise (JAX
cannot differentiate a custom VJP in forward mode). Computations run in
`dmlax.checks.compute_dtype` (float32, or float64 for float64 inputs).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from dmlax import checks
from dmlax.losses import class_sharding
from dmlax.losses import normalization
from dmlax.losses.softmax import smoothed_cross_entropy


def _norm_parts(x, w):
  """Inverse norms and the mask of rows of x whose norm is above the clamp (there the norm has a
  gradient; below it ``1 / eps`` is a constant)."""
  (x32,) = checks.as_compute(x)
  sq = jnp.sum(jnp.square(x32), axis=1, keepdims=True)
  inv_x = jax.lax.rsqrt(jnp.maximum(sq, normalization.NORM_EPS ** 2))
  unclamped = sq > normalization.NORM_EPS ** 2
  inv_w = normalization.inverse_norm(w, axis=0)  # (1, C)
  return inv_x, unclamped, inv_w


def _forward(x, w):
  logits = jnp.matmul(x, w, preferred_element_type=checks.compute_dtype(x, w))
  inv_x, unclamped, inv_w = _norm_parts(x, w)
  cos = logits * inv_x * inv_w
  return logits, cos, (x, w, cos, inv_x, unclamped, inv_w)


def _feature_cotangent(x, w, cos, inv_x, unclamped, inv_w, g_logits, g_cos):
  """d/dx of <g_logits, x @ W> + <g_cos, normalize(x) @ normalize(W)>, W held constant.

  With x_hat = x / ||x||: d cos / d x_hat = g_cos @ w_hat.T, and the projection of that onto
  x_hat is ``sum_j g_cos[:, j] cos[:, j]`` (no matmul needed), so
  ``dx = (g_logits + g_cos * inv_w * inv_x) @ W.T - x inv_x^2 sum_j g_cos cos``.
  """
  coef = g_cos * inv_w * inv_x
  if g_logits is not None:
    coef = coef + g_logits
  dtype = checks.compute_dtype(x, w)
  dx = jnp.matmul(coef, w.T, preferred_element_type=dtype)
  radial = jnp.sum(g_cos * cos, axis=1, keepdims=True)
  dx = dx - jnp.where(unclamped, x.astype(dtype) * (inv_x * inv_x) * radial, 0.0)
  return dx.astype(x.dtype)


@jax.custom_vjp
def logits_and_cosine(x: jax.Array, w: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``(x @ W, normalize(x) @ stop_gradient(normalize(W)))`` from one matmul, in float32.

  The gradient into `w` is that of the logits only: ``x.T @ g_logits``.
  """
  logits, cos, _ = _forward(x, w)
  return logits, cos


def _lc_fwd(x, w):
  logits, cos, res = _forward(x, w)
  return (logits, cos), res


def _lc_bwd(res, cotangents):
  x, w, cos, inv_x, unclamped, inv_w = res
  g_logits, g_cos = cotangents
  dx = _feature_cotangent(x, w, cos, inv_x, unclamped, inv_w, g_logits, g_cos)
  dw = jnp.matmul(x.T, g_logits, preferred_element_type=checks.compute_dtype(x, w))
  return dx, dw.astype(w.dtype)


logits_and_cosine.defvjp(_lc_fwd, _lc_bwd)


@jax.custom_vjp
def stop_gradient_cosine(x: jax.Array, w: jax.Array) -> jax.Array:
  """``normalize(x) @ stop_gradient(normalize(W))`` in float32; zero gradient into `w`."""
  return _forward(x, w)[1]


def _sc_fwd(x, w):
  _, cos, res = _forward(x, w)
  return cos, res


def _sc_bwd(res, g_cos):
  x, w, cos, inv_x, unclamped, inv_w = res
  dx = _feature_cotangent(x, w, cos, inv_x, unclamped, inv_w, None, g_cos)
  return dx, jnp.zeros_like(w)


stop_gradient_cosine.defvjp(_sc_fwd, _sc_bwd)


def _sgsl_per_example(cos, labels, gamma, class_axis_name=None):
  """softplus(LSE^gamma_{j != y}(cos_j) - cos_y), eq. 6, over all shards' classes."""
  target_mask = class_sharding.local_mask(labels, cos.shape[1], class_axis_name)
  cos_y = class_sharding.label_column(cos, labels, class_axis_name)
  negatives = jnp.where(target_mask, -jnp.inf, gamma * cos)
  lse = class_sharding.logsumexp(negatives, class_axis_name) / gamma
  return jax.nn.softplus(lse - cos_y)


def _check_common(features, labels, weights, gamma):
  _, dim = checks.check_features_labels(features, labels)
  num_classes = checks.check_classifier(weights, dim)
  checks.check_scalar(gamma, "gamma", positive=True)
  return num_classes


def _varying_axes(x) -> frozenset:
  """The manual mesh axes `x` varies over inside ``shard_map`` (empty outside)."""
  aval = jax.typeof(x)
  manual = getattr(aval, "manual_axis_type", None)  # newer JAX; older JAX names it ``vma``
  return frozenset(manual.varying if manual is not None else getattr(aval, "vma", ()))


def _same_mesh_axes(x, w):
  """`x` and `w` cast to vary over the same manual mesh axes (identity outside ``shard_map``).

  Inside ``shard_map`` the custom VJPs' cotangents vary over every axis either input varies over
  (the batch's and the classes'), and a custom VJP must return each cotangent with its input's
  type: casting both inputs first makes the transposes of the casts ``psum`` the per-shard
  partial cotangents (``dx`` over the class shards, ``dW`` over the batch shards).
  """
  vx, vw = _varying_axes(x), _varying_axes(w)
  if vw - vx:
    x = jax.lax.pcast(x, tuple(sorted(vw - vx)), to="varying")
  if vx - vw:
    w = jax.lax.pcast(w, tuple(sorted(vx - vw)), to="varying")
  return x, w


def stop_gradient_softmax_loss(
    features: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike,
    *,
    gamma: float = 30.0,
    reduction: str = "mean",
    class_axis_name: str | None = None,
) -> jax.Array:
  r"""Stop-gradient softmax loss, SGSL (eq. 6).

  .. math::
    \ell_i = \mathrm{softplus}\Big(\frac1\gamma \log \sum_{j \ne y_i}
      e^{\gamma \cos_{ij}} - \cos_{i y_i}\Big),\qquad
    \cos_{ij} = \hat x_i^\top \mathrm{sg}(\hat w_j)

  Yang et al., "Stop-Gradient Softmax Loss for Deep Metric Learning", AAAI 2023. Features and
  classifier columns are L2-normalised (``v / max(||v||, 1e-12)``); no gradient reaches
  `weights` (exactly zero); the gradient into `features` equals that of the same formula with
  ``jax.lax.stop_gradient(weights)``. The paper adds it to label-smoothed softmax CE: see
  `softmax_sgsl_loss`.

  Args:
    features: (B, D) floating features.
    labels: (B,) integer labels in [0, C).
    weights: (D, C) classifier weights, one column per class.
    gamma: LSE sharpness (paper default 30; Table 4 sweeps 1..70); may be traced.
    reduction: "mean", "sum" or "none" (per example, shape (B,)).
    class_axis_name: mesh axis over which `weights` is sharded by class (inside ``shard_map``:
      the local contiguous block of columns, labels global); the value is the full-class one.

  Example:
    >>> x = jnp.array([[1.0, 0.0]]); w = jnp.eye(2)
    >>> loss = stop_gradient_softmax_loss(x, jnp.array([0]), w, gamma=1.0)
    >>> bool(jnp.isclose(loss, jax.nn.softplus(-1.0)))  # softplus(0 - 1)
    True
  """
  checks.check_reduction(reduction)
  num_classes = _check_common(features, labels, weights, gamma)
  valid = checks.label_guard(labels, class_sharding.num_classes(num_classes, class_axis_name))
  labels = jnp.asarray(labels)
  cos = stop_gradient_cosine(*_same_mesh_axes(jnp.asarray(features), jnp.asarray(weights)))
  per_example = _sgsl_per_example(cos, labels, gamma, class_axis_name)
  return checks.reduce_loss(checks.nan_where_invalid(per_example, valid), reduction)


def softmax_sgsl_loss(
    features: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike,
    *,
    gamma: float = 30.0,
    beta: float = 1.0,
    label_smoothing: float = 0.1,
    start_below: float = 3.0,
    axis_name: str | None = None,
    reduction: str = "mean",
    class_axis_name: str | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  r"""Label-smoothed softmax CE plus SGSL, the total loss of eq. 10 (eq. 7 with beta).

  .. math::
    L = L_\mathrm{softmax}(x W;\ \epsilon) + \beta\, \mathbb 1[L_\mathrm{softmax} < s]\,
      L_\mathrm{SGSL}(x, \mathrm{sg}(W))

  Yang et al., AAAI 2023: SGSL "starts to join the training only when the value of softmax is
  smaller than 3" (`start_below`), judged on this batch's softmax loss (the global batch with
  `axis_name`); label smoothing 0.1. Both parts share one matmul ``x @ W`` (`logits_and_cosine`),
  and the gradient into `weights` is exactly the label-smoothed softmax gradient. No bias.

  The gate couples the batch: it is always judged on the (global-)batch mean softmax loss,
  whatever the `reduction`; ``reduction="none"`` returns per-example totals
  ``softmax_i + beta * gate * sgsl_i`` (whose mean is the "mean" total) and per-example aux
  values.

  Args:
    features: (B, D) floating features.
    labels: (B,) integer labels in [0, C).
    weights: (D, C) classifier weights.
    gamma: SGSL's LSE sharpness (may be traced, as may the next three).
    beta: SGSL weight.
    label_smoothing: epsilon of the softmax part, in [0, 1).
    start_below: SGSL is added only when the (global-)batch softmax loss is below this.
    axis_name: mapped axis of the global batch (pmap / shard_map): both means and the gate are
      over the global batch.
      Inside ``jax.shard_map``, ``jax.grad`` of the value is the global-batch gradient; inside
      ``jax.pmap`` it is that times the device count (psum transposes to psum there).
    reduction: "mean", "sum" (over the global batch with `axis_name`) or "none" (per example).
    class_axis_name: mesh axis over which `weights` is sharded by class (inside ``shard_map``:
      the local contiguous block of columns, labels global). The softmax part, SGSL and the gate
      are those of all classes (the gate sees the full-class softmax loss); composes with
      `axis_name` on a (data x model) mesh.

  Returns:
    ``(total, aux)``: the total, and ``aux = {"softmax": ..., "sgsl": ..., "sgsl_active":
    bool}`` (the SGSL value is reported even when it is not added), reduced alike.

  Example:
    >>> x = jnp.array([[1.0, 0.0]]); w = jnp.eye(2)
    >>> total, aux = softmax_sgsl_loss(x, jnp.array([0]), w, gamma=1.0, label_smoothing=0.0)
    >>> bool(jnp.isclose(total, jnp.log1p(jnp.exp(-1.0)) + jax.nn.softplus(-1.0)))
    True
  """
  checks.check_reduction(reduction)
  num_classes = _check_common(features, labels, weights, gamma)
  checks.check_scalar(label_smoothing, "label_smoothing", nonnegative=True, below=1.0)
  checks.check_scalar(beta, "beta")
  checks.check_scalar(start_below, "start_below")
  valid = checks.label_guard(labels, class_sharding.num_classes(num_classes, class_axis_name))
  labels = jnp.asarray(labels)
  logits, cos = logits_and_cosine(*_same_mesh_axes(jnp.asarray(features), jnp.asarray(weights)))
  softmax_i = checks.nan_where_invalid(smoothed_cross_entropy(
      logits, labels, label_smoothing, class_axis_name=class_axis_name), valid)
  sgsl_i = checks.nan_where_invalid(
      _sgsl_per_example(cos, labels, gamma, class_axis_name), valid)
  gate_value = checks.reduce_loss(softmax_i, "mean", axis_name)
  active = jax.lax.stop_gradient(gate_value) < start_below
  softmax = checks.reduce_loss(softmax_i, reduction, axis_name)
  sgsl = checks.reduce_loss(sgsl_i, reduction, axis_name)
  total = softmax + beta * jnp.where(active, sgsl, 0.0)
  return total, {"softmax": softmax, "sgsl": sgsl, "sgsl_active": active}
