"""Pair-based losses: triplet (batch-all, batch-hard, semi-hard, soft-margin), contrastive and
multi-similarity.

All of them compare B anchors with M references through `dmlax.pairs`: the batch itself, the
global batch across devices with ``axis_name`` (inside ``pmap``/``shard_map``: the exact
single-device value of the global batch; in-map gradient convention in `dmlax.pairs`), or a
cross-batch memory with ``references=(e_ref, y_ref, valid)`` (`dmlax.losses.memory`). Mined
``pairs=(pos_mask, neg_mask)`` / ``triplets=mask`` (`dmlax.miners`) restrict a loss to those.

``distance`` is one of `dmlax.distances.DISTANCES`; the default is pytorch-metric-learning's
(pml's) for the loss: Euclidean distance of L2-normalised embeddings for triplet and contrastive,
cosine similarity for multi-similarity. With a similarity, pml's ``distance.margin`` flips the
sign of every difference; the code is written once on ``as_distance(mat)`` (smaller = closer),
so a similarity s enters as -s and a margin m as -m.

Reductions: "mean" is the loss's pml reducer (documented per loss); "sum" is the sum of all
pair/triplet terms of the global batch; "none" gives each local anchor's sum of its terms (B,).
The semi-hard, soft batch-all, mined and small (M < 128) batch-all triplet losses form a
(B, M, M) tensor; the hinge batch-all loss at M >= 128 sorts instead (O(B M log M)).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from dmlax import checks
from dmlax import distances
from dmlax import pairs as pairs_lib
from dmlax.losses.logsumexp import log1p_sum_exp

TRIPLET_MINING = ("all", "hard", "semihard")

# From this many references on, the hinge batch-all loss sorts each anchor's negative distances
# instead of forming (B, M, M) violations (measured: 3x faster at B = 180, 2x slower at B = 64 on
# CPU).
_SORTED_BATCH_ALL_MIN = 128


def _oriented(lay, distance):
  """(d, sign): the matrix as a distance and the factor that maps margins onto it."""
  sign = -1.0 if distances.is_similarity(distance) else 1.0
  return sign * lay.mat, sign


def _nonzero_stats(values: jax.Array, mask: jax.Array, axis=None):
  """Sum of the masked values and how many of them are > 0 (pml's ``AvgNonZeroReducer``)."""
  values = jnp.where(mask, values, 0.0)
  return jnp.sum(values, axis=axis), jnp.sum(values > 0, axis=axis)


def _batch_all_sorted(d, pos, neg, margin):
  """Per-anchor sum and count of the violating hinge triplets, in O(M log M) per anchor.

  For an anchor a and positive p the violating negatives are those with d(a, n) < d(a, p) + m;
  with a's negative distances sorted, their count c is a search and their sum a prefix sum, so
  sum_n [d(a, p) - d(a, n) + m]_+ = c (d(a, p) + m) - prefix_c. Same value and gradient as the
  dense form (the count is piecewise constant).
  """
  sorted_neg = jnp.sort(jnp.where(neg, d, jnp.inf), axis=1)
  prefix = jnp.cumsum(jnp.where(jnp.isfinite(sorted_neg), sorted_neg, 0.0), axis=1)
  threshold = d + margin
  count = jax.vmap(functools.partial(jnp.searchsorted, side="left", method="scan_unrolled"))(
      sorted_neg, threshold)
  violating_sum = jnp.where(
      count > 0, jnp.take_along_axis(prefix, jnp.maximum(count - 1, 0), axis=1), 0.0)
  per_anchor = jnp.sum(jnp.where(pos, count * threshold - violating_sum, 0.0), axis=1)
  return per_anchor, jnp.sum(jnp.where(pos, count, 0), axis=1)


def _batch_all_counted(d, valid, margin):
  """Per-anchor sum and count of the violating hinge triplets among `valid` (B, M, M).

  Which triplets violate is piecewise constant, so it is found once (no gradient) and the loss
  is then linear in d: sum = sum_p c_p d(a, p) - sum_n c_n d(a, n) + m c, with c_p (c_n) the
  violating triplets through p (n). Same value and gradient as the dense hinge; the backward
  pass never touches a (B, M, M) tensor.
  """
  fixed = jax.lax.stop_gradient(d)
  active = valid & (fixed[:, :, None] - fixed[:, None, :] + margin > 0)
  through_pos = jnp.sum(active, axis=2).astype(d.dtype)
  through_neg = jnp.sum(active, axis=1).astype(d.dtype)
  count = jnp.sum(through_pos, axis=1)
  per_anchor = (jnp.sum(d * through_pos, axis=1) - jnp.sum(d * through_neg, axis=1)
                + margin * count)
  return per_anchor, count


def triplet_margin_loss(
    features: ArrayLike,
    labels: ArrayLike,
    *,
    margin: float = 0.2,
    mining: str = "all",
    soft: bool = False,
    distance: str = "euclidean",
    triplets: ArrayLike | None = None,
    references=None,
    reduction: str = "mean",
    axis_name: str | None = None,
) -> jax.Array:
  r"""Triplet margin loss with in-batch mining.

  .. math:: \ell(a, p, n) = [d(a, p) - d(a, n) + m]_+ \quad(\text{or } \log(1 + e^{d(a,p) - d(a,n)
    + m}) \text{ with } soft)

  over anchors a, positives p != a of the same label and negatives n of another label, with d the
  Euclidean distance of L2-normalised embeddings by default (similarities s enter as -s).

  - ``mining="all"`` (batch-all): every valid triplet, or those of `triplets`; the mean is over
    the triplets with a positive loss (Hermans et al.'s "BA != 0"; pml's ``TripletMarginLoss``
    with its default ``AvgNonZeroReducer``, which this matches).
  - ``mining="hard"`` (batch-hard, Hermans, Beyer and Leibe, "In Defense of the Triplet Loss",
    2017): per anchor the farthest positive and the nearest negative; mean over anchors that have
    both (pml's ``BatchHardMiner`` + ``TripletMarginLoss`` with ``MeanReducer``; its default
    ``AvgNonZeroReducer`` would divide by the non-zero ones only).
  - ``mining="semihard"`` (Schroff et al., FaceNet, CVPR 2015, as TensorFlow-Addons'
    ``TripletSemiHardLoss``): per positive pair the nearest negative farther than the positive,
    else the farthest negative; mean over positive pairs whose anchor has a negative.
    Deliberate difference from TF-Addons: embeddings are normalised here.
  - ``soft=True`` replaces the hinge by softplus (pml's ``smooth_loss``); with ``margin=0`` it is
    Hermans et al.'s soft-margin triplet loss.

  Returns 0 when the batch has no valid triplet.

  Args:
    features: (B, D).
    labels: (B,) integer labels (any values; only equality matters).
    margin: m (may be traced).
    mining: "all", "hard" or "semihard" (static).
    soft: softplus instead of hinge (static).
    distance: see `dmlax.distances`.
    triplets: optional (B, M, M) mask over (anchor, positive, negative), e.g. from
      `dmlax.miners.triplet_margin_miner`; only with ``mining="all"``.
    references: optional (e_ref, y_ref, valid) compared against instead of the batch.
    reduction: "mean" (as above), "sum" (all terms) or "none" (each anchor's sum of terms).
    axis_name: mapped axis of a data-parallel batch (see `dmlax.pairs`).

  Example:
    >>> x = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> triplet_margin_loss(x, jnp.array([0, 0, 1]), margin=0.2)  # d_an = sqrt 2 > 0.2: zero
    Array(0., dtype=float32)
  """
  checks.check_in(mining, TRIPLET_MINING, "mining")
  checks.check_reduction(reduction)
  if triplets is not None and mining != "all":
    raise ValueError(f"triplets= selects the triplets itself; it needs mining='all', got "
                     f"mining={mining!r}")
  lay = pairs_lib.layout(features, labels, distance=distance, references=references,
                         axis_name=axis_name)
  d, _ = _oriented(lay, distance)
  pos, neg = lay.pos, lay.neg
  fn = jax.nn.softplus if soft else jax.nn.relu
  if mining == "all":
    if triplets is None and not soft and d.shape[1] >= _SORTED_BATCH_ALL_MIN:
      per_anchor, count = _batch_all_sorted(d, pos, neg, margin)
      return pairs_lib.reduce(per_anchor, jnp.sum(per_anchor), jnp.sum(count), reduction,
                              axis_name)
    valid = pos[:, :, None] & neg[:, None, :]
    if triplets is not None:
      usable = pos | neg
      valid = (pairs_lib.check_triplets(triplets, d.shape) & usable[:, :, None]
               & usable[:, None, :])
    if soft:
      per_anchor, count = _nonzero_stats(fn(d[:, :, None] - d[:, None, :] + margin), valid,
                                         axis=(1, 2))
    else:
      per_anchor, count = _batch_all_counted(d, valid, margin)
    return pairs_lib.reduce(per_anchor, jnp.sum(per_anchor), jnp.sum(count), reduction,
                            axis_name)
  has_neg = jnp.any(neg, axis=1)
  if mining == "hard":
    valid = jnp.any(pos, axis=1) & has_neg
    hardest_pos = jnp.max(jnp.where(pos, d, -jnp.inf), axis=1)
    hardest_neg = jnp.min(jnp.where(neg, d, jnp.inf), axis=1)
    gap = jnp.where(valid, hardest_pos - hardest_neg, 0.0)
    per_anchor = jnp.where(valid, fn(gap + margin), 0.0)
    return pairs_lib.reduce(per_anchor, jnp.sum(per_anchor), jnp.sum(valid), reduction,
                            axis_name)
  # Semi-hard: for each (a, p), negatives with d(a, n) > d(a, p).
  d_ap = d[:, :, None]
  d_an = d[:, None, :]
  outside = neg[:, None, :] & (d_an > d_ap)
  nearest_outside = jnp.min(jnp.where(outside, d_an, jnp.inf), axis=2)
  farthest = jnp.max(jnp.where(neg, d, -jnp.inf), axis=1)[:, None]
  chosen = jnp.where(jnp.any(outside, axis=2), nearest_outside, farthest)
  valid = pos & has_neg[:, None]
  per_pair = jnp.where(valid, fn(d - jnp.where(valid, chosen, 0.0) + margin), 0.0)
  per_anchor = jnp.sum(per_pair, axis=1)
  return pairs_lib.reduce(per_anchor, jnp.sum(per_anchor), jnp.sum(valid), reduction, axis_name)


def contrastive_loss(
    features: ArrayLike,
    labels: ArrayLike,
    *,
    pos_margin: float = 0.0,
    neg_margin: float = 1.0,
    distance: str = "euclidean",
    pairs=None,
    references=None,
    reduction: str = "mean",
    axis_name: str | None = None,
) -> jax.Array:
  r"""Contrastive loss (Hadsell, Chopra and LeCun, CVPR 2006) as pytorch-metric-learning has it.

  .. math::
    L = \operatorname{mean}_{\ne 0}\, [d(i, j) - m_+]_+ \;(\text{same label}, i \ne j)
      + \operatorname{mean}_{\ne 0}\, [m_- - d(i, j)]_+ \;(\text{different labels})

  with d the Euclidean distance of L2-normalised embeddings by default (a similarity s gives
  :math:`[m_+ - s]_+` and :math:`[s - m_-]_+`) and each mean over the pairs with a non-zero loss
  (0 if none). Matches ``pytorch_metric_learning.losses.ContrastiveLoss`` (defaults
  ``pos_margin=0, neg_margin=1``, ``AvgNonZeroReducer``). Deliberate difference from Hadsell et
  al.: distances are not squared (pml's default ``LpDistance(power=1)``; use
  ``distance="squared_euclidean"`` for theirs).

  Args:
    features: (B, D).
    labels: (B,) integer labels.
    pos_margin, neg_margin: m_+ and m_- (may be traced).
    distance: see `dmlax.distances`.
    pairs: optional (pos_mask, neg_mask), each (B, M), e.g. from a miner.
    references: optional (e_ref, y_ref, valid) compared against instead of the batch.
    reduction: "mean" (as above), "sum" (all pair terms) or "none" (each anchor's sum).
    axis_name: mapped axis of a data-parallel batch (see `dmlax.pairs`).

  Example:
    >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> contrastive_loss(x, jnp.array([0, 1]))  # 1 - sqrt(2) < 0: no loss
    Array(0., dtype=float32)
  """
  checks.check_reduction(reduction)
  lay = pairs_lib.layout(features, labels, distance=distance, references=references,
                         axis_name=axis_name)
  d, sign = _oriented(lay, distance)
  pos, neg = pairs_lib.pair_masks(lay, pairs)
  pos_sum, pos_count = _nonzero_stats(jax.nn.relu(d - sign * pos_margin), pos, axis=1)
  neg_sum, neg_count = _nonzero_stats(jax.nn.relu(sign * neg_margin - d), neg, axis=1)
  if reduction != "mean":
    return pairs_lib.reduce(pos_sum + neg_sum, None, None, reduction, axis_name)
  return (pairs_lib.mean_over(jnp.sum(pos_sum), jnp.sum(pos_count), axis_name)
          + pairs_lib.mean_over(jnp.sum(neg_sum), jnp.sum(neg_count), axis_name))


def multi_similarity_loss(
    features: ArrayLike,
    labels: ArrayLike,
    *,
    alpha: float = 2.0,
    beta: float = 50.0,
    base: float = 0.5,
    distance: str = "cosine",
    pairs=None,
    references=None,
    reduction: str = "mean",
    axis_name: str | None = None,
) -> jax.Array:
  r"""Multi-similarity loss (Wang et al., CVPR 2019).

  .. math::
    \ell_i = \frac1\alpha \log\Bigl(1 + \sum_{j \in P_i} e^{-\alpha (s_{ij} - \lambda)}\Bigr)
           + \frac1\beta \log\Bigl(1 + \sum_{j \in N_i} e^{\beta (s_{ij} - \lambda)}\Bigr)

  with :math:`s_{ij}` cosine similarities by default (a distance d enters as -d, and
  :math:`\lambda` as :math:`-\lambda`), :math:`P_i` the other same-label samples, :math:`N_i` the
  other-label samples (or the mined `pairs`) and :math:`\lambda` = `base`; an anchor with no
  pairs contributes 0 and still counts in the mean. Matches pml's ``MultiSimilarityLoss`` (same
  defaults, ``MeanReducer``). The paper's pair mining is
  `dmlax.miners.multi_similarity_miner`, passed as ``pairs=``.

  Args:
    features: (B, D).
    labels: (B,) integer labels.
    alpha, beta: positive and negative scales (may be traced).
    base: lambda, the similarity offset (may be traced).
    distance: see `dmlax.distances`.
    pairs: optional (pos_mask, neg_mask), each (B, M).
    references: optional (e_ref, y_ref, valid) compared against instead of the batch.
    reduction: "mean", "sum" or "none" (per anchor).
    axis_name: mapped axis of a data-parallel batch (see `dmlax.pairs`).

  Example:
    >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> multi_similarity_loss(x, jnp.array([0, 1]))  # log(1 + e^{-25}) / 50
    Array(2.7775888e-13, dtype=float32)
  """
  checks.check_reduction(reduction)
  lay = pairs_lib.layout(features, labels, distance=distance, references=references,
                         axis_name=axis_name)
  d, sign = _oriented(lay, distance)
  pos, neg = pairs_lib.pair_masks(lay, pairs)
  margin = d - sign * base
  per_anchor = (log1p_sum_exp(alpha * margin, pos, axis=1) / alpha
                + log1p_sum_exp(-beta * margin, neg, axis=1) / beta)
  return pairs_lib.reduce(per_anchor, jnp.sum(per_anchor), per_anchor.shape[0], reduction,
                          axis_name)
