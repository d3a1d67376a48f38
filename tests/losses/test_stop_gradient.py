"""SGSL and softmax + SGSL against float64 NumPy and the plain lax.stop_gradient formulation."""

import chex
import hypothesis
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from dmlax import losses
from tests.losses.test_softmax import np_smoothed_ce


def np_sgsl(x, y, w, gamma):
  """Eq. 6 in float64."""
  x, w = np.float64(x), np.float64(w)
  cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=0))
  rows = np.arange(len(y))
  neg = gamma * cos
  neg[rows, y] = -np.inf
  m = neg.max(axis=1)
  lse = (m + np.log(np.exp(neg - m[:, None]).sum(axis=1))) / gamma
  return np.logaddexp(0.0, lse - cos[rows, y])


def plain_sgsl(x, y, w, gamma=30.0):
  """The formula with lax.stop_gradient on W and autodiff everywhere (the reference)."""
  x_hat = x / jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), 1e-12)
  w = jax.lax.stop_gradient(w)
  cos = x_hat @ (w / jnp.linalg.norm(w, axis=0, keepdims=True))
  mask = jax.nn.one_hot(y, w.shape[1]) > 0
  lse = jax.nn.logsumexp(jnp.where(mask, -jnp.inf, gamma * cos), axis=1) / gamma
  return jnp.mean(jax.nn.softplus(lse - jnp.sum(jnp.where(mask, cos, 0.0), axis=1)))


def draw(seed, batch=8, dim=6, num_classes=5, scale=1.0):
  rng = np.random.default_rng(seed)
  x = (rng.normal(size=(batch, dim)) * scale).astype(np.float32)
  w = rng.normal(size=(dim, num_classes)).astype(np.float32)
  y = rng.integers(0, num_classes, size=batch).astype(np.int32)
  return x, y, w


