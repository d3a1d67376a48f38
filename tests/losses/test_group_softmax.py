"""group_softmax_loss / discriminative_grouping against a float64 NumPy reference that builds the
ingredient logits (fine at these tiny shapes), and against what the paper proves."""

import itertools

import chex
import hypothesis
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st
from jax.sharding import Mesh
from jax.test_util import check_grads
from jax.sharding import PartitionSpec as P

from dmlax import losses
from dmlax.losses import group_softmax


# ------------------------------------------------------------------------------------------------
# Independent float64 reference (eqs. 3, 5, 7, 8, 9, 10, 12, 13).


def np_scores(x, y, w):
  """Batch-mean eq. 9 from the ingredient logits z[b, j, c] = W[j, c] x[b, j] (bias dropped: it
  is the same for every j)."""
  x, w = np.float64(x), np.float64(w)
  z = x[:, :, None] * w[None]
  b = np.arange(len(y))
  z_y = z[b, :, y]  # (B, D)
  others = (z.sum(axis=2) - z_y) / (w.shape[1] - 1)
  return (z_y - others).mean(axis=0)


def np_partition(order, num_groups):
  """Equal partition of the sorted order; the first D % G groups hold one more."""
  dim = len(order)
  q, r = divmod(dim, num_groups)
  sizes = [q + 1] * r + [q] * (num_groups - r)
  bounds = np.cumsum([0] + sizes)
  return [np.asarray(order[bounds[i]:bounds[i + 1]]) for i in range(num_groups)]


def np_group_softmax(x, y, w, b, groups, loss_type, order):
  """Per-example multi-resolution group softmax loss, materialising z (B, D, C)."""
  x, w = np.float64(x), np.float64(w)
  batch, dim = x.shape
  bias = np.zeros(w.shape[1]) if b is None else np.float64(b)
  z = x[:, :, None] * w[None] + bias[None, None, :] / dim
  total = np.zeros(batch)
  for g in groups:
    loss_g = np.zeros(batch)
    for members in np_partition(order, g):
      zbar = z[:, members, :].sum(axis=1)
      s = g * zbar if loss_type == "I" else zbar
      m = s.max(axis=1, keepdims=True)
      lse = m[:, 0] + np.log(np.exp(s - m).sum(axis=1))
      part = lse - s[np.arange(batch), y]
      loss_g += part / g if loss_type == "I" else part
    total += loss_g
  return total / len(groups)


def draw(seed, batch=5, dim=12, num_classes=6, scale=1.0):
  rng = np.random.default_rng(seed)
  x = (rng.normal(size=(batch, dim)) * scale).astype(np.float32)
  w = rng.normal(size=(dim, num_classes)).astype(np.float32)
  b = rng.normal(size=num_classes).astype(np.float32)
  y = rng.integers(0, num_classes, size=batch).astype(np.int32)
  return x, y, w, b


# ------------------------------------------------------------------------------------------------


@jax.jit
def _reductions(x, y, w, b):
  kw = dict(groups=(1, 2, 4), loss_type="I")
  return (losses.group_softmax_loss(x, y, w, b, **kw),
          losses.group_softmax_loss(x, y, w, b, reduction="sum", **kw))


@pytest.mark.parametrize("dim,groups", [(16, (1, 2, 4)), (10, (1, 2, 4)), (12, (2, 3)),
                                        (7, (1, 3, 7))])
def test_matches_reference_discriminative(dim, groups):
  # (10, (1, 2, 4)): D % 4 != 0 (padded layout) and the G=2 boundary (5) is not a G=4 one, so G=2
  # cannot be summed from G=4; (12, (2, 3)): neither nests.
  x, y, w, b = draw(dim, dim=dim)
  order = np.argsort(np_scores(x, y, w), kind="stable")
  fn = jax.jit(lambda x, y, w, b: [
      losses.group_softmax_loss(x, y, w, b, groups=groups, loss_type=t, reduction="none")
      for t in ("I", "II")])
  for loss_type, got in zip(("I", "II"), fn(x, y, w, b)):
    want = np_group_softmax(x, y, w, b, groups, loss_type, order)
    chex.assert_trees_all_close(got, want, rtol=2e-5, atol=2e-5)


