"""Contrastive-family pair losses: NT-Xent, SupCon, Circle, Margin (Wu et al.) and Lifted
Structure, as pytorch-metric-learning (pml) 2.9 computes them.

They share the layout, masks, distances and reductions of `dmlax.losses.pair` (see its module
docstring and `dmlax.pairs`): B anchors against M references (the batch, the global batch with
``axis_name``, or ``references=``), mined ``pairs=`` / ``triplets=``, ``distance`` with pml's
default, "mean" the pml reducer, "sum" all terms, "none" each anchor's sum of its terms.
Hyperparameters (temperatures, margins, scales) may be traced arrays.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from dmlax import checks
from dmlax import distances
from dmlax import pairs as pairs_lib


def _setup(features, labels, distance, references, axis_name, reduction, pairs=None):
  checks.check_reduction(reduction)
  lay = pairs_lib.layout(features, labels, distance=distance, references=references,
                         axis_name=axis_name)
  sign = -1.0 if distances.is_similarity(distance) else 1.0
  pos, neg = pairs_lib.pair_masks(lay, pairs)
  return lay, sign * lay.mat, sign, pos, neg


def _any_global(mask, axis_name):
  return pairs_lib.psum(jnp.sum(mask), axis_name) > 0


def ntxent_loss(
    features: ArrayLike,
    labels: ArrayLike,
    *,
    temperature: float = 0.07,
    distance: str = "cosine",
    pairs=None,
    references=None,
    reduction: str = "mean",
    axis_name: str | None = None,
) -> jax.Array:
  r"""NT-Xent / InfoNCE with label-defined positives (Chen et al., SimCLR, ICML 2020, eq. 1;
  pml ``NTXentLoss``).

  .. math::
    \ell(a, p) = -\log \frac{e^{s_{ap}/\tau}}{e^{s_{ap}/\tau} + \sum_{n \in N_a} e^{s_{an}/\tau}}

  for every positive pair (a, p) (same label, p != a), :math:`N_a` the anchor's negatives and s
  the cosine similarity (a distance d enters as -d); "mean" is over the positive pairs (pml's
  ``MeanReducer``), 0 without any.

  Args:
    features: (B, D).
    labels: (B,) integer labels.
    temperature: tau > 0 (may be traced).
    distance, pairs, references, axis_name: as in `dmlax.losses.contrastive_loss`.
    reduction: "mean" (over the positive pairs), "sum" (all pair terms) or "none" (each
      anchor's sum over its positive pairs, shape (B,)).

  Example:
    >>> x = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> per_anchor = ntxent_loss(x, jnp.array([0, 0, 1]), temperature=1.0, reduction="none")
    >>> [f"{v:.4f}" for v in per_anchor]  # log(1 + 1/e) for the two anchors with a positive
    ['0.3133', '0.3133', '0.0000']
  """
  lay, d, _, pos, neg = _setup(features, labels, distance, references, axis_name, reduction,
                               pairs)
  z = -d / temperature
  lse_neg = pairs_lib.masked_logsumexp(z, neg, axis=1)
  per_pair = jnp.where(pos, jax.nn.softplus(lse_neg[:, None] - z), 0.0)
  per_anchor = jnp.sum(per_pair, axis=1)
  return pairs_lib.reduce(per_anchor, jnp.sum(per_anchor), jnp.sum(pos), reduction, axis_name)


def supcon_loss(
    features: ArrayLike,
    labels: ArrayLike,
    *,
    temperature: float = 0.1,
    distance: str = "cosine",
    pairs=None,
    references=None,
    reduction: str = "mean",
    axis_name: str | None = None,
) -> jax.Array:
  r"""Supervised contrastive loss (Khosla et al., NeurIPS 2020, eq. 2, :math:`L^{sup}_{out}`;
  pml ``SupConLoss``).

  .. math::
    \ell_a = -\frac{1}{|P_a|}\sum_{p \in P_a} \log
      \frac{e^{s_{ap}/\tau}}{\sum_{j \in P_a \cup N_a} e^{s_{aj}/\tau}}

  with s the cosine similarity (a distance enters as -d); anchors without positives give 0;
  "mean" is over the anchors with a non-zero loss (pml's ``AvgNonZeroReducer``). If the (global)
  batch has no positive or no negative pair the loss is 0, as in pml.

  Args:
    features: (B, D).
    labels: (B,) integer labels.
    temperature: tau > 0 (may be traced).
    distance, pairs, references, axis_name: as in `dmlax.losses.contrastive_loss`.
    reduction: "mean" (over the non-zero anchors), "sum" (all anchors) or "none" (each
      anchor's :math:`\ell_a`, shape (B,)).

  Example:
    >>> x = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> print(f"{supcon_loss(x, jnp.array([0, 0, 1]), temperature=1.0):.4f}")  # log(1 + 1/e)
    0.3133
  """
  lay, d, _, pos, neg = _setup(features, labels, distance, references, axis_name, reduction,
                               pairs)
  z = -d / temperature
  log_denominator = pairs_lib.masked_logsumexp(z, pos | neg, axis=1)
  log_prob = jnp.where(pos, z - jnp.where(pos, log_denominator[:, None], 0.0), 0.0)
  num_pos = jnp.sum(pos, axis=1)
  per_anchor = -jnp.sum(log_prob, axis=1) / jnp.maximum(num_pos, 1).astype(log_prob.dtype)
  gate = _any_global(pos, axis_name) & _any_global(neg, axis_name)
  per_anchor = jnp.where(gate, per_anchor, 0.0)
  return pairs_lib.reduce(per_anchor, jnp.sum(per_anchor), jnp.sum(per_anchor > 0), reduction,
                          axis_name)


def circle_loss(
    features: ArrayLike,
    labels: ArrayLike,
    *,
    m: float = 0.4,
    gamma: float = 80.0,
    distance: str = "cosine",
    pairs=None,
    references=None,
    reduction: str = "mean",
    axis_name: str | None = None,
) -> jax.Array:
  r"""Circle loss (Sun et al., CVPR 2020, its pair-wise form; pml ``CircleLoss``).

  .. math::
    \ell_a = \log\Bigl(1 + \sum_{n \in N_a} e^{\gamma \alpha_n (s_n - \Delta_n)}
      \sum_{p \in P_a} e^{-\gamma \alpha_p (s_p - \Delta_p)}\Bigr),\quad
    \alpha_p = [1 + m - s_p]_+,\ \alpha_n = [s_n + m]_+,\ \Delta_p = 1 - m,\ \Delta_n = m

  with s the cosine similarity and the weights :math:`\alpha` held constant for the gradient
  (the paper's "stop gradient"). Anchors lacking positives or negatives give 0; "mean" is over
  the anchors with a non-zero loss (pml's ``AvgNonZeroReducer``). Only ``distance="cosine"``:
  the margins assume similarities in [-1, 1] (pml asserts ``CosineSimilarity`` too).

  Args:
    features: (B, D).
    labels: (B,) integer labels.
    m: relaxation margin (may be traced).
    gamma: scale (may be traced).
    distance, pairs, references, axis_name: as in `dmlax.losses.contrastive_loss`.
    reduction: "mean" (over the non-zero anchors), "sum" (all anchors) or "none" (each
      anchor's :math:`\ell_a`, shape (B,)).

  Example:
    >>> x = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> print(f"{circle_loss(x, jnp.array([0, 0, 1]), gamma=1.0):.4f}")  # softplus(-2 * 0.4^2)
    0.5459
  """
  if distance != "cosine":
    raise ValueError(f"circle_loss needs distance='cosine' (its margins assume cosine "
                     f"similarities), got distance={distance!r}")
  lay, _, _, pos, neg = _setup(features, labels, distance, references, axis_name, reduction,
                               pairs)
  s = lay.mat
  fixed = jax.lax.stop_gradient(s)
  logit_p = -gamma * jax.nn.relu(1.0 + m - fixed) * (s - (1.0 - m))
  logit_n = gamma * jax.nn.relu(fixed + m) * (s - m)
  valid = jnp.any(pos, axis=1) & jnp.any(neg, axis=1)
  total = (pairs_lib.masked_logsumexp(logit_p, pos, axis=1)
           + pairs_lib.masked_logsumexp(logit_n, neg, axis=1))
  per_anchor = jnp.where(valid, jax.nn.softplus(jnp.where(valid, total, 0.0)), 0.0)
  return pairs_lib.reduce(per_anchor, jnp.sum(per_anchor), jnp.sum(per_anchor > 0), reduction,
                          axis_name)


def _beta_per_anchor(beta, labels, dtype):
  """(B, 1) beta of each anchor (a scalar beta, or one per class indexed by the label), validity.

  A Python-number beta is weakly typed and takes the distances' `dtype` (a float64 constant under
  ``jax_enable_x64`` must not lift bfloat16/float32 features' loss to float64).
  """
  beta = jnp.asarray(beta)
  beta = beta.astype(jnp.result_type(beta, dtype))
  shape = np.shape(beta)
  if len(shape) == 0 or shape == (1,):
    return beta.reshape(()), True, True
  if len(shape) != 1:
    raise ValueError(f"beta must be a scalar, shape (1,) or one per class (C,), got shape "
                     f"{tuple(shape)}")
  valid = checks.label_guard(labels, shape[0])
  return jnp.take(beta, jnp.clip(labels, 0, shape[0] - 1))[:, None], valid, False


def margin_loss(
    features: ArrayLike,
    labels: ArrayLike,
    beta: ArrayLike = 1.2,
    *,
    margin: float = 0.2,
    nu: float = 0.0,
    distance: str = "euclidean",
    triplets: ArrayLike | None = None,
    references=None,
    reduction: str = "mean",
    axis_name: str | None = None,
) -> jax.Array:
  r"""Margin loss with a learnable boundary beta (Wu et al., "Sampling Matters in Deep Embedding
  Learning", ICCV 2017; pml ``MarginLoss`` with ``triplets_per_anchor="all"``).

  .. math::
    L = \frac{\sum_{(a,p,n)} [d_{ap} - \beta_a + \alpha]_+ + [\beta_a - d_{an} + \alpha]_+}
             {\#\{\text{non-zero terms}\}} + \nu\,\beta

  over every triplet (or the mined `triplets`), d the Euclidean distance of L2-normalised
  embeddings by default (a similarity s enters as -s and beta as -beta), :math:`\beta_a` one
  scalar or the anchor's class entry of a (C,) array. `beta` is an ordinary argument, so a
  trainer can own it as a parameter and learn it; its gradient comes through both terms. The
  :math:`\nu` term is :math:`\nu\beta` for a scalar beta and the divisor-normalised sum
  of :math:`\nu\beta_{y_a}` over the triplets for a per-class one, as pml computes them with
  ``learn_beta=True`` (pml drops the term when beta is not learned; here set ``nu=0``). With no
  triplet in the (global) batch the loss is 0.

  Args:
    features: (B, D).
    labels: (B,) integer labels; with a per-class beta, class indices in [0, C).
    beta: scalar, (1,) or (C,) boundary (may be traced; differentiable).
    margin: alpha (may be traced).
    nu: weight of the beta regulariser (may be traced).
    distance, references, axis_name: as in `dmlax.losses.contrastive_loss`.
    triplets: optional (B, M, M) mask over (anchor, positive, negative).
    reduction: "mean" (as above), "sum" (all triplet terms plus the nu term) or "none" (each
      anchor's sum of its triplet terms, without the nu term).

  Example:
    >>> x = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> print(f"{margin_loss(x, jnp.array([0, 0, 1]), 1.4):.4f}")  # only [1.4 - sqrt 2 + 0.2]_+
    0.1858
  """
  checks.check_reduction(reduction)
  lay = pairs_lib.layout(features, labels, distance=distance, references=references,
                         axis_name=axis_name)
  sign = -1.0 if distances.is_similarity(distance) else 1.0
  d = sign * lay.mat
  beta_a, label_ok, scalar = _beta_per_anchor(beta, lay.labels, d.dtype)
  if not scalar:
    # A NaN factor on the rows of out-of-range labels: value and gradient both NaN.
    d = d * jnp.where(label_ok, 1.0, jnp.nan).astype(d.dtype)[:, None]
  pos, neg = lay.pos, lay.neg
  pos_term = jax.nn.relu(d - sign * beta_a + margin)
  neg_term = jax.nn.relu(sign * beta_a - d + margin)
  if triplets is None:
    # Every (p, n) combination: each positive term counts once per negative and vice versa.
    pos_count = jnp.where(pos, jnp.sum(neg, axis=1, keepdims=True), 0)
    neg_count = jnp.where(neg, jnp.sum(pos, axis=1, keepdims=True), 0)
  else:
    usable = pos | neg
    mask = (pairs_lib.check_triplets(triplets, d.shape) & usable[:, :, None]
            & usable[:, None, :])
    pos_count, neg_count = jnp.sum(mask, axis=2), jnp.sum(mask, axis=1)
  pos_count = pos_count.astype(d.dtype)
  neg_count = neg_count.astype(d.dtype)
  per_anchor = jnp.sum(pos_term * pos_count + neg_term * neg_count, axis=1)
  divisor = pairs_lib.psum(jnp.sum((pos_term > 0) * pos_count + (neg_term > 0) * neg_count),
                           axis_name)
  num_triplets = jnp.sum(pos_count, axis=1)
  any_triplet = pairs_lib.psum(jnp.sum(num_triplets), axis_name) > 0
  if scalar:
    reg = nu * beta_a
  else:
    reg = pairs_lib.psum(jnp.sum(nu * beta_a[:, 0] * num_triplets), axis_name)
    reg = jnp.where(divisor > 0, reg / jnp.maximum(divisor, 1.0), 0.0)
  if reduction == "none":
    return per_anchor
  total = pairs_lib.psum(jnp.sum(per_anchor), axis_name)
  if reduction == "sum":
    value = total + (reg if scalar else reg * divisor)
  else:
    value = jnp.where(divisor > 0, total / jnp.maximum(divisor, 1.0), 0.0) + reg
  return jnp.where(any_triplet, value, 0.0)


def lifted_structure_loss(
    features: ArrayLike,
    labels: ArrayLike,
    *,
    neg_margin: float = 1.0,
    pos_margin: float = 0.0,
    distance: str = "euclidean",
    pairs=None,
    reduction: str = "mean",
    axis_name: str | None = None,
) -> jax.Array:
  r"""Lifted structured loss (Oh Song et al., CVPR 2016, smooth bound; pml ``LiftedStructureLoss``).

  .. math::
    \ell(a, p) = \tfrac12\Bigl[\log\Bigl(\sum_{(i, n) \in N_a \cup N_p} e^{m_- - d_{in}}\Bigr)
      + d_{ap} - m_+\Bigr]_+^2

  for every positive pair (a, p) (both orders), :math:`N_a \cup N_p` the negative pairs of a and
  of p (the log term is 0 when both are empty, as pml's masked logsumexp gives), d the Euclidean
  distance of L2-normalised embeddings by default (a similarity enters as -s, margins as -m).
  "mean" is over the positive pairs (pml's ``MeanReducer``); 0 if the (global) batch has no
  negative pair. Under ``axis_name`` each device computes its anchors' negative terms and the
  positives' terms are gathered. No ``references``: the loss needs the negatives of every
  positive, which a memory's entries do not have.

  Args:
    features: (B, D).
    labels: (B,) integer labels.
    neg_margin, pos_margin: m_- and m_+ (may be traced).
    distance, pairs, axis_name: as in `dmlax.losses.contrastive_loss`.
    reduction: "mean" (over the positive pairs), "sum" (all pair terms) or "none" (each
      anchor's sum over its positive pairs (a, p), shape (B,)).

  Example:
    >>> x = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> print(f"{lifted_structure_loss(x, jnp.array([0, 0, 1])):.4f}")  # (log 2e^{1-sqrt 2})^2/2
    0.0389
  """
  lay, d, sign, pos, neg = _setup(features, labels, distance, None, axis_name, reduction, pairs)
  own = pairs_lib.masked_logsumexp(sign * neg_margin - d, neg, axis=1)
  has = jnp.any(neg, axis=1)
  own_ref, has_ref = pairs_lib.gather(own, axis_name), pairs_lib.gather(has, axis_name)
  both_empty = ~has[:, None] & ~has_ref[None, :]
  union = jnp.logaddexp(jnp.where(both_empty, 0.0, own[:, None]),
                        jnp.where(both_empty, 0.0, own_ref[None, :]))
  union = jnp.where(both_empty, 0.0, union)
  per_pair = jnp.where(pos, 0.5 * jnp.square(jax.nn.relu(union + d - sign * pos_margin)), 0.0)
  per_anchor = jnp.where(_any_global(neg, axis_name), jnp.sum(per_pair, axis=1), 0.0)
  return pairs_lib.reduce(per_anchor, jnp.sum(per_anchor), jnp.sum(pos), reduction, axis_name)
