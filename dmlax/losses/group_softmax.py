"""Group softmax loss with discriminative feature grouping (Kobayashi, WACV 2021).

The ingredient logits ``z[b, j, c] = W[j, c] x[b, j] + b[c] / D`` (eq. 3) are never built: one
permutation of the features (and of W's rows) makes every group contiguous, so the finest
resolution's group logits are one blocked matmul ``einsum('gbs,gsc->gbc')`` with the same FLOPs as
``x @ W``, and a coarser resolution whose group boundaries are a subset of a finer one's is a sum
of the finer group logits. When ``D`` is not divisible by ``G`` each group is padded to
``ceil(D / G)`` slots that point at an appended zero feature / zero weight row.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from dmlax import checks
from dmlax.losses import class_sharding

LOSS_TYPES = ("I", "II")
GROUPINGS = ("discriminative", "random", "prefixed")


# ----------------------------------------------------------------------------------------------
# Static layout of a resolution (numpy, at trace time).


def group_sizes(dim: int, num_groups: int) -> np.ndarray:
  """Sizes of the equal partition of `dim` sorted features: the first `dim % num_groups` groups
  hold one more (an assumption: the paper does not say how an uneven split is cut)."""
  q, r = divmod(dim, num_groups)
  return np.array([q + 1] * r + [q] * (num_groups - r), dtype=np.int64)


def _boundaries(dim: int, num_groups: int) -> frozenset[int]:
  return frozenset(np.concatenate([[0], np.cumsum(group_sizes(dim, num_groups))]).tolist())


def _group_of_position(dim: int, num_groups: int) -> np.ndarray:
  """(D,) group index of each position in the sorted order."""
  return np.repeat(np.arange(num_groups), group_sizes(dim, num_groups)).astype(np.int32)


def _slot_layout(dim: int, num_groups: int) -> tuple[np.ndarray, np.ndarray]:
  """Padded blocked layout: (G, S) sorted position of each slot (``dim`` marks a padding slot)
  and (D,) flat slot of each sorted position, with ``S = ceil(D / G)``."""
  sizes = group_sizes(dim, num_groups)
  slots = int(sizes.max())
  starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
  k = np.arange(slots)
  slot_pos = np.where(k[None, :] < sizes[:, None], starts[:, None] + k[None, :], dim)
  flat_slot = np.empty(dim, np.int64)
  valid = slot_pos < dim
  flat_slot[slot_pos[valid]] = np.flatnonzero(valid.reshape(-1))
  return slot_pos.astype(np.int32), flat_slot.astype(np.int32)


def _nesting_ranges(dim: int, coarse: int, fine: int) -> list[tuple[int, int]]:
  """For each coarse group, the [start, stop) range of fine groups it is the union of (the
  boundaries nest, and both are in sorted order, so the fine groups are consecutive)."""
  fine_starts = np.concatenate([[0], np.cumsum(group_sizes(dim, fine))[:-1]])
  coarse_of_fine = _group_of_position(dim, coarse)[fine_starts]
  return [(int(np.searchsorted(coarse_of_fine, i, "left")),
           int(np.searchsorted(coarse_of_fine, i, "right"))) for i in range(coarse)]


# ----------------------------------------------------------------------------------------------
# Permutations whose transposes are gathers (not scatter-adds): the gathered slots are a
# permutation of the input's rows (or columns) plus zero padding slots, so each input entry is
# read exactly once.


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _take_rows(a: jax.Array, take: jax.Array, inverse: jax.Array, padded: bool) -> jax.Array:
  """``concat([a, 0])[take]`` for (N, K) `a`; `inverse[n]` is the slot that holds row n."""
  if padded:
    a = jnp.concatenate([a, jnp.zeros((1,) + a.shape[1:], a.dtype)], axis=0)
  return jnp.take(a, take, axis=0, mode="clip")


def _take_rows_fwd(a, take, inverse, padded):
  return _take_rows(a, take, inverse, padded), inverse


def _take_rows_bwd(padded, inverse, g):
  del padded
  # g holds one row per slot; padding slots are simply never read.
  return jnp.take(g, inverse, axis=0, mode="clip"), None, None


_take_rows.defvjp(_take_rows_fwd, _take_rows_bwd)


# Flat int32 indices address at most this many elements.
_MAX_FLAT = 2**31 - 1


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _take_column_blocks(a: jax.Array, take: jax.Array, inverse: jax.Array,
                        padded: bool) -> jax.Array:
  """(G, N, S) blocks ``out[g, n, s] = concat([a, 0], 1)[n, take[g, s]]`` of (N, D) `a`;
  `inverse[d]` is the flat slot ``g S + s`` that holds column d.

  Both directions are gathers from the flattened array, each output element reading within one
  row of its source: a column gather of `a` in (G, S, N) or (N, G, S) order would read it with a
  stride of a row per element or need a transpose after it.
  """
  if padded:
    a = jnp.concatenate([a, jnp.zeros((a.shape[0], 1), a.dtype)], axis=1)
  rows, width = a.shape
  if a.size >= _MAX_FLAT:
    blocks = jnp.take(a, take.reshape(-1), axis=1, mode="clip")
    return blocks.reshape(rows, *take.shape).transpose(1, 0, 2)
  index = jnp.arange(rows, dtype=jnp.int32)[None, :, None] * width + take[:, None, :]
  return jnp.take(a.reshape(-1), index, mode="clip")


def _take_column_blocks_fwd(a, take, inverse, padded):
  return _take_column_blocks(a, take, inverse, padded), inverse


def _take_column_blocks_bwd(padded, inverse, g):
  del padded
  # g[block, n, slot] -> (N, D); padding slots are simply never read.
  _, rows, slots = g.shape
  if g.size >= _MAX_FLAT:
    flat = g.transpose(1, 0, 2).reshape(rows, -1)
    return jnp.take(flat, inverse, axis=1, mode="clip"), None, None
  index = ((inverse // slots)[None, :] * (rows * slots)
           + jnp.arange(rows, dtype=jnp.int32)[:, None] * slots + (inverse % slots)[None, :])
  return jnp.take(g.reshape(-1), index, mode="clip"), None, None


_take_column_blocks.defvjp(_take_column_blocks_fwd, _take_column_blocks_bwd)


def _blocked(a: jax.Array, perm: jax.Array | None, dim: int, num_groups: int,
             columns: bool = False) -> jax.Array:
  """Blocks of the sorted order `perm` (None: identity order), padding slots zero: (D, K) rows
  -> (G, S, K), or with `columns` (N, D) columns -> (G, N, S)."""
  sizes = group_sizes(dim, num_groups)
  if perm is None and sizes.min() == sizes.max():
    if columns:
      return a.reshape(a.shape[0], num_groups, dim // num_groups).transpose(1, 0, 2)
    return a.reshape((num_groups, dim // num_groups) + a.shape[1:])
  slot_pos, flat_slot = _slot_layout(dim, num_groups)
  padded = bool((slot_pos == dim).any())
  if perm is None:
    perm = jnp.arange(dim, dtype=jnp.int32)
  perm = perm.astype(jnp.int32)
  # Slot -> feature index (padding slots -> index `dim`, the appended zero).
  perm_ext = jnp.concatenate([perm, jnp.array([dim], jnp.int32)])
  take = perm_ext[slot_pos.reshape(-1)]
  # Feature -> flat slot, for the gradient.
  inverse = jnp.zeros((dim,), jnp.int32).at[perm].set(jnp.asarray(flat_slot))
  if columns:
    return _take_column_blocks(a, take.reshape(slot_pos.shape), inverse, padded)
  return _take_rows(a, take, inverse, padded).reshape(slot_pos.shape + a.shape[1:])


# ----------------------------------------------------------------------------------------------
# Grouping.


def _check_groups(groups, dim: int) -> tuple[int, ...]:
  try:
    groups = tuple(int(g) for g in groups)
  except TypeError:
    raise ValueError(f"groups must be a sequence of positive integers, got {groups!r}") from None
  if not groups or min(groups) < 1:
    raise ValueError(f"groups must be a non-empty sequence of positive integers, got {groups}")
  if len(set(groups)) != len(groups):
    raise ValueError(f"groups must be distinct, got {groups}")
  if max(groups) > dim:
    raise ValueError(
        f"groups asks for {max(groups)} groups but the features have only D={dim} components "
        "(need D >= the largest group count)")
  return groups


def _discriminativity(features, labels, weights, axis_name, class_axis_name):
  """Batch-mean discriminativity score (eq. 9) in its O(B·D) form, under stop_gradient.

  ``lam[j] = mean_b x[b, j] (W[j, y_b] - (sum_c W[j, c] - W[j, y_b]) / (C - 1))``; the bias
  part of eq. 9 is the same for every j, so it cannot change the sort and is left out. The score
  is linear in the per-shard pieces (the label column lives on one class shard, the class sum
  and the batch sum split over shards), so one psum over the batch and class axes gives every
  device the same global score, hence the same sort.
  """
  x = jax.lax.stop_gradient(features)
  w = jax.lax.stop_gradient(weights)
  x, w = checks.as_compute(x, w)
  num_local = w.shape[1]
  num_classes = class_sharding.num_classes(num_local, class_axis_name)
  local = labels - class_sharding.offset(num_local, class_axis_name)
  # The barrier keeps XLA from fusing the column gather into the reduction, which on CPU turns
  # an O(B·D) pass into a slow element-wise gather loop (5x slower at B=256, D=2048).
  # (B, D) is the gather's natural output layout: no transpose of it or of x is needed.
  w_y = jax.lax.optimization_barrier(jnp.take(w, local, axis=1, mode="clip").T)
  if class_axis_name is not None:
    # Only the shard that holds an example's class contributes its label column.
    w_y = jnp.where(((local >= 0) & (local < num_local))[:, None], w_y, 0.0)
  target = jnp.sum(x * w_y, axis=0)
  feature_sum = jnp.sum(x, axis=0)
  total = (num_classes * target - jnp.sum(w, axis=1) * feature_sum) / (num_classes - 1)
  count = jnp.asarray(x.shape[0], x.dtype)
  axes = tuple(a for a in (axis_name, class_axis_name) if a is not None)
  if axes:
    total = jax.lax.psum(total, axes)
  if axis_name is not None:
    count = jax.lax.psum(count, axis_name)
  return total / count


def _sort_order(features, labels, weights, grouping, rng, axis_name, class_axis_name):
  """Feature indices in group order (least discriminative first), or None for identity."""
  dim = features.shape[1]
  if grouping == "prefixed":
    return None
  if grouping == "random":
    return jax.random.permutation(rng, dim).astype(jnp.int32)
  scores = _discriminativity(features, labels, weights, axis_name, class_axis_name)
  return jnp.argsort(scores, stable=True).astype(jnp.int32)


def discriminative_grouping(
    features: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike,
    num_groups: int,
    *,
    axis_name: str | None = None,
    class_axis_name: str | None = None,
) -> jax.Array:
  r"""Group index of every feature component under discriminative grouping (eqs. 9-10).

  .. math::
    \lambda_j = \mathrm{mean}_b\Big[x_{bj}\Big(W_{j y_b} - \frac{1}{C-1}\sum_{c \ne y_b}
    W_{jc}\Big)\Big]

  (eq. 9, the bias term is constant over ``j`` and dropped), averaged over the whole mini-batch
  (all devices on `axis_name`). Sorting ``lambda`` ascending (stable: ties by feature index) and
  cutting it into `num_groups` equal parts gives the groups; group 0 holds the least
  discriminative features. When ``D % G != 0`` the first ``D % G`` groups hold one more feature.
  Kobayashi, "Group Softmax Loss with Discriminative Feature Grouping", WACV 2021, sec. 2.3.

  Args:
    features: (B, D) floating features.
    labels: (B,) integer labels in [0, C).
    weights: (D, C) classifier weights.
    num_groups: G, 1 <= G <= D.
    axis_name: average the scores over this mapped axis (pmap / shard_map).
    class_axis_name: mesh axis over which `weights` is sharded by class (inside ``shard_map``:
      the local contiguous block of classes, labels global); the class sum of eq. 9 is then
      summed over that axis too, so every device gets the full-class grouping.

  Returns:
    (D,) int32 group index in [0, G) of each feature component.

  Example:
    >>> x = jnp.array([[1.0, 2.0, 0.5, -1.0]]); w = jnp.eye(4)[:, :2]
    >>> discriminative_grouping(x, jnp.array([0]), w, 2)
    Array([1, 0, 0, 1], dtype=int32)
  """
  _, dim = checks.check_features_labels(features, labels)
  checks.check_classifier(weights, dim)
  (num_groups,) = _check_groups((num_groups,), dim)
  features, labels, weights = map(jnp.asarray, (features, labels, weights))
  perm = _sort_order(features, labels, weights, "discriminative", None, axis_name,
                     class_axis_name)
  return jnp.zeros((dim,), jnp.int32).at[perm].set(jnp.asarray(_group_of_position(dim, num_groups)))


# ----------------------------------------------------------------------------------------------
# The loss.


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _coarsen(z: jax.Array, ranges: tuple[tuple[int, int], ...]) -> jax.Array:
  """(H, B, C) fine group logits -> (G, B, C): coarse group i sums the fine groups in
  ``range(*ranges[i])``.

  Explicit adds of (B, C) slices fuse into one elementwise pass; a (G, H) 0/1 matmul or a reduce
  over the short group axis runs several times slower on CPU. The transpose is written out
  because autodiff's (one zero-padded copy per slice) costs a pass over (H, B, C) per fine group.
  """
  return jnp.stack([functools.reduce(jnp.add, [z[k] for k in range(a, b)]) for a, b in ranges])


def _coarsen_fwd(z, ranges):
  return _coarsen(z, ranges), None


def _coarsen_bwd(ranges, _, g):
  # Every fine group receives its coarse group's cotangent.
  return (jnp.concatenate([jnp.broadcast_to(g[i], (b - a,) + g.shape[1:])
                           for i, (a, b) in enumerate(ranges)]),)


_coarsen.defvjp(_coarsen_fwd, _coarsen_bwd)


def _group_logits(features, weights, bias, perm, groups):
  """{G: (G, B, C) group logits (eq. 5)} in the compute dtype, for every resolution in `groups`."""
  dim = features.shape[1]
  dtype = checks.compute_dtype(features, weights)
  out: dict[int, jax.Array] = {}
  for g in sorted(groups, reverse=True):
    # A finer resolution already computed whose boundaries contain ours: sum its groups.
    finer = [h for h in out if _boundaries(dim, g) <= _boundaries(dim, h)]
    if finer:
      h = min(finer)
      out[g] = _coarsen(out[h], tuple(_nesting_ranges(dim, g, h)))
      continue
    if g == 1:
      z = jnp.matmul(features, weights, preferred_element_type=dtype)[None]
    else:
      # (G, B, S) and (G, S, C) blocks: a batched matmul in the layout the CPU dot wants.
      z = jnp.einsum("gbs,gsc->gbc", _blocked(features, perm, dim, g, columns=True),
                     _blocked(weights, perm, dim, g), preferred_element_type=dtype)
    if bias is not None:
      share = jnp.asarray(group_sizes(dim, g) / dim, dtype)
      z = z + share[:, None, None] * bias.astype(dtype)[None, None, :]
    out[g] = z
  return out


def _logsumexps(zs: list[jax.Array], class_axis_name: str | None) -> list[jax.Array]:
  """(G, B) log-sum-exp over all classes of each (G, B, C_local) logits in `zs`."""
  if class_axis_name is None:
    return [jax.nn.logsumexp(z, axis=-1) for z in zs]
  # Every resolution in one pmax and one psum of (sum of G, B).
  splits = np.cumsum([z.shape[0] for z in zs])[:-1]
  # The shift is a constant for differentiation (it cancels exactly).
  shift = jax.lax.pmax(jax.lax.stop_gradient(
      jnp.concatenate([jnp.max(z, axis=-1) for z in zs])), class_axis_name)
  sums = [jnp.sum(jnp.exp(z - s[..., None]), axis=-1)
          for z, s in zip(zs, jnp.split(shift, splits))]
  total = jax.lax.psum(jnp.concatenate(sums), class_axis_name)
  return jnp.split(shift + jnp.log(total), splits)


def group_softmax_loss(
    features: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike,
    bias: ArrayLike | None = None,
    *,
    groups: Sequence[int] = (1, 2, 4),
    loss_type: str = "II",
    grouping: str = "discriminative",
    rng: jax.Array | None = None,
    axis_name: str | None = None,
    class_axis_name: str | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Multi-resolution group softmax loss (eqs. 5, 7, 8, 12, 13).

  .. math::
    \bar z^i_c = \sum_{j \in \mathcal G^i_G} W_{jc} x_j + \frac{|\mathcal G^i_G|}{D} b_c,\quad
    \ell^{I}_G = -\frac1G \sum_{i=1}^G \log \mathrm{softmax}(G \bar z^i)_y,\quad
    \ell^{II}_G = -\sum_{i=1}^G \log \mathrm{softmax}(\bar z^i)_y,

  and the loss is the mean of ``loss_G`` over ``G`` in `groups`. ``groups=(1,)`` is softmax CE
  on ``x @ W + b``. Kobayashi, "Group Softmax Loss with Discriminative Feature Grouping",
  WACV 2021 (Algorithm 1). The paper leaves one choice open: when ``D % G != 0`` the first
  ``D % G`` groups hold one more feature.

  Grouping: "discriminative" sorts the batch-mean discriminativity score (see
  `discriminative_grouping`; averaged over the global batch with `axis_name`, no gradient) and
  cuts equal groups; "random" uses a fresh random permutation drawn from `rng` (pass the same
  key on every device); "prefixed" uses contiguous blocks of feature indices. Equal groups: the
  first ``D % G`` groups hold one more feature.

  Cost: one permutation of features and of W's rows, then the finest resolution's group logits
  as one blocked matmul (same FLOPs as ``x @ W``); coarser resolutions whose group boundaries
  nest in a finer one are sums of its group logits, others get their own blocked matmul. No
  (B, D, C) array is built. Logits accumulate in float32 (float64 for float64 inputs).

  Transforms: the feature permutation is a `jax.custom_vjp` (its transpose is a gather, not a
  scatter-add), so with ``max(groups) > 1`` only reverse mode works (``jax.grad``,
  ``jax.jacrev``); ``jax.jacfwd`` and ``jax.hessian`` raise. ``groups=(1,)`` supports both.

  Args:
    features: (B, D) floating features.
    labels: (B,) integer labels in [0, C).
    weights: (D, C) classifier weights.
    bias: optional (C,) classifier bias.
    groups: distinct group counts G, each <= D.
    loss_type: "I" (eq. 7, logits scaled by G, averaged over groups) or "II" (eq. 8, summed).
    grouping: "discriminative", "random" or "prefixed".
    rng: PRNG key, required for grouping="random".
    axis_name: mapped axis of the global batch (pmap / shard_map): scores and the mean reduction
      are over the global batch.
      Inside ``jax.shard_map``, ``jax.grad`` of the value is the global-batch gradient; inside
      ``jax.pmap`` it is that times the device count (psum transposes to psum there).
    class_axis_name: mesh axis over which `weights` (and `bias`) are sharded by class (inside
      ``shard_map``: the local contiguous block of classes, labels global); the value is the
      full-class one. The feature permutation is the same on every shard (the scores of eq. 9
      are summed over this axis as well), each shard builds its classes' group logits, and the
      log-sum-exps combine with one pmax and one psum of (sum of groups, B).
    reduction: "mean", "sum" or "none" (per example, shape (B,)).

  Example:
    >>> x = jnp.array([[1.0, 2.0, 0.5, -1.0]]); w = jnp.eye(4)[:, :2]
    >>> loss = group_softmax_loss(x, jnp.array([0]), w, groups=(1,))
    >>> bool(jnp.isclose(loss, jnp.log1p(jnp.exp(2.0 - 1.0))))
    True
  """
  checks.check_reduction(reduction)
  _, dim = checks.check_features_labels(features, labels)
  num_local = checks.check_classifier(weights, dim)
  checks.check_bias(bias, num_local)
  groups = _check_groups(groups, dim)
  checks.check_in(loss_type, LOSS_TYPES, "loss_type")
  checks.check_in(grouping, GROUPINGS, "grouping")
  if grouping == "random" and rng is None:
    raise ValueError('rng: grouping="random" needs a PRNG key, got rng=None')
  features, labels, weights = map(jnp.asarray, (features, labels, weights))
  bias = None if bias is None else jnp.asarray(bias)
  valid = checks.label_guard(labels, class_sharding.num_classes(num_local, class_axis_name))

  perm = None
  if max(groups) > 1:
    perm = _sort_order(features, labels, weights, grouping, rng, axis_name, class_axis_name)
  logits = _group_logits(features, weights, bias, perm, groups)

  # The groups of every resolution sum to the full logit x W + b (eq. 5, the bias shares sum to
  # 1), so every resolution's label terms add up to the same (B,) label logit, taken once from
  # the coarsest one. A one-hot mask instead of a label gather: its gradient is elementwise.
  label_logit = class_sharding.label_column(
      jnp.sum(logits[min(groups)], axis=0), labels, class_axis_name)
  scaled = [g * logits[g] if loss_type == "I" else logits[g] for g in groups]  # (G, B, C)
  per_example = 0.0
  for g, lse in zip(groups, _logsumexps(scaled, class_axis_name)):
    lse_g = jnp.sum(lse, axis=0)  # lse: (G, B)
    per_example = per_example + (lse_g / g if loss_type == "I" else lse_g)
  per_example = per_example / len(groups) - label_logit
  return checks.reduce_loss(checks.nan_where_invalid(per_example, valid), reduction, axis_name)