def test_reductions():
  x, y, w, b = draw(3, dim=16)
  want = np_group_softmax(x, y, w, b, (1, 2, 4), "I",
                          np.argsort(np_scores(x, y, w), kind="stable"))
  chex.assert_trees_all_close(_reductions(x, y, w, b), (want.mean(), want.sum()), rtol=2e-5)


def test_prefixed_and_random_modes():
  dim = 10  # not divisible by 4: the padded layout with a non-identity (random) order
  x, y, w, b = draw(1, dim=dim)
  fn = jax.jit(lambda x, y, w, b, key: (
      losses.group_softmax_loss(x, y, w, b, grouping="prefixed", reduction="none"),
      losses.group_softmax_loss(x, y, w, b, grouping="random", rng=key, reduction="none")))
  key = jax.random.PRNGKey(7)
  prefixed, random = fn(x, y, w, b, key)
  want = np_group_softmax(x, y, w, b, (1, 2, 4), "II", np.arange(dim))
  chex.assert_trees_all_close(prefixed, want, rtol=2e-5, atol=2e-5)
  order = np.asarray(jax.random.permutation(key, dim))  # the documented draw
  want = np_group_softmax(x, y, w, b, (1, 2, 4), "II", order)
  chex.assert_trees_all_close(random, want, rtol=2e-5, atol=2e-5)
  # A fresh key gives a fresh partition (and so, here, a different loss); the same key repeats.
  chex.assert_trees_all_equal(random, fn(x, y, w, b, key)[1])
  assert not np.allclose(random, fn(x, y, w, b, jax.random.PRNGKey(8))[1])


def test_column_gather_fallback_matches(monkeypatch):
  # Features with more entries than int32 flat indices address take the plain column gather:
  # the same value and gradients (checked here by lowering the threshold).
  x, y, w, b = draw(5, dim=10)  # padded layout
  value_and_grad = lambda: jax.value_and_grad(  # noqa: E731
      lambda x, w: losses.group_softmax_loss(x, y, w, b), argnums=(0, 1))(x, w)
  want = value_and_grad()
  monkeypatch.setattr(group_softmax, "_MAX_FLAT", 0)
  chex.assert_trees_all_close(value_and_grad(), want, rtol=1e-6, atol=1e-6)


def test_single_group_is_softmax_cross_entropy():
  x, y, w, b = draw(2, batch=8, dim=9, num_classes=5, scale=3.0)
  want = losses.softmax_cross_entropy(x @ w + b, y, reduction="none")
  fn = jax.jit(lambda x, y, w, b: [
      losses.group_softmax_loss(x, y, w, b, groups=(1,), loss_type=t, grouping=g,
                                rng=jax.random.PRNGKey(0), reduction="none")
      for t in ("I", "II") for g in ("discriminative", "random")])
  for got in fn(x, y, w, b):
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-5)


def _three_losses(x, y, w, g, grouping):
  kw = dict(reduction="none", grouping=grouping)
  return (losses.group_softmax_loss(x, y, w, groups=(1,), **kw),
          losses.group_softmax_loss(x, y, w, groups=(g,), loss_type="I", **kw),
          losses.group_softmax_loss(x, y, w, groups=(g,), loss_type="II", **kw))


