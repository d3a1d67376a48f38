"""Clustering quality of embeddings: NMI and AMI of a seeded k-means against the labels.

k-means is scikit-learn's `KMeans` (k-means++ initialisation, Lloyd iterations, a fixed seed):
it is already a dependency, deterministic for a seed, and its cost is BLAS matrix products on
the host, which is what a JAX version would also spend on a CPU. The scores are scikit-learn's
`normalized_mutual_info_score` (arithmetic-mean normalisation) and
`adjusted_mutual_info_score`, the functions pytorch-metric-learning's `AccuracyCalculator`
calls; the number of clusters is the number of distinct labels, as there.
"""

from __future__ import annotations

import numpy as np
from jax.typing import ArrayLike
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score

from dmlax.checks import check_features_labels
from dmlax.metrics.tiles import check_embeddings


def cluster(embeddings: ArrayLike, labels: ArrayLike, *, seed: int = 0,
            normalize: bool = True) -> np.ndarray:
  """k-means cluster index of every embedding, as many clusters as distinct labels."""
  n = check_embeddings(embeddings, "embeddings")
  check_features_labels(embeddings, labels, "embeddings")
  num_clusters = np.unique(np.asarray(labels)).size
  if num_clusters > n:
    raise ValueError(f"more classes ({num_clusters}) than embeddings ({n})")
  x = np.asarray(embeddings, np.float32)
  if normalize:
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
  return KMeans(n_clusters=num_clusters, n_init=1, random_state=seed).fit_predict(x)


def nmi(embeddings: ArrayLike, labels: ArrayLike, *, seed: int = 0,
        normalize: bool = True) -> float:
  """Normalised mutual information between k-means clusters and labels.

    NMI = I(Y; K) / ((H(Y) + H(K)) / 2)

  k-means with as many clusters as labels, seeded by `seed`, on L2-normalised embeddings
  unless `normalize=False`.

  Example:
    >>> import jax.numpy as jnp
    >>> x = jnp.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> round(nmi(x, jnp.array([0, 0, 1, 1])), 6)
    1.0
  """
  clusters = cluster(embeddings, labels, seed=seed, normalize=normalize)
  return float(normalized_mutual_info_score(np.asarray(labels), clusters))


def ami(embeddings: ArrayLike, labels: ArrayLike, *, seed: int = 0,
        normalize: bool = True) -> float:
  """Adjusted mutual information between k-means clusters and labels (Vinh et al. 2010).

    AMI = (I - E[I]) / ((H(Y) + H(K)) / 2 - E[I])

  E[I] the expected mutual information of random clusterings with the same cluster sizes.
  Clustering as in `nmi`.

  Example:
    >>> import jax.numpy as jnp
    >>> x = jnp.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> round(ami(x, jnp.array([0, 0, 1, 1])), 6)
    1.0
  """
  clusters = cluster(embeddings, labels, seed=seed, normalize=normalize)
  return float(adjusted_mutual_info_score(np.asarray(labels), clusters))
