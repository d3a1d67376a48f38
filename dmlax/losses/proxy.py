"""Proxy-based losses: the multi-proxy anchor (MPA) family, ProxyAnchor, SoftTriple, ProxyNCA.

Shapes: features (B, D), integer labels (B,), single proxies (C, D), multi-proxies (C, K, D).
Every loss L2-normalises features and proxies itself and computes in float32 (or wider for
float64 inputs), so bfloat16 inputs are accepted. Continuous hyperparameters (alpha, gamma,
margin, tau, la, softmax_scale) may be traced scalars. Similarities are (B, C, K) contractions; no
(B, C, K, D) tensor is formed.

Batch-coupled losses (ProxyAnchor, MPA) take `axis_name`: inside ``pmap``/``shard_map`` over that
axis they return the single-device value of the global batch (class sums are combined across
devices before the log; see `dmlax.losses.logsumexp.log1p_sum_exp`). Gradients: the usual
data-parallel step (``grad`` inside the map, then ``pmean`` over the axis) gives the single-device
gradient of replicated parameters under both drivers (tested for the proxies; backbone weights
get theirs through the features along the same path). The in-map gradient w.r.t. the per-device
features alone is exact under ``shard_map`` but the device count times it under ``pmap``
(pmap transposes ``psum`` to ``psum``).

Every loss (and `dmlax.losses.regularizers.proxy_regularizer`) takes `class_axis_name`: inside
``shard_map`` the proxies are then the local contiguous block of classes of that mesh axis,
labels stay global, and sums, maxima and counts over classes are completed with
``psum``/``pmax`` of (B,)-sized or scalar pieces (`dmlax.losses.class_sharding`); similarities
are per class, so each device only forms its own (B, C_local) block. With both names (batch
over one mesh axis, classes over another) the value is that of the global batch and all
classes.

Reference for the MPA family: Saeki, Kawahara and Aman, "Multi Proxy Anchor Family Loss for
Several Types of Gradients" (preprint, 2023; "the MPA paper" below). The formulas follow the
paper's equations, cited at each loss.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from dmlax import checks
from dmlax.losses import class_sharding
from dmlax.losses.logsumexp import log1p_sum_exp
from dmlax.losses.normalization import inverse_norm
from dmlax.losses.normalization import l2_normalize
from dmlax.losses.regularizers import regularizer_from_norms


def _as_float(x) -> jax.Array:
  return checks.as_compute(x)[0]


def _cosine(features, proxies) -> jax.Array:
  """(B, C) cosines of (B, D) features and (C, D) proxies, float32 or wider.

  The proxies' normalisation is applied to the (B, C) product as a per-column scale: no
  normalised (C, D) copy (46 MB at SOP's C = 11318, K = 2, D = 512) in either pass.
  """
  x = l2_normalize(jnp.asarray(features), axis=-1)
  w = _as_float(proxies)
  return (x @ w.T) * inverse_norm(w, axis=-1)[:, 0][None, :]


def _multi_proxy_similarity(features, proxies, inv_norms, gamma: float) -> jax.Array:
  """(B, C) eq. 1 from raw (C, K, D) proxies and their (C, K) inverse norms."""
  num_classes, k, dim = proxies.shape
  x = l2_normalize(jnp.asarray(features), axis=-1)
  # One (B, D) x (D, C K) matmul: XLA CPU ran the (C, K, D) einsum about 2x slower.
  sims = (x @ proxies.reshape(num_classes * k, dim).T).reshape(x.shape[0], num_classes, k)
  sims = sims * inv_norms[None]
  weights = jax.nn.softmax(sims / gamma, axis=-1)
  return jnp.sum(weights * sims, axis=-1)


def multi_proxy_similarity(
    features: ArrayLike, proxies: ArrayLike, *, gamma: float = 0.1) -> jax.Array:
  r"""Soft-max-weighted cosine of each embedding to each class's K proxies (MPA paper eq. 1).

  .. math::
    S(x, c) = \sum_k \frac{\exp(\hat x^\top \hat w_{ck} / \gamma)}
                         {\sum_l \exp(\hat x^\top \hat w_{cl} / \gamma)}\, \hat x^\top \hat w_{ck}

  with :math:`\hat x, \hat w` L2-normalised. This is SoftTriple's relaxed similarity (Qian et al.,
  ICCV 2019; idstcv/SoftTriple and pytorch-metric-learning's ``SoftTripleLoss`` compute
  the same, there with ``gamma`` passed as its inverse). With K = 1 it is the cosine.

  Args:
    features: (B, D).
    proxies: (C, K, D).
    gamma: temperature of the soft-max over a class's proxies (> 0).

  Returns:
    (B, C) similarities in [-1, 1], float32 or wider.

  Example:
    >>> w = jnp.array([[[1.0, 0.0], [0.0, 1.0]]])
    >>> s = multi_proxy_similarity(jnp.array([[1.0, 0.0]]), w, gamma=0.1)
    >>> s.shape, bool(jnp.isclose(s[0, 0], jnp.exp(10.0) / (jnp.exp(10.0) + 1)))
    ((1, 1), True)
  """
  checks.check_floating(features, "features", ndim=2)
  checks.check_multi_proxies(proxies, np.shape(features)[1])
  checks.check_scalar(gamma, "gamma", positive=True)
  w = _as_float(proxies)
  return _multi_proxy_similarity(features, w, inverse_norm(w, axis=-1)[..., 0], gamma)


def _all_valid(valid: jax.Array, axis_name: str | None) -> jax.Array:
  bad = jnp.sum(~valid)
  if axis_name is not None:
    bad = jax.lax.psum(bad, axis_name)
  return bad == 0


def _anchor_similarity_loss(similarity, labels, *, alpha, margin, axis_name,
                            class_axis_name=None):
  """MPA eq. 6 / ProxyAnchor from a (B, C) similarity: the (C,) per-class terms, whose sum is
  the loss; class sums span `axis_name`, and with `class_axis_name` the (B, C_local) block gives
  the local (C_local,) terms (the present-class count and C are global)."""
  num_local = similarity.shape[1]
  positive = class_sharding.local_mask(labels, num_local, class_axis_name)
  pos = log1p_sum_exp(-alpha * (similarity - margin), positive, axis=0, axis_name=axis_name)
  neg = log1p_sum_exp(alpha * (similarity + margin), ~positive, axis=0, axis_name=axis_name)
  counts = jnp.sum(positive, axis=0)
  if axis_name is not None:
    counts = jax.lax.psum(counts, axis_name)
  num_present = class_sharding.psum(jnp.sum(counts > 0), class_axis_name)
  num_classes = class_sharding.num_classes(num_local, class_axis_name)
  # Classes absent from the batch have pos == 0 exactly; the mean is over present classes.
  return pos / jnp.maximum(num_present, 1).astype(pos.dtype) + neg / num_classes


def _reduce_class_terms(per_class, reg, valid, reduction, axis_name, class_axis_name):
  """Batch-coupled MPA / ProxyAnchor: "mean" and "sum" give the loss, "none" the (C,) per-class
  terms (tau R shared equally among them) whose sum is the loss; with `class_axis_name`, the
  local (C_local,) block of them."""
  checks.check_reduction(reduction)
  per_class = per_class + reg / class_sharding.num_classes(per_class.shape[0], class_axis_name)
  per_class = checks.nan_where_invalid(per_class, _all_valid(valid, axis_name))
  if reduction == "none":
    return per_class
  return class_sharding.psum(jnp.sum(per_class), class_axis_name)


def _dw_similarity_loss(similarity, labels, *, alpha, margin, class_axis_name=None):
  """MPA-DW eq. 12 per example from a (B, C) (or (B, C_local)) similarity."""
  positive = class_sharding.local_mask(labels, similarity.shape[1], class_axis_name)
  s_pos = class_sharding.psum(jnp.sum(jnp.where(positive, similarity, 0.0), axis=1),
                              class_axis_name)
  pos = jax.nn.softplus(-alpha * (s_pos - margin))
  neg = log1p_sum_exp(alpha * (similarity + margin), ~positive, axis=1, axis_name=class_axis_name)
  return pos + neg


def _ap_similarity_loss(similarity, labels, *, alpha, margin, class_axis_name=None):
  """MPA-AP eqs. 15-16 per example from a (B, C) (or (B, C_local)) similarity."""
  positive = class_sharding.local_mask(labels, similarity.shape[1], class_axis_name)
  shifted = jnp.where(positive, margin - similarity, similarity + margin)
  return log1p_sum_exp(alpha * shifted, axis=1, axis_name=class_axis_name)


def _with_regularizer(per_example, reg, reduction, axis_name=None):
  """Adds tau * R once to the reduced value ("none": to every example, so mean(none) == mean)."""
  checks.check_reduction(reduction)
  if reduction == "none":
    return per_example + reg
  return checks.reduce_loss(per_example, reduction, axis_name) + reg


def _mpa_setup(features, labels, proxies, gamma, alpha, tau, margin, class_axis_name):
  checks.check_features_labels(features, labels, "features")
  num_local, _, _ = checks.check_multi_proxies(proxies, np.shape(features)[1])
  checks.check_scalar(gamma, "gamma", positive=True)
  checks.check_scalar(alpha, "alpha", positive=True)
  checks.check_scalar(tau, "tau", nonnegative=True)
  checks.check_scalar(margin, "margin")
  valid = checks.label_guard(labels, class_sharding.num_classes(num_local, class_axis_name))
  similarity, reg = _similarity_and_regularizer(features, proxies, gamma, tau, class_axis_name)
  return jnp.asarray(labels), valid, similarity, reg


def _similarity_and_regularizer(features, proxies, gamma, tau, class_axis_name):
  """S (B, C) and tau R, normalising the proxies once for both."""
  w = _as_float(proxies)
  inv_norms = inverse_norm(w, axis=-1)[..., 0]
  similarity = _multi_proxy_similarity(features, w, inv_norms, gamma)
  if not checks.is_traced(tau) and tau == 0:
    reg = jnp.zeros((), similarity.dtype)
  else:
    reg = jnp.asarray(tau, similarity.dtype) * regularizer_from_norms(
        w, inv_norms, class_axis_name=class_axis_name)
  return similarity, reg


def mpa_loss(
    features: ArrayLike,
    labels: ArrayLike,
    proxies: ArrayLike,
    *,
    alpha: float = 32.0,
    gamma: float = 0.1,
    margin: float = 0.1,
    tau: float = 0.2,
    axis_name: str | None = None,
    reduction: str = "mean",
    class_axis_name: str | None = None,
) -> jax.Array:
  r"""Multi-proxies anchor (MPA) loss, MPA paper eqs. 6-7.

  .. math::
    L = \frac{1}{|C^+|} \sum_{c \in C^+} \log\Bigl(1 + \sum_{x \in X_c^+}
          e^{-\alpha (S(x, c) - \delta)}\Bigr)
      + \frac{1}{C} \sum_{c} \log\Bigl(1 + \sum_{x \in X_c^-} e^{\alpha (S(x, c) + \delta)}\Bigr)
      + \tau R

  with S the multi-proxy similarity (`multi_proxy_similarity`), :math:`C^+` the classes present
  in the (global) batch, :math:`X_c^\pm` the batch samples of / not of class c and R the
  `proxy_regularizer`. The negative term divides by the number of classes C, as ProxyAnchor's
  reference code (tjddus9597/Proxy-Anchor-CVPR2020) does (the paper writes
  :math:`|C^-|`). With K = 1 and tau = 0 it equals `proxy_anchor_loss`.

  Args:
    features: (B, D) features (normalised inside).
    labels: (B,) integer labels in [0, C).
    proxies: (C, K, D) proxies (normalised inside); see `dmlax.losses.initializers`.
    alpha: scale (32, ProxyAnchor's; the paper does not state it).
    gamma: temperature of the similarity over a class's proxies.
    margin: delta.
    tau: weight of the proxy regulariser.
    axis_name: mapped axis of a data-parallel batch; the value is then that of the global batch.
    reduction: the loss couples the whole batch and has no per-example values: "mean" and "sum"
      both return the scalar loss L; "none" returns the (C,) per-class terms
      ``pos_c / |C+| + neg_c / C + tau R / C``, whose sum is L (the same on every device;
      with `class_axis_name`, this device's (C_local,) block of them).
    class_axis_name: mesh axis over which `proxies` is sharded by class (inside ``shard_map``:
      the local contiguous block of classes, labels global); the value is the full-class one.

  Returns:
    A scalar, or (C,) for ``reduction="none"``.

  Example:
    >>> x = jax.random.normal(jax.random.PRNGKey(0), (8, 16))
    >>> w = jax.random.normal(jax.random.PRNGKey(1), (4, 3, 16))
    >>> loss = mpa_loss(x, jnp.arange(8) % 4, w)
    >>> loss.shape, bool(jnp.isclose(loss, mpa_loss(x, jnp.arange(8) % 4, w, reduction="none").sum()))
    ((), True)
  """
  labels, valid, similarity, reg = _mpa_setup(
      features, labels, proxies, gamma, alpha, tau, margin, class_axis_name)
  per_class = _anchor_similarity_loss(similarity, labels, alpha=alpha, margin=margin,
                                      axis_name=axis_name, class_axis_name=class_axis_name)
  return _reduce_class_terms(per_class, reg, valid, reduction, axis_name, class_axis_name)


def mpa_dw_loss(
    features: ArrayLike,
    labels: ArrayLike,
    proxies: ArrayLike,
    *,
    alpha: float = 32.0,
    gamma: float = 0.1,
    margin: float = 0.1,
    tau: float = 0.2,
    axis_name: str | None = None,
    reduction: str = "mean",
    class_axis_name: str | None = None,
) -> jax.Array:
  r"""Data-wise multi-proxies anchor (MPA-DW) loss, MPA paper eqs. 12-13.

  .. math::
    \ell_i = \log(1 + e^{-\alpha (S(x_i, y_i) - \delta)})
           + \log\Bigl(1 + \sum_{c \ne y_i} e^{\alpha (S(x_i, c) + \delta)}\Bigr),\qquad
    L = \frac1N \sum_i \ell_i + \tau R

  Args:
    features, labels, proxies, alpha, gamma, margin, tau: as in `mpa_loss`.
    axis_name: with "mean"/"sum", the mean/sum runs over the global batch.
    reduction: "mean" (the paper's), "sum" (sum of the per-example terms, plus tau R once) or
      "none" (per-example ``l_i + tau R``, so that their mean is the "mean" value).
    class_axis_name: mesh axis over which `proxies` is sharded by class (inside ``shard_map``:
      the local contiguous block of classes, labels global); the value is the full-class one.

  Example:
    >>> x = jax.random.normal(jax.random.PRNGKey(0), (8, 16))
    >>> w = jax.random.normal(jax.random.PRNGKey(1), (4, 3, 16))
    >>> mpa_dw_loss(x, jnp.arange(8) % 4, w, reduction="none").shape
    (8,)
  """
  labels, valid, similarity, reg = _mpa_setup(
      features, labels, proxies, gamma, alpha, tau, margin, class_axis_name)
  per_example = _dw_similarity_loss(similarity, labels, alpha=alpha, margin=margin,
                                    class_axis_name=class_axis_name)
  per_example = checks.nan_where_invalid(per_example, valid)
  return _with_regularizer(per_example, reg, reduction, axis_name)


def mpa_ap_loss(
    features: ArrayLike,
    labels: ArrayLike,
    proxies: ArrayLike,
    *,
    alpha: float = 32.0,
    gamma: float = 0.1,
    margin: float = 0.1,
    tau: float = 0.2,
    axis_name: str | None = None,
    reduction: str = "mean",
    class_axis_name: str | None = None,
) -> jax.Array:
  r"""Data-wise all-paired multi-proxies anchor (MPA-AP) loss, MPA paper eqs. 15-17.

  .. math::
    S'(x_i, c) = \begin{cases} \delta - S(x_i, c) & c = y_i \\ S(x_i, c) + \delta & c \ne y_i
                 \end{cases},\qquad
    \ell_i = \log\Bigl(1 + \sum_c e^{\alpha S'(x_i, c)}\Bigr),\qquad
    L = \frac1N \sum_i \ell_i + \tau R

  Args:
    features, labels, proxies, alpha, gamma, margin, tau: as in `mpa_loss`.
    axis_name, reduction, class_axis_name: as in `mpa_dw_loss`.

  Example:
    >>> x = jax.random.normal(jax.random.PRNGKey(0), (8, 16))
    >>> w = jax.random.normal(jax.random.PRNGKey(1), (4, 3, 16))
    >>> mpa_ap_loss(x, jnp.arange(8) % 4, w).shape
    ()
  """
  labels, valid, similarity, reg = _mpa_setup(
      features, labels, proxies, gamma, alpha, tau, margin, class_axis_name)
  per_example = _ap_similarity_loss(similarity, labels, alpha=alpha, margin=margin,
                                    class_axis_name=class_axis_name)
  per_example = checks.nan_where_invalid(per_example, valid)
  return _with_regularizer(per_example, reg, reduction, axis_name)


def proxy_anchor_loss(
    features: ArrayLike,
    labels: ArrayLike,
    proxies: ArrayLike,
    *,
    alpha: float = 32.0,
    margin: float = 0.1,
    axis_name: str | None = None,
    reduction: str = "mean",
    class_axis_name: str | None = None,
) -> jax.Array:
  r"""Proxy-Anchor loss (Kim, Kim, Cho and Kwak, CVPR 2020).

  .. math::
    L = \frac{1}{|C^+|} \sum_{c \in C^+} \log\Bigl(1 + \sum_{x \in X_c^+}
          e^{-\alpha (\cos(x, p_c) - \delta)}\Bigr)
      + \frac{1}{C} \sum_{c} \log\Bigl(1 + \sum_{x \in X_c^-} e^{\alpha (\cos(x, p_c) + \delta)}\Bigr)

  Matches the authors' code (tjddus9597/Proxy-Anchor-CVPR2020) and pytorch-metric-learning's
  ``ProxyAnchorLoss`` (proxies there are (C, D), as here). Initialise proxies with
  `dmlax.losses.initializers.proxy_anchor_init`.

  Args:
    features: (B, D) features (normalised inside).
    labels: (B,) integer labels in [0, C).
    proxies: (C, D), one proxy per class (normalised inside).
    alpha: scale.
    margin: delta.
    axis_name: mapped axis of a data-parallel batch; the value is then that of the global batch.
    reduction: as in `mpa_loss` ("mean" and "sum": the scalar loss; "none": the (C,) per-class
      terms whose sum is the loss).
    class_axis_name: mesh axis over which `proxies` is sharded by class (inside ``shard_map``:
      the local contiguous block of classes, labels global); the value is the full-class one.

  Returns:
    A scalar, or (C,) for ``reduction="none"``.

  Example:
    >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> loss = proxy_anchor_loss(x, jnp.array([0, 1]), x)
    >>> want = jnp.log1p(jnp.exp(-32 * 0.9)) + jnp.log1p(jnp.exp(32 * 0.1))  # pos + neg term
    >>> bool(jnp.isclose(loss, want))
    True
  """
  checks.check_features_labels(features, labels, "features")
  num_local = checks.check_proxies(proxies, np.shape(features)[1])
  checks.check_scalar(alpha, "alpha", positive=True)
  checks.check_scalar(margin, "margin")
  valid = checks.label_guard(labels, class_sharding.num_classes(num_local, class_axis_name))
  similarity = _cosine(features, proxies)
  per_class = _anchor_similarity_loss(similarity, jnp.asarray(labels), alpha=alpha, margin=margin,
                                      axis_name=axis_name, class_axis_name=class_axis_name)
  return _reduce_class_terms(per_class, 0.0, valid, reduction, axis_name, class_axis_name)


def soft_triple_loss(
    features: ArrayLike,
    labels: ArrayLike,
    proxies: ArrayLike,
    *,
    la: float = 20.0,
    gamma: float = 0.1,
    margin: float = 0.01,
    tau: float = 0.2,
    reduction: str = "mean",
    class_axis_name: str | None = None,
) -> jax.Array:
  r"""SoftTriple loss (Qian et al., "SoftTriple Loss: Deep Metric Learning Without Triplet
  Sampling", ICCV 2019).

  .. math::
    \ell_i = -\log \frac{e^{\lambda (S(x_i, y_i) - \delta)}}
        {e^{\lambda (S(x_i, y_i) - \delta)} + \sum_{c \ne y_i} e^{\lambda S(x_i, c)}},\qquad
    L = \frac1N \sum_i \ell_i + \tau R

  with S the `multi_proxy_similarity` and R the `proxy_regularizer`. Matches the reference code
  idstcv/SoftTriple (which assumes normalised inputs; here features are normalised inside) and
  pytorch-metric-learning's ``SoftTripleLoss`` + ``SparseCentersRegularizer`` (weight tau; its
  centres ``fc`` are (D, C K) with column ``c K + k`` = ``proxies[c, k]``; its regulariser adds
  ``finfo.tiny`` instead of 1e-5 under the square root, see `proxy_regularizer`). Initialise
  proxies with `dmlax.losses.initializers.soft_triple_init`.

  Args:
    features: (B, D).
    labels: (B,) integer labels in [0, C).
    proxies: (C, K, D).
    la: lambda, the logit scale.
    gamma: temperature of the similarity over a class's proxies.
    margin: delta, subtracted from the target similarity.
    tau: weight of the proxy regulariser (0 for K = 1, where it vanishes anyway).
    reduction: as in `mpa_dw_loss`.
    class_axis_name: mesh axis over which `proxies` is sharded by class (inside ``shard_map``:
      the local contiguous block of classes, labels global); the value (regulariser included)
      is the full-class one.

  Example:
    >>> x = jax.random.normal(jax.random.PRNGKey(0), (8, 16))
    >>> w = jax.random.normal(jax.random.PRNGKey(1), (4, 3, 16))
    >>> soft_triple_loss(x, jnp.arange(8) % 4, w).shape
    ()
  """
  checks.check_features_labels(features, labels, "features")
  num_local, _, _ = checks.check_multi_proxies(proxies, np.shape(features)[1])
  checks.check_scalar(gamma, "gamma", positive=True)
  checks.check_scalar(tau, "tau", nonnegative=True)
  checks.check_scalar(la, "la", positive=True)
  checks.check_scalar(margin, "margin")
  labels = jnp.asarray(labels)
  valid = checks.label_guard(labels, class_sharding.num_classes(num_local, class_axis_name))
  similarity, reg = _similarity_and_regularizer(features, proxies, gamma, tau, class_axis_name)
  positive = class_sharding.local_mask(labels, num_local, class_axis_name)
  logits = la * (similarity - margin * positive)
  target = class_sharding.psum(jnp.sum(jnp.where(positive, logits, 0.0), axis=1), class_axis_name)
  lse = class_sharding.logsumexp(logits, class_axis_name)
  per_example = checks.nan_where_invalid(lse - target, valid)
  return _with_regularizer(per_example, reg, reduction)


def proxy_nca_loss(
    features: ArrayLike,
    labels: ArrayLike,
    proxies: ArrayLike,
    *,
    softmax_scale: float = 1.0,
    reduction: str = "mean",
    class_axis_name: str | None = None,
) -> jax.Array:
  r"""ProxyNCA loss as pytorch-metric-learning's ``ProxyNCALoss`` computes it.

  .. math::
    \ell_i = -\log \frac{e^{-s \lVert \hat x_i - \hat p_{y_i} \rVert^2}}
                        {\sum_{c} e^{-s \lVert \hat x_i - \hat p_c \rVert^2}}

  Movshovitz-Attias et al., "No Fuss Distance Metric Learning using Proxies" (ICCV 2017), with
  normalised features and proxies and the positive proxy **included** in the denominator (the
  paper leaves it out; pytorch-metric-learning includes it, which keeps the loss
  bounded below by 0). Deliberate difference: pytorch-metric-learning drops examples whose
  positive probability underflows to exactly 0 before averaging; this is computed as a
  log-softmax and never drops an example.

  Args:
    features: (B, D).
    labels: (B,) integer labels in [0, C).
    proxies: (C, D).
    softmax_scale: s.
    reduction: "mean", "sum" or "none" (per example, shape (B,)).
    class_axis_name: mesh axis over which `proxies` is sharded by class (inside ``shard_map``:
      the local contiguous block of classes, labels global); the value is the full-class one.

  Example:
    >>> x = jnp.array([[1.0, 0.0]])
    >>> loss = proxy_nca_loss(x, jnp.array([0]), jnp.array([[1.0, 0.0], [0.0, 1.0]]))
    >>> bool(jnp.isclose(loss, jnp.log1p(jnp.exp(-2.0))))
    True
  """
  checks.check_reduction(reduction)
  checks.check_features_labels(features, labels, "features")
  num_local = checks.check_proxies(proxies, np.shape(features)[1])
  checks.check_scalar(softmax_scale, "softmax_scale", positive=True)
  labels = jnp.asarray(labels)
  valid = checks.label_guard(labels, class_sharding.num_classes(num_local, class_axis_name))
  x = l2_normalize(jnp.asarray(features), axis=-1)
  w = _as_float(proxies)
  # ||x^ - w^||^2 with the proxies' normalisation as scales (1 unless a row is all zero).
  w_sq = jnp.sum(jnp.square(w), axis=1) * jnp.square(inverse_norm(w, axis=-1)[:, 0])
  sq_dist = jnp.sum(jnp.square(x), axis=1, keepdims=True) + w_sq[None] - 2.0 * _cosine(x, w)
  logits = -softmax_scale * jnp.maximum(sq_dist, 0.0)
  if class_axis_name is None:
    target = jnp.take_along_axis(logits, jnp.clip(labels, 0, num_local - 1)[:, None], axis=1)[:, 0]
  else:
    target = class_sharding.label_column(logits, labels, class_axis_name)
  per_example = class_sharding.logsumexp(logits, class_axis_name) - target
  return checks.reduce_loss(checks.nan_where_invalid(per_example, valid), reduction)