@pytest.mark.parametrize("grouping", ["discriminative", "prefixed"])
def test_proposition_1_upper_bounds(grouping):
  """loss_1 <= loss_I_G <= loss_II_G for any grouping and any inputs (Prop. 1 / eq. A.2)."""
  rng = np.random.default_rng(3)
  draws, batch, dim, num_classes = 64, 6, 12, 5
  scales = np.repeat([0.1, 1.0, 10.0, 100.0], draws // 4)  # up to logits of order 1e3
  x = (rng.normal(size=(draws, batch, dim)) * scales[:, None, None]).astype(np.float32)
  w = rng.normal(size=(draws, dim, num_classes)).astype(np.float32)
  y = rng.integers(0, num_classes, size=(draws, batch)).astype(np.int32)
  fn = jax.jit(jax.vmap(lambda x, y, w: [_three_losses(x, y, w, g, grouping) for g in (2, 3, 4)]))
  for l1, l_i, l_ii in fn(x, y, w):
    l1, l_i, l_ii = map(np.asarray, (l1, l_i, l_ii))
    assert np.isfinite(l_ii).all()
    tol = 1e-5 * (1.0 + np.abs(l_ii))
    assert (l1 <= l_i + tol).all(), np.max(l1 - l_i)
    assert (l_i <= l_ii + tol).all(), np.max(l_i - l_ii)
    # The bound is not trivially tight: some draw separates the three.
    assert (l_ii - l1 > 1e-3).any()


def _softplus_neg(v):
  return np.logaddexp(0.0, -v)


def _equal_partitions(items, num_groups):
  """All partitions of `items` into groups of the sizes of np_partition (as index sets)."""
  dim = len(items)
  sizes = [len(p) for p in np_partition(np.arange(dim), num_groups)]

  def rec(remaining, sizes):
    if not sizes:
      yield []
      return
    for first in itertools.combinations(remaining, sizes[0]):
      rest = [i for i in remaining if i not in first]
      for tail in rec(rest, sizes[1:]):
        yield [list(first)] + tail

  yield from rec(list(items), sizes)


@pytest.mark.parametrize("dim,num_groups", [(6, 2), (6, 3), (8, 2), (8, 4)])
def test_lemma_1_sorted_partition_maximises_relaxation(dim, num_groups):
  """Supplementary A.20: over all equal partitions, sum_i sp(sum_{j in G_i} lam_j) is maximised
  by the sorted partition that discriminative_grouping returns (brute force)."""
  seeds = range(100, 106)
  data = [draw(seed, batch=1, dim=dim, num_classes=4, scale=2.0) for seed in seeds]
  x, y, w = (np.stack([d[i] for d in data]) for i in range(3))
  group_of = np.asarray(jax.jit(jax.vmap(
      lambda x, y, w: losses.discriminative_grouping(x, y, w, num_groups)))(x, y, w))
  partitions = list(_equal_partitions(range(dim), num_groups))
  for i in range(len(data)):
    lam = np_scores(x[i], y[i], w[i])
    ours = sum(_softplus_neg(lam[group_of[i] == g].sum()) for g in range(num_groups))
    best = max(sum(_softplus_neg(lam[p].sum()) for p in part) for part in partitions)
    np.testing.assert_allclose(ours, best, rtol=1e-9)


def test_lemma_1_unequal_sizes_optimum_is_sorted():
  """D % G != 0: the optimum over partitions with sizes (3, 2, 2) still satisfies eq. A.21 (it
  is a sorted contiguous partition), but which group gets the extra feature is not fixed by the
  lemma, so docs/spec.md's "first groups one larger" is not always the maximiser."""
  rng = np.random.default_rng(0)
  partitions = list(_equal_partitions(range(7), 3))
  for _ in range(6):
    lam = rng.normal(size=7) * 2
    order = np.argsort(lam)
    best = max(sum(_softplus_neg(lam[p].sum()) for p in part) for part in partitions)
    sorted_best = max(
        sum(_softplus_neg(lam[order[s:t]].sum()) for s, t in zip(np.cumsum((0,) + sizes[:-1]),
                                                                  np.cumsum(sizes)))
        for sizes in {(3, 2, 2), (2, 3, 2), (2, 2, 3)})
    np.testing.assert_allclose(sorted_best, best, rtol=1e-12)


def test_discriminative_grouping_sizes_and_order():
  x, y, w, _ = draw(5, batch=7, dim=11, num_classes=4)
  lam = np_scores(x, y, w)
  group_of, same = jax.jit(lambda x, y, w: (
      losses.discriminative_grouping(x, y, w, 3),
      losses.discriminative_grouping(jnp.zeros((2, 6)), jnp.array([0, 1]), w[:6], 3)))(x, y, w)
  group_of = np.asarray(group_of)
  chex.assert_shape(group_of, (11,))
  np.testing.assert_array_equal(np.bincount(group_of, minlength=3), [4, 4, 3])
  # Group 0 holds the least discriminative features: every score in group i is <= group i+1's.
  for i in range(2):
    assert lam[group_of == i].max() <= lam[group_of == i + 1].min()
  # Ties are broken by feature index (stable sort): all-equal scores give contiguous blocks.
  np.testing.assert_array_equal(same, [0, 0, 1, 1, 2, 2])


def test_eq17_gradients():
  """dl/dz_jc = p_c(s zbar^g) - 1[c = y] for the group g holding j (eq. 17), s = G for type I
  and 1 for type II; chained to x, W and b through z_jc = W_jc x_j + b_c / D; multi-resolution
  losses average these over the resolutions (eqs. 12, 13)."""
  groups = (1, 2, 4)
  x, y, w, b = draw(9, batch=3, dim=10, num_classes=5)
  got = jax.jit(lambda x, w, b: [jax.grad(
      lambda x, w, b: losses.group_softmax_loss(x, y, w, b, groups=groups, loss_type=t,
                                                reduction="sum"), argnums=(0, 1, 2))(x, w, b)
                                 for t in ("I", "II")])(x, w, b)
  order = np.argsort(np_scores(x, y, w), kind="stable")
  xd, wd, bd = np.float64(x), np.float64(w), np.float64(b)
  batch, dim = x.shape
  z = xd[:, :, None] * wd[None] + bd / dim
  for loss_type, got_t in zip(("I", "II"), got):
    dz = np.zeros((batch, dim, w.shape[1]))
    for g in groups:
      scale = g if loss_type == "I" else 1
      for members in np_partition(order, g):
        s = scale * z[:, members, :].sum(axis=1)
        p = np.exp(s - s.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(batch), y] -= 1.0
        dz[:, members, :] += p[:, None, :] / len(groups)
    want_x = (dz * wd[None]).sum(axis=2)
    want_w = (dz * xd[:, :, None]).sum(axis=0)
    want_b = dz.sum(axis=(0, 1)) / dim
    chex.assert_trees_all_close(got_t, (want_x, want_w, want_b), rtol=1e-4, atol=1e-5)


def test_jit_and_vmap_over_batches():
  x, y, w, b = draw(11, batch=12, dim=10)
  xs, ys = x.reshape(3, 4, 10), y.reshape(3, 4)
  fn = jax.jit(jax.vmap(lambda x, y: losses.group_softmax_loss(x, y, w, b), in_axes=(0, 0)))
  got = fn(xs, ys)
  want = [np_group_softmax(xi, yi, w, b, (1, 2, 4), "II",
                           np.argsort(np_scores(xi, yi, w), kind="stable")).mean()
          for xi, yi in zip(xs, ys)]
  chex.assert_trees_all_close(got, np.array(want), rtol=2e-5)


def _global_batch():
  x, y, w, b = draw(12, batch=16, dim=10, num_classes=5, scale=2.0)
  return x, y, w, b


def test_pmap_equals_single_device_global_batch():
  """Scores and the mean are over the global batch: 8 devices x 2 examples = 1 device x 16."""
  n = jax.local_device_count()
  assert n == 8, "tests/conftest.py sets 8 fake CPU devices"
  x, y, w, b = _global_batch()

  def loss(x, y, w, b, axis_name=None):
    return losses.group_softmax_loss(x, y, w, b, axis_name=axis_name)

  want, want_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 2)))(x, y, w, b)
  got, (gx, gw) = jax.pmap(
      lambda x, y: jax.value_and_grad(loss, argnums=(0, 2))(x, y, w, b, "batch"),
      axis_name="batch")(x.reshape(n, -1, 10), y.reshape(n, -1))
  chex.assert_trees_all_close(got, jnp.full((n,), want), rtol=1e-5)

  # Under pmap every device returns the same global value and psum transposes to psum, so
  # jax.grad counts the loss once per device: the gradients are n times the global ones (the
  # weight gradient then also sums over devices). shard_map has no such factor (next test).
  chex.assert_trees_all_close(gx.reshape(16, 10) / n, want_grad[0], rtol=1e-4, atol=1e-6)
  chex.assert_trees_all_close(gw.sum(axis=0) / n, want_grad[1], rtol=1e-4, atol=1e-6)


