"""The anchors-against-references layout shared by the pair losses and the miners.

Every pair/triplet loss and miner compares its B (local) anchors with M references:

- by default the batch itself (M = B; positives: same label and not the anchor itself);
- with ``axis_name`` inside ``pmap``/``shard_map``, the global batch gathered from every device
  on that axis (M = B times the device count), the local anchors sitting at rows
  ``axis_index * B ...`` of it; the gather's transpose (a reduce-scatter) sends every gradient
  to the device that owns the embedding;
- with ``references=(e_ref, y_ref, valid)``, those vectors (a cross-batch memory, see
  `dmlax.losses.memory`), ``valid`` of shape (M,) or (B, M) marking usable entries.

Masks are fixed-shape booleans: pairs ``(pos_mask, neg_mask)`` of shape (B, M), triplets one
(B, M, M) mask over (anchor, positive, negative).

In-map gradient convention (as for the other batch-coupled losses, see `dmlax.losses.proxy`):
the value inside the map is the single-device value of the global batch; the gradient with
respect to the per-device embeddings is exact under ``shard_map`` and the device count times it
under ``pmap`` (pmap transposes ``psum`` to ``psum``); ``grad`` inside the map followed by
``pmean`` gives replicated parameters their single-device gradient under both.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dmlax import checks
from dmlax import distances


class Layout(NamedTuple):
  mat: jax.Array       # (B, M) distance or similarity, float32 or wider
  pos: jax.Array       # (B, M) same label, not the anchor itself, usable
  neg: jax.Array       # (B, M) different label, usable
  labels: jax.Array    # (B,) anchor labels
  ref_labels: jax.Array  # (M,)


def _check_references(references, batch: int, dim: int):
  if not (isinstance(references, (tuple, list)) and len(references) == 3):
    raise ValueError("references must be a tuple (embeddings (M, D), labels (M,), valid (M,) or "
                     "(B, M))")
  e_ref, y_ref, valid = references
  checks.check_floating(e_ref, "references[0] (embeddings)", ndim=2)
  m, d = np.shape(e_ref)
  if d != dim:
    raise ValueError(f"references[0] must have shape (M, {dim}) to match the features, "
                     f"got {tuple(np.shape(e_ref))}")
  checks.check_labels(y_ref, m, "references[1] (labels)")
  if np.shape(valid) not in ((m,), (batch, m)):
    raise ValueError(f"references[2] (valid) must have shape ({m},) or ({batch}, {m}), "
                     f"got {tuple(np.shape(valid))}")
  return jnp.asarray(e_ref), jnp.asarray(y_ref), jnp.broadcast_to(
      jnp.asarray(valid, bool), (batch, m))


def gather(x: jax.Array, axis_name: str | None) -> jax.Array:
  """All-gather along the leading axis (identity without `axis_name`)."""
  if axis_name is None:
    return x
  return jax.lax.all_gather(x, axis_name, axis=0, tiled=True)


def layout(features, labels, *, distance: str, references=None, axis_name: str | None = None,
           stop_gradient: bool = False) -> Layout:
  """Checks the arguments and builds the (B, M) matrix and label masks described above."""
  batch, dim = checks.check_features_labels(features, labels)
  if batch == 0:
    raise ValueError("features is an empty batch (B = 0)")
  distances.check_distance(distance)
  x = jnp.asarray(features)
  x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  if stop_gradient:
    x = jax.lax.stop_gradient(x)
  y = jnp.asarray(labels)
  if references is None:
    refs, ref_y = gather(x, axis_name), gather(y, axis_name)
    offset = 0 if axis_name is None else jax.lax.axis_index(axis_name) * batch
    is_self = (jnp.arange(batch)[:, None] + offset) == jnp.arange(refs.shape[0])[None, :]
    valid = ~is_self
    same = y[:, None] == ref_y[None, :]
    pos, neg = same & valid, ~same
  else:
    refs, ref_y, valid = _check_references(references, batch, dim)
    refs = refs.astype(x.dtype)
    same = y[:, None] == ref_y[None, :]
    pos, neg = same & valid, ~same & valid
  return Layout(distances.pairwise(x, refs, distance), pos, neg, y, ref_y)


def check_pairs(pairs, shape) -> tuple[jax.Array, jax.Array]:
  if not (isinstance(pairs, (tuple, list)) and len(pairs) == 2):
    raise ValueError("pairs must be a tuple (pos_mask, neg_mask) of boolean (B, M) masks")
  for name, mask in zip(("pos_mask", "neg_mask"), pairs):
    if tuple(np.shape(mask)) != tuple(shape):
      raise ValueError(f"pairs' {name} must have shape {tuple(shape)} (anchors x references), "
                       f"got {tuple(np.shape(mask))}")
  return jnp.asarray(pairs[0], bool), jnp.asarray(pairs[1], bool)


def check_triplets(triplets, shape) -> jax.Array:
  want = (shape[0], shape[1], shape[1])
  if tuple(np.shape(triplets)) != want:
    raise ValueError(f"triplets must be a boolean mask of shape {want} (anchor, positive, "
                     f"negative), got {tuple(np.shape(triplets))}")
  return jnp.asarray(triplets, bool)


def pair_masks(lay: Layout, pairs) -> tuple[jax.Array, jax.Array]:
  """The loss's pairs: the given masks (restricted to usable references) or every pair."""
  if pairs is None:
    return lay.pos, lay.neg
  pos, neg = check_pairs(pairs, lay.mat.shape)
  usable = lay.pos | lay.neg
  return pos & usable, neg & usable


def psum(x, axis_name: str | None):
  return x if axis_name is None else jax.lax.psum(x, axis_name)


def masked_logsumexp(x: jax.Array, mask: jax.Array, axis: int = -1) -> jax.Array:
  """logsumexp of the masked entries along `axis`; -inf for an empty row, with zero gradients."""
  has = jnp.any(mask, axis=axis)
  x = jnp.where(mask, x, -jnp.inf)
  # Empty rows see finite zeros, so that their (discarded) gradient is 0 rather than NaN.
  x = jnp.where(jnp.expand_dims(has, axis), x, 0.0)
  return jnp.where(has, jax.nn.logsumexp(x, axis=axis), -jnp.inf)


def mean_over(total, count, axis_name: str | None):
  """psum(total) / psum(count), 0 when the global count is 0."""
  total, count = psum(total, axis_name), psum(count, axis_name)
  return total / jnp.maximum(count, 1).astype(total.dtype)


def reduce(per_anchor, total, count, reduction: str, axis_name: str | None):
  """"none": per anchor (B,); "sum": the global sum; "mean": global total / global count."""
  checks.check_reduction(reduction)
  if reduction == "none":
    return per_anchor
  if reduction == "sum":
    return psum(jnp.sum(per_anchor), axis_name)
  return mean_over(total, count, axis_name)
