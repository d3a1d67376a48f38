"""W-Softmax, SGSL and softmax + SGSL with class-sharded classifiers equal one device.

Every case runs under ``shard_map`` on fake CPU devices (mesh "data" x "model", weights' columns
over "model") through `tests/losses/class_sharding_harness.py`: value and gradients equal the
one-device loss, a bad global label gives NaN, and the per-device program holds no class-sized
array of the full C and gathers nothing.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend import core as jex_core
from jax.sharding import PartitionSpec as P

from dmlax import losses
from tests.losses import class_sharding_harness as harness

B, D, C = 8, 6, 8


def _draw(seed, num_classes=C, batch=B):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(batch, D)) * 2.0, jnp.float32)
  w = jnp.asarray(rng.normal(size=(D, num_classes)), jnp.float32)
  y = jnp.asarray(rng.integers(0, num_classes, size=batch), jnp.int32)
  return x, y, w


def _batch_total(value, axis_name):
  """A per-shard "sum" summed over the data axis (the harness passes it as batch-coupled)."""
  return value if axis_name is None else jax.lax.psum(value, axis_name)


def _wsm(reduction="mean", **kw):
  def loss(x, y, w, *, axis_name, class_axis_name):
    value = losses.weights_biased_softmax_loss(x, y, w, reduction=reduction,
                                               class_axis_name=class_axis_name, **kw)
    return _batch_total(value, axis_name)
  return loss


def _sgsl(reduction="mean"):
  def loss(x, y, w, *, axis_name, class_axis_name):
    value = losses.stop_gradient_softmax_loss(x, y, w, gamma=5.0, reduction=reduction,
                                              class_axis_name=class_axis_name)
    return _batch_total(value, axis_name)
  return loss


def _softmax_sgsl(start_below, reduction="mean"):
  def loss(x, y, w, *, axis_name, class_axis_name):
    total, _ = losses.softmax_sgsl_loss(x, y, w, gamma=5.0, start_below=start_below,
                                        reduction=reduction, axis_name=axis_name,
                                        class_axis_name=class_axis_name)
    return total
  return loss


def _ce(x, y, w):
  """The global-batch, full-class label-smoothed softmax CE the gate of softmax + SGSL sees."""
  return float(losses.softmax_cross_entropy(x @ w, y, label_smoothing=0.1))


# (name, loss factory, mesh, batch_coupled, num_classes). A "sum" of a loss that does not couple
# the batch is summed over "data" by its wrapper, so the harness runs it as batch-coupled.
# num_classes=4 with B=8: the one-device loss takes the Gram-matrix branch (B > C), the sharded
# one gathers the target columns.
_CASES = [
    ("wsm alpha=1", lambda x, y, w: _wsm(alpha=1.0), (1, 4), False, C),
    ("wsm alpha=1", lambda x, y, w: _wsm(alpha=1.0), (2, 4), False, C),
    ("wsm alpha=0", lambda x, y, w: _wsm(alpha=0.0), (1, 4), False, C),
    ("wsm stop_gradient_biased", lambda x, y, w: _wsm(alpha=1.5, stop_gradient_biased=True),
     (1, 4), False, C),
    ("wsm stop_gradient_biased", lambda x, y, w: _wsm(alpha=1.5, stop_gradient_biased=True),
     (4, 2), False, C),
    ("wsm sum", lambda x, y, w: _wsm("sum", alpha=0.7), (2, 4), True, C),
    ("wsm B > C", lambda x, y, w: _wsm(alpha=1.0), (2, 2), False, 4),
    ("sgsl", lambda x, y, w: _sgsl(), (1, 4), False, C),
    ("sgsl", lambda x, y, w: _sgsl(), (2, 4), False, C),
    ("sgsl sum", lambda x, y, w: _sgsl("sum"), (4, 2), True, C),
    # The gate just above / below the global CE: a gate judged on one shard's classes or one
    # shard's batch would flip on some device and change the value.
    ("softmax+sgsl active", lambda x, y, w: _softmax_sgsl(1.01 * _ce(x, y, w)), (1, 4), True, C),
    ("softmax+sgsl active", lambda x, y, w: _softmax_sgsl(1.01 * _ce(x, y, w)), (2, 4), True, C),
    ("softmax+sgsl inactive", lambda x, y, w: _softmax_sgsl(0.99 * _ce(x, y, w)), (4, 2), True,
     C),
    ("softmax+sgsl sum", lambda x, y, w: _softmax_sgsl(np.inf, "sum"), (2, 4), True, C),
]


@pytest.mark.parametrize("name,make,mesh_shape,coupled,num_classes", _CASES,
                         ids=[f"{c[0]}-{c[2][0]}x{c[2][1]}" for c in _CASES])
def test_sharded_equals_single_device(name, make, mesh_shape, coupled, num_classes):
  del name
  x, y, w = _draw(0, num_classes)
  harness.assert_sharded_matches(make(x, y, w), x, y, [w], [1], mesh_shape=mesh_shape,
                                 batch_coupled=coupled)


def test_gate_cases_straddle_the_global_softmax_loss():
  """The two gate thresholds above really put SGSL in and out of the one-device total."""
  x, y, w = _draw(0)
  ce = _ce(x, y, w)
  _, on = losses.softmax_sgsl_loss(x, y, w, gamma=5.0, start_below=1.01 * ce)
  _, off = losses.softmax_sgsl_loss(x, y, w, gamma=5.0, start_below=0.99 * ce)
  assert bool(on["sgsl_active"]) and not bool(off["sgsl_active"])


def _per_example(fn, mesh_shape, x, y, w):
  m = harness.mesh(mesh_shape)
  return jax.jit(jax.shard_map(
      fn, mesh=m, in_specs=(P(harness.DATA), P(harness.DATA), P(None, harness.MODEL)),
      out_specs=P(harness.DATA)))(x, y, w)


def test_reduction_none_per_example_values():
  x, y, w = _draw(1)
  wsm = functools.partial(losses.weights_biased_softmax_loss, alpha=1.0, reduction="none")
  sgsl = functools.partial(losses.stop_gradient_softmax_loss, gamma=5.0, reduction="none")
  for fn in (wsm, sgsl):
    got = _per_example(lambda a, t, p, f=fn: f(a, t, p, class_axis_name=harness.MODEL),
                       (2, 4), x, y, w)
    chex.assert_trees_all_close(got, fn(x, y, w), rtol=1e-5)

  def both(a, t, p, class_axis_name=None, axis_name=None):
    total, aux = losses.softmax_sgsl_loss(a, t, p, gamma=5.0, start_below=np.inf,
                                          reduction="none", axis_name=axis_name,
                                          class_axis_name=class_axis_name)
    return total, aux["softmax"], aux["sgsl"]

  got = _per_example(functools.partial(both, class_axis_name=harness.MODEL,
                                       axis_name=harness.DATA), (2, 4), x, y, w)
  chex.assert_trees_all_close(got, both(x, y, w), rtol=1e-5)


@pytest.mark.parametrize("make,mesh_shape,coupled", [
    (lambda: _wsm(alpha=1.0), (2, 4), False),
    (lambda: _wsm(alpha=1.0, stop_gradient_biased=True), (1, 4), False),
    (lambda: _sgsl(), (1, 4), False),
    (lambda: _softmax_sgsl(np.inf), (2, 4), True),
], ids=["wsm", "wsm stop_gradient_biased", "sgsl", "softmax+sgsl"])
def test_bad_global_label_is_nan(make, mesh_shape, coupled):
  x, y, w = _draw(2)
  harness.assert_bad_label_is_nan(make(), x, y, [w], [1], num_classes=C, mesh_shape=mesh_shape,
                                  batch_coupled=coupled)


def _shard_map_bodies(jaxpr):
  """Every jaxpr nested in a shard_map equation of `jaxpr` (the per-device programs)."""
  for eqn in jaxpr.eqns:
    for sub in jex_core.jaxprs_in_params(eqn.params):
      if eqn.primitive.name == "shard_map":
        yield sub
      yield from _shard_map_bodies(sub)


def _all_jaxprs(jaxpr):
  yield jaxpr
  for eqn in jaxpr.eqns:
    for sub in jex_core.jaxprs_in_params(eqn.params):
      yield from _all_jaxprs(sub)


@pytest.mark.parametrize("make,coupled", [
    (lambda: _wsm(alpha=1.0), False),
    (lambda: _wsm(alpha=1.0, stop_gradient_biased=True), False),
    (lambda: _sgsl(), False),
    (lambda: _softmax_sgsl(np.inf), True),
], ids=["wsm", "wsm stop_gradient_biased", "sgsl", "softmax+sgsl"])
def test_per_device_program_holds_no_full_class_array(make, coupled):
  """Forward and backward: no all_gather, and no per-device array with an axis of the full C."""
  num_classes, mesh_shape = 20, (2, 4)  # C_local = 5, B_local = 4, D = 6: all distinct from 20
  x, y, w = _draw(3, num_classes)
  sharded = harness.sharded_loss(make(), [w], [1], mesh_shape, coupled)
  closed = jax.make_jaxpr(jax.value_and_grad(sharded, argnums=(0, 2)))(x, y, w)
  bodies = list(_shard_map_bodies(closed.jaxpr))
  assert bodies, "no shard_map in the program"
  primitives, sizes = set(), set()
  for body in bodies:
    for jaxpr in _all_jaxprs(body):
      for eqn in jaxpr.eqns:
        primitives.add(eqn.primitive.name)
        for v in list(eqn.invars) + list(eqn.outvars):
          sizes.update(getattr(getattr(v, "aval", None), "shape", ()))
  assert "psum" in primitives or "psum_invariant" in primitives, sorted(primitives)
  gathers = {p for p in primitives if "gather" in p and "all" in p} | (
      primitives & {"all_to_all", "ppermute"})
  assert not gathers, f"collectives that move class blocks: {gathers}"
  assert num_classes not in sizes, f"a per-device array has the full class axis: {sorted(sizes)}"