def test_shard_map_equals_single_device_global_batch():
  x, y, w, b = _global_batch()
  mesh = Mesh(np.array(jax.devices()), ("batch",))
  loss = lambda x, y, w, axis_name=None: losses.group_softmax_loss(x, y, w, b,
                                                                   axis_name=axis_name)
  want, want_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 2)))(x, y, w)
  got, grads = jax.jit(jax.shard_map(
      lambda x, y, w: jax.value_and_grad(loss, argnums=(0, 2))(x, y, w, "batch"), mesh=mesh,
      in_specs=(P("batch"), P("batch"), P()), out_specs=(P(), (P("batch"), P()))))(x, y, w)
  chex.assert_trees_all_close(got, want, rtol=1e-5)
  chex.assert_trees_all_close(grads, want_grad, rtol=1e-4, atol=1e-6)
  # Per-device scores would sort differently: the all-reduce is what makes the two equal.
  local_orders = [np.argsort(np_scores(x[i:i + 2], y[i:i + 2], w), kind="stable")
                  for i in range(0, 16, 2)]
  assert any((o != local_orders[0]).any() for o in local_orders)


def test_bf16_inputs_give_finite_values():
  x, y, w, b = draw(13, batch=8, dim=16, num_classes=7, scale=30.0)
  xb, wb = jnp.asarray(x, jnp.bfloat16), jnp.asarray(w, jnp.bfloat16)
  loss, grads = jax.jit(jax.value_and_grad(
      lambda x, w: losses.group_softmax_loss(x, y, w), argnums=(0, 1)))(xb, wb)
  chex.assert_tree_all_finite((loss, grads))
  assert loss.dtype == jnp.float32 and grads[0].dtype == jnp.bfloat16
  want = jax.jit(lambda x, w: losses.group_softmax_loss(x, y, w))(np.float32(xb), np.float32(wb))
  chex.assert_trees_all_close(loss, want, rtol=2e-2)


