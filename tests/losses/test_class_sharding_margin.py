"""The margin softmaxes with their classes sharded (`class_axis_name`) equal one device.

L-Softmax, SphereFace (annealed lambda), SigSoftmax, Noisy Softmax, Virtual Softmax and
sub-center ArcFace on (data x model) meshes of fake CPU devices (shared harness), every
reduction, a traced out-of-range label, and the per-device programs' shapes: nothing there has
the size of the full class axis and no collective gathers.
"""

import functools

import chex
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from dmlax import losses
from tests.losses import class_sharding_harness as harness
from tests.losses.test_margin import np_noisy

B, D, C, K = 8, 6, 8, 3
_KEY = jax.random.PRNGKey(7)


def _arrays(num_classes=C, seed=0):
  rng = np.random.default_rng(seed)
  return {
      "x": jnp.asarray(rng.normal(size=(B, D)), jnp.float32),
      "y": jnp.asarray(rng.integers(0, num_classes, size=B), jnp.int32),
      "w": jnp.asarray(rng.normal(size=(D, num_classes)), jnp.float32),
      "b": jnp.asarray(rng.normal(size=num_classes), jnp.float32),
      "s": jnp.asarray(rng.normal(size=(D, num_classes, K)), jnp.float32),
      # A traced lambda (a parameter held whole by every device), as the training loop passes it.
      "lam": losses.annealed_lambda(200),
  }


def _plain(fn):
  """A loss that does not couple the batch: the harness averages its per-shard means."""
  def loss(a, t, *p, axis_name, class_axis_name, reduction="mean"):
    del axis_name
    return fn(a, t, *p, reduction=reduction, class_axis_name=class_axis_name)
  return loss


def _coupled(fn):
  """A loss that takes `axis_name`: it returns the global batch's value itself."""
  def loss(a, t, *p, axis_name, class_axis_name, reduction="mean"):
    return fn(a, t, *p, reduction=reduction, axis_name=axis_name, class_axis_name=class_axis_name)
  return loss


def _sphereface(a, t, w, lam, **kw):
  return losses.sphereface_loss(a, t, w, margin=4, lam=lam, **kw)


def _sigsoftmax_bias(a, t, w, b, **kw):
  return losses.sigsoftmax_loss(a, t, w, bias=b, **kw)


def _virtual_bias(a, t, w, b, **kw):
  return losses.virtual_softmax_loss(a, t, w, bias=b, **kw)


# name -> (loss, names of its parameters in `_arrays`, their class axes, batch-coupled)
_CASES = {
    "large_margin_softmax": (
        _plain(functools.partial(losses.large_margin_softmax_loss, margin=3, lam=1.0)),
        ("w",), (1,), False),
    "sphereface_annealed": (_plain(_sphereface), ("w", "lam"), (1, None), False),
    "sigsoftmax": (_plain(losses.sigsoftmax_loss), ("w",), (1,), False),
    "sigsoftmax_bias": (_plain(_sigsoftmax_bias), ("w", "b"), (1, 0), False),
    "noisy_softmax": (
        _coupled(functools.partial(losses.noisy_softmax_loss, key=_KEY, noise_scale=0.5)),
        ("w",), (1,), True),
    "virtual_softmax": (_plain(losses.virtual_softmax_loss), ("w",), (1,), False),
    "virtual_softmax_bias": (_plain(_virtual_bias), ("w", "b"), (1, 0), False),
    "subcenter_arcface": (
        _coupled(functools.partial(losses.subcenter_arcface_loss, margin=0.4, scale=8.0)),
        ("s",), (1,), True),
}
# Each case on the class-only mesh and on one 2-D mesh (both 2-D shapes are covered).
_MESHES = [pytest.param(name, shape, id=f"{name}-{shape[0]}x{shape[1]}")
           for i, name in enumerate(_CASES) for shape in ((1, 4), ((2, 4), (4, 2))[i % 2])]


def _case(name, num_classes=C):
  loss, names, axes, coupled = _CASES[name]
  arrays = _arrays(num_classes)
  return loss, arrays, [arrays[n] for n in names], axes, coupled


@pytest.mark.parametrize("name,mesh_shape", _MESHES)
def test_sharded_value_and_gradients_equal_one_device(name, mesh_shape):
  loss, a, params, axes, coupled = _case(name)
  harness.assert_sharded_matches(loss, a["x"], a["y"], params, axes, mesh_shape=mesh_shape,
                                 batch_coupled=coupled)


@pytest.mark.parametrize("name", ["large_margin_softmax", "sphereface_annealed", "sigsoftmax_bias",
                                  "noisy_softmax", "virtual_softmax_bias", "subcenter_arcface"])
