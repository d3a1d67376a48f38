"""Margin and modified softmax losses: L-Softmax, SphereFace (A-Softmax), CosFace, ArcFace,
SigSoftmax, Noisy Softmax, Virtual Softmax.

Like the rest of the softmax family: ``fn(features, labels, weights, *, ..., reduction="mean")``
with features (B, D), integer labels (B,) and classifier weights (D, C) (pytorch-metric-learning's
``W`` layout). Everything is computed in float32 or wider. Angles enter only through cosines and
``sqrt(1 - cos^2)``, whose derivative is capped at cos = +-1 (see `_sin_from_cos`), so a feature
lying exactly on a class weight has a finite gradient; the values are exact.

Continuous hyperparameters (``scale``, additive ``margin``, ``lam``, ``noise_scale``) may be traced
arrays; the multiplicative margin of L-Softmax / SphereFace is structural (a static integer).
All of them, `jax.jacfwd` and `jax.hessian` included, differentiate in forward and reverse mode.

Every loss here takes ``class_axis_name``: inside ``shard_map``, `weights` (and `bias`) hold the
local contiguous block of classes of that mesh axis, labels are global, and the value is the
full-class one (`dmlax.losses.class_sharding`); only (B,)-sized psum/pmax cross the class axis.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from dmlax import checks
from dmlax.checks import NORM_EPS
from dmlax.losses import class_sharding

# sqrt(1 - c^2) is either 0 (c = +-1) or >= 3.4e-4 in float32, so capping the derivative's
# denominator at 1e-4 changes nothing but the points c = +-1 themselves.
_SIN_FLOOR = 1e-4


@jax.custom_jvp
def _sin_from_cos(c: jax.Array) -> jax.Array:
  """sin(arccos c) = sqrt(1 - c^2) for c in [-1, 1], with a finite derivative at c = +-1."""
  return jnp.sqrt(jnp.maximum(1.0 - c * c, 0.0))


@_sin_from_cos.defjvp
def _sin_from_cos_jvp(primals, tangents):
  (c,), (t,) = primals, tangents
  s = _sin_from_cos(c)
  return s, -c / jnp.maximum(s, _SIN_FLOOR) * t


def _setup(features, labels, weights, reduction, class_axis_name=None):
  """Checks; returns features and weights in the compute dtype, labels and the validity mask."""
  checks.check_reduction(reduction)
  _, dim = checks.check_features_labels(features, labels)
  num_local = checks.check_classifier(weights, dim)
  valid = checks.label_guard(labels, class_sharding.num_classes(num_local, class_axis_name))
  x, w = checks.as_compute(features, weights)
  return x, w, jnp.asarray(labels), valid


def _norm(x: jax.Array, axis: int) -> jax.Array:
  return jnp.sqrt(jnp.maximum(jnp.sum(jnp.square(x), axis=axis), NORM_EPS * NORM_EPS))


def _ce_with_target(logits, labels, target_logit, valid, reduction, class_axis_name=None,
                    axis_name=None):
  """Cross-entropy where the label column of `logits` is replaced by `target_logit` (B,)."""
  onehot = class_sharding.local_mask(labels, logits.shape[1], class_axis_name)
  logits = jnp.where(onehot, target_logit[:, None], logits)
  per_example = class_sharding.logsumexp(logits, class_axis_name) - target_logit
  return checks.reduce_loss(checks.nan_where_invalid(per_example, valid), reduction, axis_name)


def _target_column(matrix, labels, class_axis_name=None):
  return class_sharding.label_column(matrix, labels, class_axis_name)


def _check_int_margin(margin) -> int:
  if checks.is_traced(margin):
    raise ValueError("margin is the structural multiplicative angular margin (a static positive "
                     "integer); it cannot be traced")
  if int(margin) != margin or margin < 1:
    raise ValueError(f"margin must be a positive integer for the multiplicative angular margin, "
                     f"got {margin}")
  return int(margin)


def _psi(cos: jax.Array, m: int) -> jax.Array:
  r""":math:`\psi(\theta) = (-1)^k \cos(m\theta) - 2k` for :math:`\theta \in [k\pi/m, (k+1)\pi/m]`.

  cos(m theta) by the multiple-angle expansion in cos and sin^2 (a polynomial in cos, smooth at
  +-1); k is piecewise constant, so it carries no gradient.
  """
  sin_sq = 1.0 - cos * cos
  cos_m = sum(((-1) ** n) * math.comb(m, 2 * n) * cos ** (m - 2 * n) * sin_sq ** n
              for n in range(m // 2 + 1))
  theta = jnp.arccos(jnp.clip(jax.lax.stop_gradient(cos), -1.0, 1.0))
  k = jnp.floor(theta * m / math.pi)
  return jnp.where(k % 2 == 0, 1.0, -1.0) * cos_m - 2.0 * k


def annealed_lambda(
    step: ArrayLike,
    *,
    base: float = 1000.0,
    gamma: float = 0.12,
    power: float = 1.0,
    lambda_min: float = 5.0,
) -> jax.Array:
  r"""Annealing of the L-Softmax / SphereFace mixing weight lambda.

  .. math:: \lambda(t) = \max(\lambda_{\min},\ \mathrm{base}\,(1 + \gamma t)^{-\mathrm{power}})

  the schedule of the original Caffe layers (``LargeMarginInnerProduct`` of
  wy1iu/LargeMargin_Softmax_Loss and ``MarginInnerProduct`` of wy1iu/sphereface); the defaults
  are SphereFace's released training prototxt (base 1000, gamma 0.12, power 1, lambda_min 5).
  Losses are pure, so the training loop computes ``lam = annealed_lambda(step)`` and passes it.

  Example:
    >>> float(annealed_lambda(0)), float(annealed_lambda(10**6))
    (1000.0, 5.0)
  """
  step = jnp.asarray(step, jnp.float32)
  return jnp.maximum(lambda_min, base * (1.0 + gamma * step) ** (-power))


def large_margin_softmax_loss(
    features: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike,
    *,
    margin: int = 4,
    lam: ArrayLike = 0.0,
    reduction: str = "mean",
    class_axis_name: str | None = None,
) -> jax.Array:
  r"""Large-margin softmax (L-Softmax), Liu et al., ICML 2016.

  .. math::
    f_{y_i} = \lVert W_{y_i}\rVert \lVert x_i\rVert
              \frac{\lambda \cos\theta_{y_i} + \psi(\theta_{y_i})}{1 + \lambda},\qquad
    f_{j} = \lVert W_j\rVert \lVert x_i\rVert \cos\theta_j \;(j \ne y_i)

  with :math:`\psi(\theta) = (-1)^k \cos(m\theta) - 2k`, :math:`\theta\in[k\pi/m, (k+1)\pi/m]`,
  then softmax cross-entropy; no bias. `lam` is the original layer's annealed mixing weight
  (see `annealed_lambda`); ``lam = 0`` (the default, the end of the annealing) is
  pytorch-metric-learning's ``LargeMarginSoftmaxLoss`` (``scale=1``), which has no annealing.

  Args:
    features: (B, D).
    labels: (B,) integer labels in [0, C).
    weights: (D, C) classifier weights.
    margin: m, a positive integer (structural, static).
    lam: lambda >= 0 (a Python or traced scalar).
    reduction: "mean", "sum" or "none" (per example, shape (B,)).
    class_axis_name: mesh axis over which `weights` is sharded by class (inside ``shard_map``:
      the local contiguous block of classes, labels global); the value is the full-class one.

  Example:
    >>> w = jnp.eye(2)
    >>> loss = large_margin_softmax_loss(jnp.array([[2.0, 0.0]]), jnp.array([0]), w)
    >>> bool(jnp.isclose(loss, jnp.log1p(jnp.exp(-2.0))))  # psi(0) = 1
    True
  """
  m = _check_int_margin(margin)
  checks.check_scalar(lam, "lam", nonnegative=True)
  x, w, labels, valid = _setup(features, labels, weights, reduction, class_axis_name)
  x_norm, w_norm = _norm(x, 1), _norm(w, 0)
  magnitudes = x_norm[:, None] * w_norm[None, :]
  cos = (x @ w) / magnitudes
  cos_y = _target_column(cos, labels, class_axis_name)
  lam = jnp.asarray(lam, x.dtype)
  target = (_target_column(magnitudes, labels, class_axis_name)
            * (lam * cos_y + _psi(cos_y, m)) / (1.0 + lam))
  return _ce_with_target(cos * magnitudes, labels, target, valid, reduction, class_axis_name)


def sphereface_loss(
    features: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike,
    *,
    margin: int = 4,
    lam: ArrayLike = 0.0,
    reduction: str = "mean",
    class_axis_name: str | None = None,
) -> jax.Array:
  r"""SphereFace / A-Softmax, Liu et al., CVPR 2017: L-Softmax with normalised weights.

  .. math::
    f_{y_i} = \lVert x_i\rVert \frac{\lambda\cos\theta_{y_i} + \psi(\theta_{y_i})}{1 + \lambda},
    \qquad f_j = \lVert x_i\rVert \cos\theta_j

  ``lam = 0`` is pytorch-metric-learning's ``SphereFaceLoss``; the authors' Caffe layer anneals
  lambda to a floor of 5 (`annealed_lambda`).

  Args:
    features, labels, weights, margin, lam, reduction, class_axis_name: as in
      `large_margin_softmax_loss`.

  Example:
    >>> loss = sphereface_loss(jnp.array([[2.0, 0.0]]), jnp.array([0]), 3.0 * jnp.eye(2))
    >>> bool(jnp.isclose(loss, jnp.log1p(jnp.exp(-2.0))))
    True
  """
  m = _check_int_margin(margin)
  checks.check_scalar(lam, "lam", nonnegative=True)
  x, w, labels, valid = _setup(features, labels, weights, reduction, class_axis_name)
  x_norm = _norm(x, 1)
  cos = (x @ w) / (x_norm[:, None] * _norm(w, 0)[None, :])
  cos_y = _target_column(cos, labels, class_axis_name)
  lam = jnp.asarray(lam, x.dtype)
  target = x_norm * (lam * cos_y + _psi(cos_y, m)) / (1.0 + lam)
  return _ce_with_target(cos * x_norm[:, None], labels, target, valid, reduction,
                         class_axis_name)


def _cosines(x, w):
  return (x @ w) / (_norm(x, 1)[:, None] * _norm(w, 0)[None, :])


def cosface_loss(
    features: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike,
    *,
    margin: float = 0.35,
    scale: float = 64.0,
    reduction: str = "mean",
    class_axis_name: str | None = None,
) -> jax.Array:
  r"""CosFace / AM-Softmax, Wang et al., CVPR 2018.

  .. math:: f_{y_i} = s(\cos\theta_{y_i} - m),\qquad f_j = s\cos\theta_j

  with features and weight columns normalised. Defaults are the paper's and
  pytorch-metric-learning's ``CosFaceLoss`` (which this matches).

  Args:
    features: (B, D).
    labels: (B,) integer labels in [0, C).
    weights: (D, C) classifier weights.
    margin: m (may be traced).
    scale: s > 0 (may be traced).
    reduction: "mean", "sum" or "none" (per example, shape (B,)).
    class_axis_name: mesh axis over which `weights` is sharded by class (inside ``shard_map``:
      the local contiguous block of classes, labels global); the value is the full-class one.

  Example:
    >>> loss = cosface_loss(jnp.array([[1.0, 0.0]]), jnp.array([0]), jnp.eye(2), margin=0.0,
    ...                     scale=2.0)
    >>> bool(jnp.isclose(loss, jnp.log1p(jnp.exp(-2.0))))
    True
  """
  checks.check_scalar(margin, "margin")
  checks.check_scalar(scale, "scale", positive=True)
  x, w, labels, valid = _setup(features, labels, weights, reduction, class_axis_name)
  cos = _cosines(x, w)
  target = scale * (_target_column(cos, labels, class_axis_name) - margin)
  return _ce_with_target(scale * cos, labels, target, valid, reduction, class_axis_name)


def _arcface_psi(cos_y: jax.Array, margin) -> jax.Array:
  """cos(theta + m) for theta <= pi - m, else cos(theta) - m sin(m): the additive angular
  margin kept non-decreasing in theta over [0, pi] (insightface's th/mm form, pml >= 2.0)."""
  m = jnp.asarray(margin, cos_y.dtype)
  cos_m, sin_m = jnp.cos(m), jnp.sin(m)
  shifted = cos_y * cos_m - _sin_from_cos(cos_y) * sin_m
  # theta <= pi - m  <=>  cos(theta) >= cos(pi - m) = -cos(m).
  return jnp.where(cos_y >= -cos_m, shifted, cos_y - m * sin_m)


def arcface_loss(
    features: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike,
    *,
    margin: float = 0.5,
    scale: float = 64.0,
    reduction: str = "mean",
    class_axis_name: str | None = None,
) -> jax.Array:
  r"""ArcFace / additive angular margin, Deng et al., CVPR 2019.

  .. math::
    f_{y_i} = s\,\psi(\theta_{y_i}),\quad
    \psi(\theta) = \begin{cases} \cos(\theta + m) & \theta \le \pi - m \\
                                 \cos\theta - m \sin m & \theta > \pi - m \end{cases},
    \qquad f_j = s\cos\theta_j

  with :math:`\cos(\theta + m)` computed as :math:`\cos\theta\cos m - \sin\theta\sin m`.
  Past :math:`\theta = \pi - m` the paper's :math:`\cos(\theta + m)` would rise again (the loss
  would fall as a feature moves away from its class); there the target logit continues as
  :math:`\cos\theta - m\sin m`, decreasing in :math:`\theta`, as insightface's training code
  (its ``th`` / ``mm`` form, ``easy_margin=False``) and pytorch-metric-learning's ``ArcFaceLoss``
  (since 2.0) do; the loss is non-decreasing in the target angle on all of :math:`[0, \pi]`.
  `margin` is in radians (0.5, the paper's); pytorch-metric-learning's ``ArcFaceLoss`` takes
  degrees (default 28.6 ~ 0.4992 rad) and otherwise computes the same.

  Args:
    features: (B, D).
    labels: (B,) integer labels in [0, C).
    weights: (D, C) classifier weights.
    margin: m in radians, in [0, pi) (may be traced).
    scale: s > 0 (may be traced).
    reduction: "mean", "sum" or "none" (per example, shape (B,)).
    class_axis_name: mesh axis over which `weights` is sharded by class (inside ``shard_map``:
      the local contiguous block of classes, labels global); the value is the full-class one.

  Example:
    >>> loss = arcface_loss(jnp.array([[1.0, 0.0]]), jnp.array([0]), jnp.eye(2), margin=0.0,
    ...                     scale=2.0)
    >>> bool(jnp.isclose(loss, jnp.log1p(jnp.exp(-2.0))))
    True
  """
  checks.check_scalar(margin, "margin", nonnegative=True, below=math.pi)
  checks.check_scalar(scale, "scale", positive=True)
  x, w, labels, valid = _setup(features, labels, weights, reduction, class_axis_name)
  cos = _cosines(x, w)
  cos_y = jnp.clip(_target_column(cos, labels, class_axis_name), -1.0, 1.0)
  target = scale * _arcface_psi(cos_y, margin)
  return _ce_with_target(scale * cos, labels, target, valid, reduction, class_axis_name)


def _linear_logits(x, w, bias):
  logits = x @ w
  if bias is not None:
    checks.check_bias(bias, w.shape[1])
    logits = logits + jnp.asarray(bias).astype(logits.dtype)
  return logits


def sigsoftmax_loss(
    features: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike,
    *,
    bias: ArrayLike | None = None,
    reduction: str = "mean",
    class_axis_name: str | None = None,
) -> jax.Array:
  r"""SigSoftmax cross-entropy, Kanai et al., NeurIPS 2018.

  .. math::
    p_c = \frac{e^{z_c}\sigma(z_c)}{\sum_j e^{z_j}\sigma(z_j)},\qquad
    \ell_i = -\log p_{y_i},\qquad z = x W + b

  computed as softmax cross-entropy of :math:`z + \log\sigma(z)` (log-sigmoid is stable).

  Args:
    features: (B, D).
    labels: (B,) integer labels in [0, C).
    weights: (D, C) classifier weights.
    bias: optional (C,) bias.
    reduction: "mean", "sum" or "none" (per example, shape (B,)).
    class_axis_name: mesh axis over which `weights` and `bias` are sharded by class (inside
      ``shard_map``: the local contiguous block of classes, labels global); the value is the
      full-class one.

  Example:
    >>> loss = sigsoftmax_loss(jnp.array([[0.0, 0.0]]), jnp.array([0]), jnp.eye(2))
    >>> bool(jnp.isclose(loss, jnp.log(2.0)))
    True
  """
  x, w, labels, valid = _setup(features, labels, weights, reduction, class_axis_name)
  z = _linear_logits(x, w, bias)
  z = z + jax.nn.log_sigmoid(z)
  return _ce_with_target(z, labels, _target_column(z, labels, class_axis_name), valid, reduction,
                         class_axis_name)


def noisy_softmax_loss(
    features: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike,
    *,
    key: jax.Array,
    noise_scale: ArrayLike = 0.1,
    reduction: str = "mean",
    axis_name: str | None = None,
    class_axis_name: str | None = None,
) -> jax.Array:
  r"""Noisy Softmax, Chen, Deng and Du, CVPR 2017: angular noise on the target logit.

  .. math::
    f_{y_i} = \lVert W_{y_i}\rVert \lVert x_i\rVert \cos(\min(\theta_{y_i} + \alpha|\xi_i|, \pi)),
    \qquad \xi_i \sim \mathcal N(0, 1),\qquad f_j = W_j^\top x_i

  Deliberate differences: the paper anneals the noise amplitude during training; here it is the
  explicit argument `noise_scale` (alpha; pass a scheduled value, and 0 at evaluation, where the
  loss is plain softmax cross-entropy without bias), and its default 0.1 is ours, not the
  paper's. The angle is capped at pi so the perturbation always lowers the target logit.

  The noise is drawn per example, :math:`\xi = \mathcal N(0, I_B)` from `key`, never per class,
  so sharding the classes does not change it. Under data parallelism pass `axis_name`: example
  i of device k then takes entry :math:`k B + i` of the draw for the global batch, and the loss
  is the one-device loss of the global batch whatever the split.

  Args:
    features: (B, D).
    labels: (B,) integer labels in [0, C).
    weights: (D, C).
    key: PRNG key for the noise, the same on every device.
    noise_scale: alpha >= 0.
    reduction: "mean", "sum" or "none" (per example, shape (B,)).
    axis_name: mesh or pmap axis over which the batch is split (inside ``pmap`` /
      ``shard_map``): "mean"/"sum" are over the global batch and the noise is the global
      batch's draw (see above); "none" stays per device.
    class_axis_name: mesh axis over which `weights` is sharded by class (inside ``shard_map``:
      the local contiguous block of classes, labels global); the value is the full-class one.

  Example:
    >>> loss = noisy_softmax_loss(jnp.array([[2.0, 0.0]]), jnp.array([0]), jnp.eye(2),
    ...                           key=jax.random.PRNGKey(0), noise_scale=0.0)
    >>> bool(jnp.isclose(loss, jnp.log1p(jnp.exp(-2.0))))
    True
  """
  checks.check_scalar(noise_scale, "noise_scale", nonnegative=True)
  x, w, labels, valid = _setup(features, labels, weights, reduction, class_axis_name)
  logits = x @ w
  magnitudes = _norm(x, 1) * _target_norms(w, labels, class_axis_name)
  cos_y = jnp.clip(_target_column(logits, labels, class_axis_name) / magnitudes, -1.0, 1.0)
  delta = jnp.asarray(noise_scale, x.dtype) * jnp.abs(
      _example_noise(key, x.shape[0], x.dtype, axis_name))
  theta = jnp.arccos(jax.lax.stop_gradient(cos_y))
  shifted = cos_y * jnp.cos(delta) - _sin_from_cos(cos_y) * jnp.sin(delta)
  target = magnitudes * jnp.where(theta + delta < math.pi, shifted, -1.0)
  return _ce_with_target(logits, labels, target, valid, reduction, class_axis_name, axis_name)


def _example_noise(key, batch: int, dtype, axis_name):
  """(B,) standard normals, one per example; with `axis_name`, this device's block of the draw
  for the global batch (B times the axis size), so the split of the batch does not change it."""
  if axis_name is None:
    return jax.random.normal(key, (batch,), dtype)
  noise = jax.random.normal(key, (batch * jax.lax.psum(1, axis_name),), dtype)
  return jax.lax.dynamic_slice_in_dim(noise, jax.lax.axis_index(axis_name) * batch, batch)


def _target_norms(w, labels, class_axis_name):
  """(B,) norm of each example's label column of (D, C_local) `w` (0 for an out-of-range one)."""
  return class_sharding.take_classes(_norm(w, 0), labels, class_axis_name)


def virtual_softmax_loss(
    features: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike,
    *,
    bias: ArrayLike | None = None,
    reduction: str = "mean",
    class_axis_name: str | None = None,
) -> jax.Array:
  r"""Virtual Softmax, Chen, Deng and Shen, NeurIPS 2018: one extra virtual class.

  .. math::
    \ell_i = -\log \frac{e^{W_{y_i}^\top x_i}}
        {\sum_{j=1}^C e^{W_j^\top x_i} + e^{\lVert W_{y_i}\rVert \lVert x_i\rVert}}

  the virtual class's weight being :math:`\lVert W_{y_i}\rVert x_i / \lVert x_i\rVert`, so its
  logit :math:`\lVert W_{y_i}\rVert\lVert x_i\rVert` bounds the target logit from above. An
  optional `bias` applies to the C real classes only.

  Args:
    features: (B, D).
    labels: (B,) integer labels in [0, C).
    weights: (D, C) classifier weights.
    bias: optional (C,) bias of the real classes.
    reduction: "mean", "sum" or "none" (per example, shape (B,)).
    class_axis_name: mesh axis over which `weights` and `bias` are sharded by class (inside
      ``shard_map``: the local contiguous block of classes, labels global); the value is the
      full-class one, the virtual logit taken from the shard holding the target's weight.

  Example:
    >>> loss = virtual_softmax_loss(jnp.array([[1.0, 0.0]]), jnp.array([0]), jnp.eye(2))
    >>> bool(jnp.isclose(loss, jnp.log(2.0 + jnp.exp(-1.0))))
    True
  """
  x, w, labels, valid = _setup(features, labels, weights, reduction, class_axis_name)
  logits = _linear_logits(x, w, bias)
  target = _target_column(logits, labels, class_axis_name)
  virtual = _norm(x, 1) * _target_norms(w, labels, class_axis_name)
  real = class_sharding.logsumexp(logits, class_axis_name)
  per_example = jnp.logaddexp(real, virtual) - target
  return checks.reduce_loss(checks.nan_where_invalid(per_example, valid), reduction)


def subcenter_arcface_loss(
    features: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike,
    *,
    margin: float = 0.5,
    scale: float = 64.0,
    reduction: str = "mean",
    axis_name: str | None = None,
    class_axis_name: str | None = None,
) -> jax.Array:
  r"""Sub-center ArcFace, Deng et al., ECCV 2020, as pml's ``SubCenterArcFaceLoss``.

  Each class has K sub-centers; its cosine is the largest over them,
  :math:`\cos\theta_j = \max_k \hat x^\top \hat W_{jk}`, and the target logit gets ArcFace's
  additive angular margin with the monotone extension past :math:`\pi - m` (pml >= 2.0,
  insightface's th/mm form), so the loss never falls as a feature moves away from its class:

  .. math::
    f_{y_i} = s\,\begin{cases}\cos(\theta_{y_i} + m) & \theta_{y_i} \le \pi - m \\
      \cos\theta_{y_i} - m\sin m & \text{otherwise}\end{cases},\qquad f_j = s\cos\theta_j

  Layout: `weights` is (D, C, K), sub-center k of class c in ``weights[:, c, k]``; pml's ``W``
  (D, C K) is ``weights.reshape(D, C * K)`` (column ``c K + k``). `margin` is in radians (pml
  takes degrees; its default 28.6 is 0.4992 rad).

  Args:
    features: (B, D).
    labels: (B,) class indices in [0, C); a traced out-of-range label gives NaN.
    weights: (D, C, K) sub-centers.
    margin, scale: m (radians) and s (may be traced).
    reduction: "mean", "sum" or "none" (per example).
    axis_name: with "mean"/"sum", reduce over the global batch (pmap / shard_map).
    class_axis_name: mesh axis over which `weights` is sharded by class, its axis 1 (inside
      ``shard_map``: (D, C_local, K), the local contiguous block of classes with all their
      sub-centers, labels global); the max over sub-centers stays on the device holding the class,
      and the value is the full-class one.

  Example:
    >>> w = jnp.stack([jnp.eye(2), -jnp.eye(2)], axis=-1)  # (D, C, K) = (2, 2, 2)
    >>> x = jnp.array([[1.0, 0.0]])
    >>> print(f"{subcenter_arcface_loss(x, jnp.array([0]), w, margin=0.0, scale=2.0):.4f}")
    0.1269
  """
  checks.check_reduction(reduction)
  _, dim = checks.check_features_labels(features, labels)
  checks.check_floating(weights, "weights", ndim=3)
  if jnp.shape(weights)[0] != dim:
    raise ValueError(f"weights must have shape (D, C, K) = ({dim}, C, K) to match the features, "
                     f"got {tuple(jnp.shape(weights))}")
  _, num_classes, k = jnp.shape(weights)
  if num_classes < 2 or k < 1:
    raise ValueError(f"weights must have at least 2 classes and 1 sub-center, got shape "
                     f"{tuple(jnp.shape(weights))}")
  valid = checks.label_guard(labels, class_sharding.num_classes(num_classes, class_axis_name))
  x, w = checks.as_compute(features, weights)
  labels = jnp.asarray(labels)
  cos = jnp.max(_cosines(x, w.reshape(dim, num_classes * k)).reshape(-1, num_classes, k), axis=-1)
  cos_y = jnp.clip(_target_column(cos, labels, class_axis_name), -1.0, 1.0)
  target = scale * _arcface_psi(cos_y, margin)
  return _ce_with_target(scale * cos, labels, target, valid, reduction, class_axis_name,
                         axis_name)