_finite_grad = jax.jit(jax.value_and_grad(
    lambda x, y, w, b: losses.group_softmax_loss(x, y, w, b, groups=(1, 2, 3), loss_type="I"),
    argnums=(0, 2, 3)))


@hypothesis.settings(max_examples=8)
@hypothesis.given(
    x=hnp.arrays(np.float32, (4, 9), elements=st.floats(-1e4, 1e4, width=32)),
    w=hnp.arrays(np.float32, (9, 5), elements=st.floats(-1e3, 1e3, width=32)),
    b=hnp.arrays(np.float32, (5,), elements=st.floats(-1e3, 1e3, width=32)),
    y=hnp.arrays(np.int32, (4,), elements=st.integers(0, 4)))
def test_finite_inputs_never_give_nan_or_inf(x, w, b, y):
  chex.assert_tree_all_finite(_finite_grad(x, y, w, b))


def test_bad_input_raises_naming_the_argument():
  x, y, w, b = draw(0, batch=4, dim=6, num_classes=3)
  with pytest.raises(ValueError, match="weights"):
    losses.group_softmax_loss(x, y, w[:5])
  with pytest.raises(ValueError, match="labels"):
    losses.group_softmax_loss(x, y.astype(np.float32), w)
  with pytest.raises(ValueError, match="labels"):
    losses.group_softmax_loss(x, y[:3], w)
  with pytest.raises(ValueError, match="bias"):
    losses.group_softmax_loss(x, y, w, b[:2])
  with pytest.raises(ValueError, match="groups"):
    losses.group_softmax_loss(x, y, w, groups=(1, 8))
  with pytest.raises(ValueError, match="groups"):
    losses.discriminative_grouping(x, y, w, 7)
  with pytest.raises(ValueError, match="loss_type"):
    losses.group_softmax_loss(x, y, w, loss_type="III")
  with pytest.raises(ValueError, match="grouping"):
    losses.group_softmax_loss(x, y, w, grouping="sorted")
  with pytest.raises(ValueError, match="rng"):
    losses.group_softmax_loss(x, y, w, grouping="random")
  with pytest.raises(ValueError, match="reduction"):
    losses.group_softmax_loss(x, y, w, reduction="avg")
  # Raised at trace time, under jit too.
  with pytest.raises(ValueError, match="groups"):
    jax.jit(lambda x: losses.group_softmax_loss(x, y, w, groups=(7,)))(x)


def test_float64_kept_and_check_grads():
  rng = np.random.default_rng(11)
  with jax.enable_x64(True):
    x = jnp.asarray(rng.normal(size=(6, 8)))
    w = jnp.asarray(rng.normal(size=(8, 5)))
    y = jnp.asarray(rng.integers(0, 5, size=6))
    f = jax.jit(lambda a, p: losses.group_softmax_loss(a, y, p, groups=(1, 2, 4)))
    assert f(x, w).dtype == jnp.float64
    # The grouping is piecewise constant: gradients are exact in float64 away from ties.
    check_grads(f, (x, w), order=1, modes=["rev"], eps=1e-6, atol=1e-7, rtol=1e-7)
