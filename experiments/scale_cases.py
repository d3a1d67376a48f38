"""The loss cases of `experiments/bench_scale.py`: class-shardable losses and plain references.

Each case is a dmlax loss that shards its classifier (or proxies) by class
(``class_axis_name``), the `PartitionSpec` of that sharding, its initialiser, and a
straightforward reference of the same formula (written out from the paper's equations, no
dmlax code) that the single-device path is timed and checked against.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import PartitionSpec as P

from dmlax import losses

AXIS = "model"

def _softmax_ce(features, labels, weights, *, class_axis_name=None):
  return losses.softmax_cross_entropy(features @ weights, labels,
                                      class_axis_name=class_axis_name)


def _softmax_ce_reference(features, labels, weights):
  return optax.softmax_cross_entropy_with_integer_labels(features @ weights, labels).mean()


def _w_softmax_reference(features, labels, weights, alpha=1.0):
  """Li & Wang (2020) eqs. 11-13: w'_j = (alpha w_y + w_j) / ||alpha w_y + w_j||, unit w."""
  w = weights / jnp.linalg.norm(weights, axis=0, keepdims=True)
  s = features @ w  # (B, C)
  g = w[:, labels].T @ w  # (B, C): w_y . w_j, so ||alpha w_y + w_j||^2 = alpha^2 + 2 alpha g + 1
  onehot = jax.nn.one_hot(labels, weights.shape[1], dtype=bool)
  s_y = jnp.sum(jnp.where(onehot, s, 0.0), axis=1, keepdims=True)
  biased = (alpha * s_y + s) / jnp.sqrt(alpha**2 + 2 * alpha * g + 1)
  logits = jnp.where(onehot, s, biased)
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def _log1p_sum_exp(a, mask):
  """log(1 + sum over the masked rows of exp(a)), per column."""
  padded = jnp.concatenate([jnp.zeros((1, a.shape[1]), a.dtype), jnp.where(mask, a, -jnp.inf)])
  return jax.nn.logsumexp(padded, axis=0)


def _mpa_reference(features, labels, proxies, alpha=32.0, gamma=0.1, margin=0.1, tau=0.2):
  """Saeki et al. (MPA) eqs. 1, 3, 6-7 with the default hyperparameters of `mpa_loss`."""
  num_classes, k, _ = proxies.shape
  x = features / jnp.linalg.norm(features, axis=1, keepdims=True)
  w = proxies / jnp.linalg.norm(proxies, axis=2, keepdims=True)
  cos = jnp.einsum("bd,ckd->bck", x, w)
  sim = jnp.sum(jax.nn.softmax(cos / gamma, axis=2) * cos, axis=2)  # eq. 1, (B, C)
  positive = jax.nn.one_hot(labels, num_classes, dtype=bool)
  pos = _log1p_sum_exp(-alpha * (sim - margin), positive)
  neg = _log1p_sum_exp(alpha * (sim + margin), ~positive)
  num_present = jnp.sum(jnp.any(positive, axis=0))
  t, s = np.triu_indices(k, 1)
  pair_cos = jnp.sum(w[:, t] * w[:, s], axis=2)
  reg = jnp.sum(jnp.sqrt(2.0 + 1e-5 - 2.0 * pair_cos)) / (num_classes * k * (k - 1))  # eq. 3
  return jnp.sum(pos) / num_present + jnp.sum(neg) / num_classes + tau * reg


def hashed_uniform(shape, seed: int, bound: float) -> jax.Array:
  """Float32 array uniform on [-bound, bound) from a hash of each element's flat index.

  The values are the same under every sharding (XLA partitions the iota) and need no buffer
  beyond the output: ``jax.random``'s threefry took 1.5x the output in temporaries, 6 GB for a
  (512, 10^6) classifier and its momentum. The hash is MurmurHash3's 32-bit finaliser of the
  index plus a seed-dependent offset (at most 2^32 elements).
  """
  if int(np.prod(shape)) > 2**32:
    raise ValueError(f"hashed_uniform: shape {shape} has more than 2^32 elements")
  index = jnp.zeros(shape, jnp.uint32)
  stride = 1
  for axis in reversed(range(len(shape))):
    index = index + jax.lax.broadcasted_iota(jnp.uint32, shape, axis) * jnp.uint32(stride)
    stride *= shape[axis]
  h = index + jnp.uint32((seed * 0x9E3779B9) % 2**32)
  h = (h ^ (h >> 16)) * jnp.uint32(0x85EBCA6B)
  h = (h ^ (h >> 13)) * jnp.uint32(0xC2B2AE35)
  h = h ^ (h >> 16)
  unit = (h >> 8).astype(jnp.float32) * (2.0**-24)  # [0, 1), 24 bits
  return (2.0 * unit - 1.0) * bound


def _classifier_init(seed, dim, num_classes, k):
  """(D, C) weights of standard deviation 1 / sqrt(D)."""
  del k
  return hashed_uniform((dim, num_classes), seed, np.sqrt(3.0 / dim))


def _proxies_init(seed, dim, num_classes, k):
  """(C, K, D) proxies on soft_triple_init's interval [-1/sqrt(C K), 1/sqrt(C K)]."""
  return hashed_uniform((num_classes, k, dim), seed, 1.0 / np.sqrt(num_classes * k))


@dataclasses.dataclass(frozen=True)
class ScaleCase:
  """A class-shardable loss.

  loss: (features, labels, params, *, class_axis_name) -> scalar.
  reference: (features, labels, params) -> scalar, the same formula written out plainly.
  init: (seed, dim, num_classes, k) -> params, the classifier or proxies.
  spec: the PartitionSpec sharding `params` by class over the mesh axis.
  sharded_fn: the dmlax function that must take `class_axis_name`.
  """
  name: str
  loss: Callable[..., jax.Array]
  reference: Callable[..., jax.Array]
  init: Callable[..., jax.Array]
  spec: P
  sharded_fn: Callable[..., Any]


def cases(mpa_k: int) -> list[ScaleCase]:
  return [
      ScaleCase("softmax CE", _softmax_ce, _softmax_ce_reference, _classifier_init,
                P(None, AXIS), losses.softmax_cross_entropy),
      ScaleCase("W-Softmax alpha=1",
                lambda x, y, w, **kw: losses.weights_biased_softmax_loss(x, y, w, alpha=1.0, **kw),
                _w_softmax_reference, _classifier_init, P(None, AXIS),
                losses.weights_biased_softmax_loss),
      ScaleCase(f"MPA K={mpa_k}", losses.mpa_loss, _mpa_reference, _proxies_init, P(AXIS),
                losses.mpa_loss),
  ]


def skip_reason(case: ScaleCase) -> str | None:
  """Why `case` cannot run class-sharded in this checkout (None: it can)."""
  fn = case.sharded_fn
  if "class_axis_name" in inspect.signature(fn).parameters:
    return None
  return f"dmlax.losses.{fn.__name__} takes no class_axis_name in this checkout"




def call(case: ScaleCase, features, labels, params, class_axis_name: str | None):
  """The case's loss; ``class_axis_name`` is passed only when set, so that the single-device
  path also runs for a loss that does not take it yet."""
  if class_axis_name is None:
    return case.loss(features, labels, params)
  return case.loss(features, labels, params, class_axis_name=class_axis_name)
