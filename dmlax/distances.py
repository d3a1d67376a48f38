"""Pairwise distances and similarities for the pair losses and miners.

Four choices, named as pytorch-metric-learning's defaults compute them:

- ``"cosine"``: :math:`\\hat x^\\top \\hat r` (``CosineSimilarity()``), a similarity;
- ``"dot"``: :math:`x^\\top r` on the raw vectors (``DotProductSimilarity(normalize_embeddings=
  False)``), a similarity;
- ``"euclidean"``: :math:`\\lVert \\hat x - \\hat r\\rVert_2` (``LpDistance()``), a distance;
- ``"squared_euclidean"``: :math:`\\lVert \\hat x - \\hat r\\rVert_2^2` (``LpDistance(power=2)``).

with :math:`\\hat x = x / \\max(\\lVert x\\rVert, 10^{-12})`. Euclidean distances come from the
Gram matrix, :math:`\\lVert\\hat x\\rVert^2 + \\lVert\\hat r\\rVert^2 - 2\\hat x^\\top\\hat r`
clipped at 0 (no (B, M, D) tensor), with a square root whose gradient is 0 (not inf) at 0.
Everything is computed in float32 or wider.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dmlax import checks
from dmlax.losses.normalization import l2_normalize

DISTANCES = ("cosine", "dot", "euclidean", "squared_euclidean")
SIMILARITIES = ("cosine", "dot")


def check_distance(distance: str) -> None:
  checks.check_in(distance, DISTANCES, "distance")


def is_similarity(distance: str) -> bool:
  """True when larger values mean closer (pml's ``is_inverted``)."""
  check_distance(distance)
  return distance in SIMILARITIES


def safe_sqrt(v: jax.Array) -> jax.Array:
  """sqrt(v) for v >= 0 with derivative 0 (not inf) at v = 0."""
  positive = v > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, v, 1.0)), 0.0)


def _as_float(x) -> jax.Array:
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def pairwise(x, r, distance: str) -> jax.Array:
  """(B, M) matrix of `distance` between the rows of `x` (B, D) and `r` (M, D).

  Example:
    >>> x = jnp.array([[3.0, 4.0], [0.0, 2.0]])
    >>> pairwise(x, x, "dot")
    Array([[25.,  8.],
           [ 8.,  4.]], dtype=float32)
  """
  check_distance(distance)
  x, r = _as_float(x), _as_float(r)
  if distance == "dot":
    return x @ r.T
  x, r = l2_normalize(x, axis=-1), l2_normalize(r, axis=-1)
  gram = x @ r.T
  if distance == "cosine":
    return gram
  sq = jnp.maximum(
      jnp.sum(jnp.square(x), axis=1)[:, None] + jnp.sum(jnp.square(r), axis=1)[None, :]
      - 2.0 * gram, 0.0)
  return sq if distance == "squared_euclidean" else safe_sqrt(sq)


def as_distance(mat: jax.Array, distance: str) -> jax.Array:
  """`mat` oriented so that smaller means closer: itself for distances, minus it for similarities.

  pml's ``distance.margin(x, y)`` (``x - y``, or ``y - x`` for a similarity) is then always
  ``as_distance(x) - as_distance(y)``; the losses and miners are written once on this form.
  """
  return -mat if is_similarity(distance) else mat
