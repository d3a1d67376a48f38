"""Pair verification accuracy under the LFW protocol (face-recognition papers, W-Softmax)."""

from __future__ import annotations

import numpy as np
from jax.typing import ArrayLike

from dmlax.metrics.tiles import check_embeddings


def _best_threshold(sims: np.ndarray, same: np.ndarray) -> float:
  """Threshold t maximising the accuracy of `sims > t`, among midpoints of sorted values."""
  order = np.argsort(sims, kind="stable")
  s, p = sims[order], same[order]
  # Accuracy when the first i pairs (smallest similarities) are called different.
  diff_below = np.concatenate([[0], np.cumsum(~p)])
  same_above = np.concatenate([[0], np.cumsum(p[::-1])])[::-1]
  correct = diff_below + same_above
  # A cut is only possible between distinct values (or at either end).
  cut_ok = np.concatenate([[True], s[1:] > s[:-1], [True]])
  i = int(np.argmax(np.where(cut_ok, correct, -1)))
  if i == 0:
    return float(s[0] - 1.0)
  if i == len(s):
    return float(s[-1])
  return float((s[i - 1] + s[i]) / 2)


def verification_accuracy(embeddings_a: ArrayLike, embeddings_b: ArrayLike, same: ArrayLike, *,
                          folds: int = 10) -> dict[str, float | list[float]]:
  """LFW-protocol verification accuracy of cosine similarity with a learned threshold.

  Pairs are split into `folds` consecutive folds (LFW's pairs.txt lists 10 sets of 600). For
  each fold the threshold t maximising accuracy on the other folds is chosen (the midpoint
  between neighbouring similarities there), and the fold's pairs are called "same" when
  cos(a, b) > t. The accuracy is the mean over folds, as in the LFW benchmark (Huang et al.
  2007) and facenet's `calculate_roc`, which scans a fixed grid instead of the exact optimum.

  Args:
    embeddings_a, embeddings_b: (P, D) embeddings of the two sides of each pair.
    same: (P,) booleans, True for a same-identity pair.
    folds: number of folds, at least 2 and at most P.

  Returns:
    {"accuracy": mean over folds, "std": their standard deviation, "thresholds": per fold}.

  Example:
    >>> import jax.numpy as jnp
    >>> a = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    >>> b = jnp.array([[1.0, 0.1], [0.0, 1.0], [0.1, 1.0], [1.0, 0.0]])
    >>> acc = verification_accuracy(a, b, jnp.array([True, False, True, False]), folds=2)
    >>> round(acc["accuracy"], 6)
    1.0
  """
  n = check_embeddings(embeddings_a, "embeddings_a")
  m = check_embeddings(embeddings_b, "embeddings_b")
  if np.shape(embeddings_a) != np.shape(embeddings_b):
    raise ValueError(f"embeddings_a and embeddings_b must have the same shape, got "
                     f"{np.shape(embeddings_a)} and {np.shape(embeddings_b)}")
  same = np.asarray(same)
  if same.shape != (n,):
    raise ValueError(f"same must have shape ({n},), one flag per pair, got {same.shape}")
  if same.dtype != bool:
    if not np.isin(same, (0, 1)).all():
      raise ValueError("same must hold booleans (or 0/1)")
    same = same.astype(bool)
  if not isinstance(folds, (int, np.integer)) or not 2 <= folds <= n:
    raise ValueError(f"folds must be an integer in [2, {n}] (the number of pairs), got {folds!r}")
  a = np.asarray(embeddings_a, np.float64)
  b = np.asarray(embeddings_b, np.float64)
  sims = np.sum(a * b, axis=1) / np.maximum(
      np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
  accuracies, thresholds = [], []
  for test in np.array_split(np.arange(m), folds):
    train = np.setdiff1d(np.arange(m), test)
    t = _best_threshold(sims[train], same[train])
    thresholds.append(t)
    accuracies.append(float(np.mean((sims[test] > t) == same[test])))
  return {"accuracy": float(np.mean(accuracies)), "std": float(np.std(accuracies)),
          "thresholds": thresholds}
