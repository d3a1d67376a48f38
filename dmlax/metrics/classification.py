"""Classification error from logits."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from dmlax.checks import check_features_labels, label_guard


def topk_error(logits: ArrayLike, labels: ArrayLike, k: int = 1) -> float:
  """Top-k error: the fraction of samples whose label is not among the k largest logits.

    err = (1/N) sum_n [rank_n >= k],  rank_n = #{c : z[n, c] > z[n, y_n]}
                                              + #{c < y_n : z[n, c] = z[n, y_n]}

  Ties go to the lower class index, as `lax.top_k` (and the ImageNet reference scripts'
  `topk`) order them. GSL reports top-1 and top-5 error on ImageNet.

  Example:
    >>> z = jnp.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
    >>> topk_error(z, jnp.array([2, 2]), k=1), topk_error(z, jnp.array([2, 2]), k=2)
    (1.0, 0.0)
  """
  _, num_classes = check_features_labels(logits, labels, "logits")
  if not isinstance(k, (int, np.integer)) or not 1 <= k <= num_classes:
    raise ValueError(f"k must be an integer in [1, {num_classes}] (the classes), got {k!r}")
  label_guard(labels, num_classes)
  return float(_topk_error(jnp.asarray(logits), jnp.asarray(labels), k=int(k)))


@functools.partial(jax.jit, static_argnames=("k",))
def _topk_error(z, y, *, k):
  z = z.astype(jnp.float32)
  target = jnp.take_along_axis(z, y[:, None], axis=1)
  lower = jnp.arange(z.shape[1])[None, :] < y[:, None]
  rank = jnp.sum((z > target) | ((z == target) & lower), axis=1)
  return jnp.mean(rank >= k)