def test_traced_bad_global_label_is_nan(name):
  loss, a, params, axes, coupled = _case(name)
  harness.assert_bad_label_is_nan(loss, a["x"], a["y"], params, axes, num_classes=C,
                                  mesh_shape=(2, 4), batch_coupled=coupled)


def test_every_reduction_equals_one_device():
  """"none" (per example) and "sum" of every case, classes over 4 devices, in one program."""
  a = _arrays()
  mesh = Mesh(np.array(jax.devices()[:4]), (harness.MODEL,))
  cases = [_case(name) for name in _CASES]

  def run(x, y, params_per_case, class_axis_name):
    return [loss(x, y, *p, axis_name=None, class_axis_name=class_axis_name, reduction=r)
            for (loss, *_), p in zip(cases, params_per_case) for r in ("none", "sum")]

  params = [p for _, _, p, _, _ in cases]
  specs = [[P(*[harness.MODEL if i == c else None for i in range(q.ndim)]) for q, c in zip(p, axes)]
           for _, _, p, axes, _ in cases]
  want = jax.jit(functools.partial(run, class_axis_name=None))(a["x"], a["y"], params)
  got = jax.jit(jax.shard_map(functools.partial(run, class_axis_name=harness.MODEL), mesh=mesh,
                              in_specs=(P(), P(), specs), out_specs=P()))(a["x"], a["y"], params)
  for value in want[::2]:
    chex.assert_shape(value, (B,))
  chex.assert_trees_all_close(got, want, rtol=1e-5)


def test_noisy_softmax_noise_is_the_global_batch_draw():
  """With the batch over 4 devices and the classes over 2, each example gets the one-device
  noise, so the loss equals one device's; each device drawing for its own 2 examples (the same
  2 draws on every device) would give another value."""
  loss, a, params, axes, _ = _case("noisy_softmax")
  harness.assert_sharded_matches(loss, a["x"], a["y"], params, axes, mesh_shape=(4, 2),
                                 batch_coupled=True)
  x, y, w = (np.asarray(a[k]) for k in "xyw")
  one_device = losses.noisy_softmax_loss(x, y, w, key=_KEY, noise_scale=0.5)
  xi = np.asarray(jax.random.normal(_KEY, (B,)), np.float64)
  chex.assert_trees_all_close(one_device, np_noisy(x, y, w, 0.5, xi).mean(), rtol=1e-5)
  per_device = np.tile(np.asarray(jax.random.normal(_KEY, (B // 4,)), np.float64), 4)
  assert abs(np_noisy(x, y, w, 0.5, per_device).mean() - float(one_device)) > 1e-3


def _sub_jaxprs(value):
  if isinstance(value, jax.extend.core.ClosedJaxpr):
    yield value.jaxpr
  elif isinstance(value, jax.extend.core.Jaxpr):
    yield value
  elif isinstance(value, (tuple, list)):
    for v in value:
      yield from _sub_jaxprs(v)


def _per_device_eqns(jaxpr, inside=False):
  """Equations of every shard_map body (per-device programs) in `jaxpr`, nested ones included."""
  for eqn in jaxpr.eqns:
    body = inside or eqn.primitive.name == "shard_map"
    if inside:
      yield eqn
    for value in eqn.params.values():
      for sub in _sub_jaxprs(value):
        yield from _per_device_eqns(sub, body)


@pytest.mark.parametrize("name", ["large_margin_softmax", "sphereface_annealed", "sigsoftmax_bias",
                                  "noisy_softmax", "virtual_softmax_bias", "subcenter_arcface"])
def test_no_device_holds_the_full_class_axis(name):
  """Forward and backward per-device programs on a (2, 4) mesh with C = 16 classes (4 each):
  no array with a dimension of C (or C K sub-centers) and no gathering collective."""
  num_classes = 16
  loss, a, params, axes, coupled = _case(name, num_classes)
  sharded = harness.sharded_loss(loss, params, axes, (2, 4), coupled)
  argnums = (0,) + tuple(range(2, 2 + len(params)))
  jaxpr = jax.make_jaxpr(jax.value_and_grad(sharded, argnums=argnums))(a["x"], a["y"], *params)
  eqns = list(_per_device_eqns(jaxpr.jaxpr))
  assert eqns, "no shard_map body found"
  primitives = {e.primitive.name for e in eqns}
  assert not primitives & {"all_gather", "all_to_all", "reduce_scatter", "ppermute"}, primitives
  assert "psum" in primitives or "psum_invariant" in primitives, primitives
  shapes = {tuple(getattr(v.aval, "shape", ())) for e in eqns for v in (*e.invars, *e.outvars)
            if hasattr(v, "aval")}
  full = {num_classes, num_classes * K}
  assert not [s for s in shapes if full & set(s)], sorted(shapes)
  assert any(num_classes // 4 in s for s in shapes)  # the local block is there
