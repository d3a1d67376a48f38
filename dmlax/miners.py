"""Pair and triplet miners as pure functions returning fixed-shape boolean masks.

Each miner selects the same set as the pytorch-metric-learning (pml) 2.9 miner of the same name
on the same inputs (pml returns index tuples; here ``mask[a, j]`` is True exactly when pml's
tuple holds the pair or triplet). Pairs are ``(pos_mask, neg_mask)`` of shape (B, M); triplets
one (B, M, M) mask over (anchor, positive, negative); M is B, the global batch with
``axis_name``, or the references' size (see `dmlax.pairs`). Pass them to a loss as
``pairs=`` / ``triplets=``. Masks carry no gradient.

Every miner takes ``distance`` ("cosine", "dot", "euclidean", "squared_euclidean"; the default
is pml's for that miner), ``references=(e_ref, y_ref, valid)`` and ``axis_name``.
Thresholds (``epsilon``, margins) may be traced arrays; strategies are static strings.

Example:
  >>> x = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [0.6, 0.8]])
  >>> pos, neg = multi_similarity_miner(x, jnp.array([0, 0, 1, 1]))
  >>> pos.shape, neg.shape
  ((4, 4), (4, 4))
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from dmlax import checks
from dmlax import distances
from dmlax import pairs as pairs_lib

TRIPLET_TYPES = ("all", "hard", "semihard", "easy")
STRATEGIES = ("hard", "semihard", "easy", "all")


def _setup(features, labels, distance, references, axis_name):
  lay = pairs_lib.layout(features, labels, distance=distance, references=references,
                         axis_name=axis_name, stop_gradient=True)
  return lay, distances.as_distance(lay.mat, distance), (-1.0 if distances.is_similarity(
      distance) else 1.0)


def multi_similarity_miner(
    features: ArrayLike,
    labels: ArrayLike,
    *,
    epsilon: float = 0.1,
    distance: str = "cosine",
    references=None,
    axis_name: str | None = None,
) -> tuple[jax.Array, jax.Array]:
  r"""Multi-similarity pair mining (Wang et al., CVPR 2019; pml ``MultiSimilarityMiner``).

  With similarities s, a positive pair is kept when :math:`s_{ap} - \epsilon < \max_{n} s_{an}`
  and a negative pair when :math:`s_{an} + \epsilon > \min_p s_{ap}` (mirrored for distances).
  If the (global) batch has no positive or no negative pair, nothing is selected, as in pml.

  Returns:
    (pos_mask, neg_mask), each (B, M) boolean.
  """
  lay, d, _ = _setup(features, labels, distance, references, axis_name)
  min_neg = jnp.min(jnp.where(lay.neg, d, jnp.inf), axis=1, keepdims=True)
  max_pos = jnp.max(jnp.where(lay.pos, d, -jnp.inf), axis=1, keepdims=True)
  pos = lay.pos & (d + epsilon > min_neg)
  neg = lay.neg & (d - epsilon < max_pos)
  both = (pairs_lib.psum(jnp.sum(lay.pos), axis_name) > 0) & (
      pairs_lib.psum(jnp.sum(lay.neg), axis_name) > 0)
  return pos & both, neg & both


def pair_margin_miner(
    features: ArrayLike,
    labels: ArrayLike,
    *,
    pos_margin: float = 0.2,
    neg_margin: float = 0.8,
    distance: str = "euclidean",
    references=None,
    axis_name: str | None = None,
) -> tuple[jax.Array, jax.Array]:
  r"""Pairs that violate a margin (pml ``PairMarginMiner``).

  Distances: positives with :math:`d_{ap} > m_+`, negatives with :math:`d_{an} < m_-`;
  similarities: :math:`s_{ap} < m_+`, :math:`s_{an} > m_-`.

  Returns:
    (pos_mask, neg_mask), each (B, M) boolean.
  """
  lay, d, sign = _setup(features, labels, distance, references, axis_name)
  return lay.pos & (d > sign * pos_margin), lay.neg & (d < sign * neg_margin)


def triplet_margin_miner(
    features: ArrayLike,
    labels: ArrayLike,
    *,
    margin: float = 0.2,
    type_of_triplets: str = "all",
    distance: str = "euclidean",
    references=None,
    axis_name: str | None = None,
) -> jax.Array:
  r"""Triplets by their margin :math:`t = d_{an} - d_{ap}` (pml ``TripletMarginMiner``).

  ``"all"``: :math:`t \le m`; ``"hard"``: :math:`t \le 0`; ``"semihard"``: :math:`0 < t \le m`;
  ``"easy"``: :math:`t > m` (for similarities :math:`t = s_{ap} - s_{an}`).

  Returns:
    (B, M, M) boolean mask over (anchor, positive, negative).
  """
  checks.check_in(type_of_triplets, TRIPLET_TYPES, "type_of_triplets")
  lay, d, _ = _setup(features, labels, distance, references, axis_name)
  valid = lay.pos[:, :, None] & lay.neg[:, None, :]
  t = d[:, None, :] - d[:, :, None]
  if type_of_triplets == "easy":
    return valid & (t > margin)
  keep = valid & (t <= margin)
  if type_of_triplets == "hard":
    keep &= t <= 0
  elif type_of_triplets == "semihard":
    keep &= t > 0
  return keep


def _one_hot_rows(index: jax.Array, keep: jax.Array, width: int) -> jax.Array:
  return keep[:, None] & (index[:, None] == jnp.arange(width)[None, :])


def batch_hard_miner(
    features: ArrayLike,
    labels: ArrayLike,
    *,
    distance: str = "euclidean",
    references=None,
    axis_name: str | None = None,
) -> jax.Array:
  r"""Batch-hard triplets (Hermans, Beyer and Leibe, 2017; pml ``BatchHardMiner``).

  Per anchor with a positive and a negative: the farthest positive and the nearest negative
  (first index on ties).

  Returns:
    (B, M, M) boolean mask with at most one triplet per anchor.
  """
  lay, d, _ = _setup(features, labels, distance, references, axis_name)
  p = jnp.argmax(jnp.where(lay.pos, d, -jnp.inf), axis=1)
  n = jnp.argmin(jnp.where(lay.neg, d, jnp.inf), axis=1)
  keep = jnp.any(lay.pos, axis=1) & jnp.any(lay.neg, axis=1)
  width = d.shape[1]
  return _one_hot_rows(p, keep, width)[:, :, None] & _one_hot_rows(n, keep, width)[:, None, :]


def _per_row(d, mask, mode, val_range, mat, threshold):
  """pml's ``get_x_per_row`` in distance form: (values, indices, non-empty rows)."""
  if threshold is not None:
    mask = mask & ((d < threshold[:, None]) if mode == "max" else (d > threshold[:, None]))
  if val_range is not None:
    mask = mask & (mat <= val_range[1]) & (mat >= val_range[0])
  fill = -jnp.inf if mode == "max" else jnp.inf
  masked = jnp.where(mask, d, fill)
  index = jnp.argmax(masked, axis=1) if mode == "max" else jnp.argmin(masked, axis=1)
  value = jnp.max(masked, axis=1) if mode == "max" else jnp.min(masked, axis=1)
  return value, index, jnp.any(mask, axis=1)


