"""Class-sharded losses (`class_axis_name`) under shard_map on 4 fake devices equal one device."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from dmlax import losses
from dmlax.losses import class_sharding
from tests.losses import class_sharding_harness as harness

B, D, C, SHARDS = 6, 5, 8, 4

_LOSSES = {
    "softmax_cross_entropy": functools.partial(losses.softmax_cross_entropy, label_smoothing=0.1),
    "normalized_softmax_loss": functools.partial(losses.normalized_softmax_loss, temperature=0.5),
    "cosface_loss": functools.partial(losses.cosface_loss, scale=8.0),
    "arcface_loss": functools.partial(losses.arcface_loss, margin=1.5, scale=8.0),  # past pi - m
}


@pytest.mark.parametrize("name", list(_LOSSES))
def test_class_sharded_equals_single_device(name):
  fn = _LOSSES[name]
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(B, D)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(D, C)), jnp.float32)
  y = jnp.asarray(rng.integers(0, C, size=B), jnp.int32)
  if name == "softmax_cross_entropy":  # its input is the logits, sharded by class likewise
    loss = lambda a, p, **kw: fn(a @ p, y, **kw)  # noqa: E731
  else:
    loss = lambda a, p, **kw: fn(a, y, p, **kw)  # noqa: E731
  want, want_grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(x, w)
  mesh = Mesh(np.array(jax.devices()[:SHARDS]), ("model",))
  got, grads = jax.jit(jax.shard_map(
      jax.value_and_grad(functools.partial(loss, class_axis_name="model"), argnums=(0, 1)),
      mesh=mesh, in_specs=(P(), P(None, "model")), out_specs=(P(), (P(), P(None, "model")))))(
          x, w)
  chex.assert_trees_all_close(got, want, rtol=1e-5)
  chex.assert_trees_all_close(grads, want_grads, rtol=1e-4, atol=1e-6)
  # Out-of-range global labels still poison value and gradient when the classes are sharded.
  bad = y.at[0].set(C)
  if name != "softmax_cross_entropy":
    value, (gx, _) = jax.jit(jax.shard_map(
        jax.value_and_grad(lambda a, p, t: fn(a, t, p, class_axis_name="model"), argnums=(0, 1)),
        mesh=mesh, in_specs=(P(), P(None, "model"), P()),
        out_specs=(P(), (P(), P(None, "model")))))(x, w, bad)
    assert np.isnan(value) and np.isnan(np.asarray(gx)).any()


@pytest.mark.parametrize("mesh_shape", [(2, 4), (4, 2)])
def test_two_d_mesh_equals_single_device(mesh_shape):
  """Batch over "data", classes over "model" (the harness every class-sharded loss uses)."""
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(8, D)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(D, C)), jnp.float32)
  y = jnp.asarray(rng.integers(0, C, size=8), jnp.int32)

  def loss(a, t, p, *, axis_name, class_axis_name):
    del axis_name
    return losses.arcface_loss(a, t, p, margin=0.3, scale=8.0, class_axis_name=class_axis_name)

  harness.assert_sharded_matches(loss, x, y, [w], [1], mesh_shape=mesh_shape)
  harness.assert_bad_label_is_nan(loss, x, y, [w], [1], num_classes=C, mesh_shape=mesh_shape)


def test_batch_coupled_loss_through_the_harness():
  """A batch-coupled loss (ProxyAnchor, global batch via axis_name) on an 8 x 1 mesh."""
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.normal(size=(8, D)), jnp.float32)
  p = jnp.asarray(rng.normal(size=(C, D)), jnp.float32)
  y = jnp.asarray(rng.integers(0, C, size=8), jnp.int32)

  def loss(a, t, q, *, axis_name, class_axis_name):
    del class_axis_name
    return losses.proxy_anchor_loss(a, t, q, axis_name=axis_name)

  harness.assert_sharded_matches(loss, x, y, [p], [None], mesh_shape=(8, 1), batch_coupled=True)


def test_take_classes_and_argmax_match_one_device():
  rng = np.random.default_rng(3)
  table = jnp.asarray(rng.normal(size=(C, 3)), jnp.float32)
  logits = jnp.asarray(rng.integers(0, 3, size=(B, C)), jnp.float32)  # many ties
  y = jnp.asarray(rng.integers(0, C, size=B), jnp.int32)
  mesh = Mesh(np.array(jax.devices()[:SHARDS]), ("model",))
  rows, top = jax.jit(jax.shard_map(
      lambda t, z: (class_sharding.take_classes(t, y, "model"),
                    class_sharding.argmax(z, "model")),
      mesh=mesh, in_specs=(P("model"), P(None, "model")), out_specs=(P(), P())))(table, logits)
  chex.assert_trees_all_close(rows, table[y])
  chex.assert_trees_all_equal(top, jnp.argmax(logits, axis=1))
