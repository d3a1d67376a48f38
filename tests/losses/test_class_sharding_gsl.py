"""Group softmax with its classifier sharded by class (`class_axis_name`) equals one device.

Meshes ("data", "model") of the 8 fake CPU devices (tests/conftest.py); the classifier (D, C)
and bias (C,) are split over "model" by class, the batch over "data". D=6 with groups (1, 2, 4)
takes every layout path: G=4 is padded (sizes 2, 2, 1, 1), G=2 is not nested in it (its own
blocked matmul), G=1 is a sum of the G=4 logits. C=12 differs from every other dimension, so the
per-device shape check below can tell a full-class array from anything else.
"""


import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend import core as jax_core
from jax.sharding import PartitionSpec as P

from dmlax import losses
from tests.losses import class_sharding_harness as harness

B, D, C = 8, 6, 12


def _draw(seed):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(B, D)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(D, C)), jnp.float32)
  b = jnp.asarray(rng.normal(size=(C,)), jnp.float32)
  y = jnp.asarray(rng.integers(0, C, size=B), jnp.int32)
  return x, y, w, b


def _loss(loss_type, grouping, reduction="mean", groups=(1, 2, 4), coeffs=None):
  """``loss(x, y, w[, b], *, axis_name, class_axis_name)`` -> scalar, for the harness."""
  rng = jax.random.PRNGKey(7) if grouping == "random" else None

  def loss(x, y, w, *bias, axis_name, class_axis_name):
    out = losses.group_softmax_loss(
        x, y, w, *bias, groups=groups, loss_type=loss_type, grouping=grouping, rng=rng,
        axis_name=axis_name, class_axis_name=class_axis_name, reduction=reduction)
    # reduction="none": a fixed weighting of the (B,) values makes every entry count.
    return out if coeffs is None else jnp.sum(coeffs * out)

  return loss


# (loss_type, grouping, bias, reduction, mesh): every grouping and loss type, bias on and off,
# every reduction, a 1-D class mesh and both 2-D meshes. Discriminative grouping with a data
# axis is batch-coupled (the scores are over the global batch), so it gets axis_name="data".
_CASES = [
    ("II", "discriminative", True, "mean", (1, 4)),
    ("I", "discriminative", False, "sum", (2, 4)),
    ("II", "discriminative", False, "mean", (4, 2)),
    ("I", "random", True, "mean", (4, 2)),
    ("II", "prefixed", True, "sum", (2, 4)),
    ("I", "prefixed", False, "none", (1, 4)),
    ("II", "random", False, "none", (1, 4)),
]


@pytest.mark.parametrize("loss_type, grouping, with_bias, reduction, mesh_shape", _CASES)
def test_sharded_equals_single_device(loss_type, grouping, with_bias, reduction, mesh_shape):
  x, y, w, b = _draw(0)
  coeffs = None
  if reduction == "none":  # the data axis is 1 in these cases: the local batch is global
    assert mesh_shape[0] == 1
    coeffs = jnp.asarray(np.random.default_rng(1).uniform(0.5, 2.0, size=B), jnp.float32)
  loss = _loss(loss_type, grouping, reduction, coeffs=coeffs)
  params, axes = ([w, b], [1, 0]) if with_bias else ([w], [1])
  harness.assert_sharded_matches(loss, x, y, params, axes, mesh_shape=mesh_shape,
                                 batch_coupled=mesh_shape[0] > 1)


def test_other_resolution_sets_and_single_group():
  """(2, 3): neither nests in the other (two blocked matmuls, no G=1); (1,): plain softmax CE
  on x @ W + b, no permutation."""
  x, y, w, b = _draw(2)
  for groups in [(2, 3), (1,)]:
    loss = _loss("I", "discriminative", groups=groups)
    harness.assert_sharded_matches(loss, x, y, [w, b], [1, 0], mesh_shape=(2, 4),
                                   batch_coupled=True)


def test_bad_global_label_is_nan():
  x, y, w, b = _draw(3)
  loss = _loss("II", "discriminative")
  harness.assert_bad_label_is_nan(loss, x, y, [w, b], [1, 0], num_classes=C, mesh_shape=(2, 4),
                                  batch_coupled=True)


def test_discriminative_grouping_is_the_global_one():
  """The grouping every shard computes equals the one-device grouping of the global batch and
  all classes, and is the same on every device; a shard's own classes alone would sort
  differently (so the psum over the class axis is what makes them agree)."""
  x, y, w, _ = _draw(4)
  want = losses.discriminative_grouping(x, y, w, 3)
  m = harness.mesh((2, 4))
  got = jax.jit(jax.shard_map(
      lambda a, t, p: losses.discriminative_grouping(
          a, t, p, 3, axis_name=harness.DATA, class_axis_name=harness.MODEL)[None, None],
      mesh=m, in_specs=(P(harness.DATA), P(harness.DATA), P(None, harness.MODEL)),
      out_specs=P(harness.DATA, harness.MODEL)))(x, y, w)
  chex.assert_shape(got, (2, 4, D))
  chex.assert_trees_all_equal(got, jnp.broadcast_to(want, (2, 4, D)))
  # Per-shard scores (own classes only, eq. 9 over C/4 classes) give other groupings.
  c_local = C // 4
  local = [losses.discriminative_grouping(
      x, jnp.clip(y - k * c_local, 0, c_local - 1), w[:, k * c_local:(k + 1) * c_local], 3)
           for k in range(4)]
  assert any((np.asarray(g) != np.asarray(want)).any() for g in local)


def _subjaxprs(eqn):
  for param in eqn.params.values():
    for sub in (param if isinstance(param, (list, tuple)) else [param]):
      if isinstance(sub, jax_core.ClosedJaxpr):
        yield sub.jaxpr
      elif isinstance(sub, jax_core.Jaxpr):
        yield sub


def _walk(jaxpr, inside=False):
  """(primitive name, output shapes) of every equation inside a shard_map body, recursively."""
  for eqn in jaxpr.eqns:
    if inside:
      yield eqn.primitive.name, [v.aval.shape for v in eqn.outvars if hasattr(v.aval, "shape")]
    for sub in _subjaxprs(eqn):
      yield from _walk(sub, inside or eqn.primitive.name == "shard_map")


def test_no_device_holds_a_full_class_array():
  """Forward and backward per-device programs: no all_gather, and no value with a dimension of
  the full class count C (the local block is C / 4 = 3 classes)."""
  x, y, w, b = _draw(5)
  loss = _loss("II", "discriminative")
  sharded = harness.sharded_loss(loss, [w, b], [1, 0], (2, 4), batch_coupled=True)
  jaxpr = jax.make_jaxpr(jax.value_and_grad(sharded, argnums=(0, 2, 3)))(x, y, w, b).jaxpr
  eqns = list(_walk(jaxpr))
  assert eqns, "no shard_map in the traced program"
  primitives = {name for name, _ in eqns}
  dims = {d for _, shapes in eqns for shape in shapes for d in shape}
  assert "all_gather" not in primitives
  assert "pmax" in primitives and any(p.startswith("psum") for p in primitives), primitives
  assert C not in dims, f"a per-device value has the full class count {C} as a dimension"
  assert C // 4 in dims