def batch_easy_hard_miner(
    features: ArrayLike,
    labels: ArrayLike,
    *,
    pos_strategy: str = "easy",
    neg_strategy: str = "semihard",
    allowed_pos_range: tuple[float, float] | None = None,
    allowed_neg_range: tuple[float, float] | None = None,
    distance: str = "euclidean",
    references=None,
    axis_name: str | None = None,
) -> tuple[jax.Array, jax.Array]:
  r"""Easy-positive / hard-negative pair mining (Xuan, Stylianou and Pless, WACV 2020; pml
  ``BatchEasyHardMiner``).

  Per anchor one positive and one negative by strategy: positives "easy" (nearest), "hard"
  (farthest), "semihard" (farthest among those nearer than the chosen negative); negatives
  "hard" (nearest), "easy" (farthest), "semihard" (nearest among those farther than the chosen
  positive); "all" keeps every pair of that kind. An anchor is kept when both of its picks exist
  (for "all" on one side, each side independently). ``allowed_*_range = (lo, hi)`` restricts the
  candidates to ``lo <= value <= hi`` in the units of `distance`.

  Returns:
    (pos_mask, neg_mask), each (B, M) boolean with at most one entry per row unless "all".
  """
  checks.check_in(pos_strategy, STRATEGIES, "pos_strategy")
  checks.check_in(neg_strategy, STRATEGIES, "neg_strategy")
  if pos_strategy == neg_strategy == "semihard":
    raise ValueError('pos_strategy and neg_strategy cannot both be "semihard"')
  if "semihard" in (pos_strategy, neg_strategy) and "all" in (pos_strategy, neg_strategy):
    raise ValueError('"semihard" cannot be combined with "all" (pos_strategy, neg_strategy)')
  lay, d, _ = _setup(features, labels, distance, references, axis_name)
  pos_mode = "min" if pos_strategy == "easy" else "max"
  neg_mode = "max" if neg_strategy == "easy" else "min"
  ranges = [None if r is None else (jnp.asarray(r[0]), jnp.asarray(r[1]))
            for r in (allowed_pos_range, allowed_neg_range)]

  def positives(threshold=None):
    return _per_row(d, lay.pos, pos_mode, ranges[0], lay.mat, threshold)

  def negatives(threshold=None):
    return _per_row(d, lay.neg, neg_mode, ranges[1], lay.mat, threshold)

  if pos_strategy == "semihard" and neg_strategy != "all":
    neg_v, neg_i, neg_keep = negatives()
    _, pos_i, pos_keep = positives(neg_v)
  elif neg_strategy == "semihard" and pos_strategy != "all":
    pos_v, pos_i, pos_keep = positives()
    _, neg_i, neg_keep = negatives(pos_v)
  else:
    if pos_strategy != "all":
      _, pos_i, pos_keep = positives()
    if neg_strategy != "all":
      _, neg_i, neg_keep = negatives()
  width = d.shape[1]
  if "all" not in (pos_strategy, neg_strategy):
    keep = pos_keep & neg_keep
    return _one_hot_rows(pos_i, keep, width), _one_hot_rows(neg_i, keep, width)
  pos = lay.pos if pos_strategy == "all" else _one_hot_rows(pos_i, pos_keep, width)
  neg = lay.neg if neg_strategy == "all" else _one_hot_rows(neg_i, neg_keep, width)
  return pos, neg