def test_sgsl_value_and_gradients():
  x, y, w = draw(0, scale=3.0)
  fn = jax.jit(lambda x, w: (
      [losses.stop_gradient_softmax_loss(x, y, w, gamma=g, reduction="none") for g in (1., 30.)],
      losses.stop_gradient_softmax_loss(x, y, w, reduction="sum"),
      jax.grad(lambda x, w: losses.stop_gradient_softmax_loss(x, y, w), (0, 1))(x, w),
      jax.grad(plain_sgsl, (0, 2))(x, y, w)))
  values, total, (gx, gw), (want_gx, want_gw) = fn(x, w)
  for gamma, got in zip((1.0, 30.0), values):
    chex.assert_trees_all_close(got, np_sgsl(x, y, w, gamma), rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(total, np_sgsl(x, y, w, 30.0).sum(), rtol=1e-5)
  assert not np.asarray(gw).any() and not np.asarray(want_gw).any()  # exactly zero
  assert np.abs(np.asarray(gx)).max() > 1e-3
  chex.assert_trees_all_close(gx, want_gx, rtol=1e-5, atol=1e-7)


def test_softmax_sgsl_gradients():
  """Into W: exactly the label-smoothed softmax gradient. Into x: softmax + the plain formula."""
  x, y, w = draw(1, scale=2.0)

  def total(x, w):
    return losses.softmax_sgsl_loss(x, y, w, beta=0.7, start_below=np.inf)[0]

  def reference(x, w):
    ce = losses.softmax_cross_entropy(x @ w, y, label_smoothing=0.1)
    return ce + 0.7 * plain_sgsl(x, y, w)

  def softmax_only(x, w):
    return losses.softmax_cross_entropy(x @ w, y, label_smoothing=0.1)

  fn = jax.jit(lambda x, w: (jax.value_and_grad(total, (0, 1))(x, w),
                             jax.value_and_grad(reference, (0, 1))(x, w),
                             jax.grad(softmax_only, (0, 1))(x, w)))
  (value, (gx, gw)), (want, (want_gx, want_gw)), (_, softmax_gw) = fn(x, w)
  chex.assert_trees_all_close(value, want, rtol=1e-6)
  chex.assert_trees_all_close(gx, want_gx, rtol=1e-5, atol=1e-7)
  chex.assert_trees_all_close(gw, want_gw, rtol=1e-5, atol=1e-7)
  chex.assert_trees_all_close(gw, softmax_gw, rtol=1e-5, atol=1e-7)


def test_softmax_sgsl_gate_and_aux():
  x, y, w = draw(2)
  fn = jax.jit(lambda x, w, start: (
      jax.value_and_grad(lambda x, w: losses.softmax_sgsl_loss(x, y, w, start_below=start),
                         (0, 1), has_aux=True)(x, w),
      jax.grad(lambda x, w: losses.softmax_cross_entropy(x @ w, y, label_smoothing=0.1),
               (0, 1))(x, w)))
  ce = np_smoothed_ce(np.float64(x) @ w, y, 0.1).mean()
  sgsl = np_sgsl(x, y, w, 30.0).mean()
  ((total, aux), _), _ = fn(x, w, ce + 1.0)  # softmax below the threshold: SGSL joins
  assert bool(aux["sgsl_active"])
  chex.assert_trees_all_close((total, aux["softmax"], aux["sgsl"]), (ce + sgsl, ce, sgsl),
                              rtol=1e-5)
  ((total, aux), (gx, gw)), want = fn(x, w, ce - 1.0)  # not yet: softmax alone
  assert not bool(aux["sgsl_active"])
  chex.assert_trees_all_close((total, aux["sgsl"]), (ce, sgsl), rtol=1e-5)
  chex.assert_trees_all_close((gx, gw), want, rtol=1e-5, atol=1e-7)


def test_jit_vmap_and_zero_features():
  x, y, w = draw(3, batch=12)
  x[0] = 0.0  # normalised by max(||x||, eps): stays finite
  fn = jax.jit(jax.vmap(lambda x, y: jax.value_and_grad(
      lambda x: losses.softmax_sgsl_loss(x, y, w, start_below=np.inf)[0])(x)))
  values, grads = fn(x.reshape(3, 4, 6), y.reshape(3, 4))
  chex.assert_tree_all_finite((values, grads))
  for xi, yi, v in zip(x.reshape(3, 4, 6)[1:], y.reshape(3, 4)[1:], values[1:]):
    want = np_smoothed_ce(np.float64(xi) @ w, yi, 0.1).mean() + np_sgsl(xi, yi, w, 30.0).mean()
    chex.assert_trees_all_close(v, want, rtol=1e-5)


def _global_batch():
  return draw(4, batch=16, scale=2.0)


def test_pmap_and_shard_map_equal_single_device_global_batch():
  """Both means and the gate are over the global batch."""
  x, y, w = _global_batch()
  n = jax.local_device_count()
  # Threshold between the global softmax loss and some per-device ones, so a per-device gate
  # would differ on some device.
  per_device = np_smoothed_ce(np.float64(x) @ w, y, 0.1).reshape(n, -1).mean(1)
  start = float(np.median(per_device))

  def loss(x, y, axis_name=None):
    total, aux = losses.softmax_sgsl_loss(x, y, w, start_below=start, axis_name=axis_name)
    return total, aux["sgsl_active"]

  want, want_active = jax.jit(loss)(x, y)
  got, active = jax.pmap(lambda x, y: loss(x, y, "batch"), axis_name="batch")(
      x.reshape(n, -1, 6), y.reshape(n, -1))
  chex.assert_trees_all_close(got, jnp.full((n,), want), rtol=1e-5)
  assert (np.asarray(active) == bool(want_active)).all()

  mesh = Mesh(np.array(jax.devices()), ("batch",))
  got = jax.jit(jax.shard_map(lambda x, y: loss(x, y, "batch")[0], mesh=mesh,
                              in_specs=(P("batch"), P("batch")), out_specs=P()))(x, y)
  chex.assert_trees_all_close(got, want, rtol=1e-5)


def test_bf16_inputs_give_finite_values():
  x, y, w = draw(5, scale=50.0)
  xb, wb = jnp.asarray(x, jnp.bfloat16), jnp.asarray(w, jnp.bfloat16)
  fn = jax.jit(jax.value_and_grad(
      lambda x, w: losses.softmax_sgsl_loss(x, y, w, start_below=np.inf)[0]
      + losses.stop_gradient_softmax_loss(x, y, w), (0, 1)))
  loss, grads = fn(xb, wb)
  chex.assert_tree_all_finite((loss, grads))
  assert loss.dtype == jnp.float32
  assert grads[0].dtype == jnp.bfloat16 and grads[1].dtype == jnp.bfloat16


_finite_grad = jax.jit(jax.value_and_grad(
    lambda x, y, w: losses.softmax_sgsl_loss(x, y, w, start_below=np.inf)[0]
    + losses.stop_gradient_softmax_loss(x, y, w, gamma=70.0), (0, 2)))


@hypothesis.settings(max_examples=8)
@hypothesis.given(
    x=hnp.arrays(np.float32, (4, 5), elements=st.floats(-1e4, 1e4, width=32)),
    w=hnp.arrays(np.float32, (5, 3), elements=st.floats(-1e3, 1e3, width=32)),
    y=hnp.arrays(np.int32, (4,), elements=st.integers(0, 2)))
def test_finite_inputs_never_give_nan_or_inf(x, w, y):
  chex.assert_tree_all_finite(_finite_grad(x, y, w))


def test_bad_input_raises_naming_the_argument():
  x, y, w = draw(0)
  with pytest.raises(ValueError, match="gamma"):
    losses.stop_gradient_softmax_loss(x, y, w, gamma=0.0)
  with pytest.raises(ValueError, match="label_smoothing"):
    losses.softmax_sgsl_loss(x, y, w, label_smoothing=1.0)
  with pytest.raises(ValueError, match="weights"):
    losses.softmax_sgsl_loss(x, y, w[:4])
  with pytest.raises(ValueError, match="labels"):
    losses.stop_gradient_softmax_loss(x, y.astype(np.float32), w)
  with pytest.raises(ValueError, match="reduction"):
    losses.stop_gradient_softmax_loss(x, y, w, reduction="max")
