"""Class-sharded proxy losses (`class_axis_name`) on (data x model) meshes equal one device.

The proxies (C, D) or (C, K, D) are split over "model" by class, the batch over "data"; the
batch-coupled losses (ProxyAnchor, MPA, MPA-DW, MPA-AP) also receive ``axis_name="data"``. The
one-device values these are compared with are tested against float64 references and
pytorch-metric-learning in ``tests/losses/test_proxy.py``.
"""

import functools

import chex
import jax
import jax.extend.core as jex_core
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from dmlax import losses
from tests.losses import class_sharding_harness as harness

B, D, C = 8, 6, 8
# Classes 1, 2 and 4 are absent (ProxyAnchor / MPA average over the present ones); on a (2, 4)
# mesh each data shard holds classes the other lacks.
LABELS = np.array([3, 0, 6, 3, 7, 0, 5, 6], np.int32)

# name -> (loss(features, labels, proxies, **kw), takes axis_name, multi-proxy (C, K, D))
_LOSSES = {
    "proxy_anchor": (losses.proxy_anchor_loss, True, False),
    "proxy_nca": (functools.partial(losses.proxy_nca_loss, softmax_scale=3.0), False, False),
    "soft_triple": (losses.soft_triple_loss, False, True),
    "mpa": (losses.mpa_loss, True, True),
    "mpa_dw": (losses.mpa_dw_loss, True, True),
    "mpa_ap": (losses.mpa_ap_loss, True, True),
}


def _data(k: int | None, num_classes: int = C, labels=LABELS, seed: int = 0):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(len(labels), D)), jnp.float32)
  shape = (num_classes, D) if k is None else (num_classes, k, D)
  return x, jnp.asarray(labels), jnp.asarray(rng.normal(size=shape), jnp.float32)


def _harness_loss(name: str, **kw):
  """The loss in the harness's form (``axis_name`` dropped where the loss has none)."""
  fn, coupled, _ = _LOSSES[name]

  def loss(a, t, p, *, axis_name, class_axis_name):
    batch = {"axis_name": axis_name} if coupled else {}
    return fn(a, t, p, class_axis_name=class_axis_name, **batch, **kw)

  return loss


_CASES = [
    ("proxy_anchor", None, (1, 4)), ("proxy_anchor", None, (2, 4)),
    ("proxy_anchor", None, (4, 2)),
    ("proxy_nca", None, (1, 4)), ("proxy_nca", None, (4, 2)),
    ("soft_triple", 3, (1, 4)), ("soft_triple", 3, (2, 4)), ("soft_triple", 1, (4, 2)),
    ("mpa", 3, (1, 4)), ("mpa", 3, (2, 4)), ("mpa", 1, (4, 2)),
    ("mpa_dw", 3, (1, 4)), ("mpa_dw", 3, (4, 2)), ("mpa_dw", 1, (2, 4)),
    ("mpa_ap", 3, (1, 4)), ("mpa_ap", 3, (2, 4)), ("mpa_ap", 1, (4, 2)),
]


@pytest.mark.parametrize("name,k,mesh_shape", _CASES,
                         ids=[f"{n}-K{k or 1}-{m[0]}x{m[1]}" for n, k, m in _CASES])
def test_sharded_equals_one_device(name, k, mesh_shape):
  """Value and gradients (features, local proxy blocks) on the mesh, regulariser on (tau 0.2)."""
  x, y, p = _data(k)
  harness.assert_sharded_matches(_harness_loss(name), x, y, [p], [0], mesh_shape=mesh_shape,
                                 batch_coupled=_LOSSES[name][1])


@pytest.mark.parametrize("k,mesh_shape", [(2, (1, 4)), (4, (4, 2))], ids=["K2-1x4", "K4-4x2"])
# K = 4 takes the einsum path of the regulariser, K = 2 the static slices.
def test_proxy_regularizer_sharded(k, mesh_shape):
  x, y, p = _data(k)

  def loss(a, t, q, *, axis_name, class_axis_name):
    del a, t, axis_name
    return losses.proxy_regularizer(q, class_axis_name=class_axis_name)

  harness.assert_sharded_matches(loss, x, y, [p], [0], mesh_shape=mesh_shape)


@pytest.mark.parametrize("name", list(_LOSSES))
def test_bad_global_label_is_nan(name):
  x, y, p = _data(None if not _LOSSES[name][2] else 3)
  harness.assert_bad_label_is_nan(_harness_loss(name), x, y, [p], [0], num_classes=C,
                                  mesh_shape=(2, 4), batch_coupled=_LOSSES[name][1])


def test_reductions_none_and_sum_on_a_two_d_mesh():
  """"none": per-class losses give this device's (C_local,) block, data-wise losses their
  (B_local,) examples; "sum": the global sum, or for a loss without `axis_name` the sum of its
  batch shard (tau R added once). All six losses in one compiled program."""
  x, y, p3 = _data(3)
  p1 = p3[:, 0]
  mesh = harness.mesh((2, 4))
  data, model = harness.DATA, harness.MODEL

  def outputs(a, t, q1, q3, axis_name=None, class_axis_name=None):
    out = {}
    for name, (fn, coupled, multi) in _LOSSES.items():
      q = q3 if multi else q1
      kw = {"axis_name": axis_name} if coupled else {}
      kw["class_axis_name"] = class_axis_name
      out[name + ":none"] = fn(a, t, q, reduction="none", **kw)
      out[name + ":sum"] = fn(a, t, q, reduction="sum", **kw)[None]
    return out

  want = jax.jit(outputs)(x, y, p1, p3)
  halves = [jax.jit(outputs)(x[i * 4:(i + 1) * 4], y[i * 4:(i + 1) * 4], p1, p3) for i in (0, 1)]
  out_specs = {}
  for name, (_, coupled, _) in _LOSSES.items():
    out_specs[name + ":none"] = P(model) if name in ("proxy_anchor", "mpa") else P(data)
    if coupled:
      out_specs[name + ":sum"] = P()
    else:
      out_specs[name + ":sum"] = P(data)
      want[name + ":sum"] = jnp.concatenate([h[name + ":sum"] for h in halves])
  sharded = jax.shard_map(
      functools.partial(outputs, axis_name=data, class_axis_name=model), mesh=mesh,
      in_specs=(P(data), P(data), P(model), P(model)), out_specs=out_specs)
  got = jax.jit(sharded)(x, y, p1, p3)
  chex.assert_trees_all_close(got, want, rtol=1e-5)


def _shard_map_bodies(jaxpr):
  """Every jaxpr nested in a ``shard_map`` equation (forward and transposed)."""
  for eqn in jaxpr.eqns:
    subs = []
    for value in eqn.params.values():
      for v in value if isinstance(value, (list, tuple)) else [value]:
        if isinstance(v, jex_core.ClosedJaxpr):
          subs.append(v.jaxpr)
        elif isinstance(v, jex_core.Jaxpr):
          subs.append(v)
    for sub in subs:
      if eqn.primitive.name == "shard_map":
        yield sub
      yield from _shard_map_bodies(sub)


def _all_eqns(jaxpr):
  for eqn in jaxpr.eqns:
    yield eqn
    for value in eqn.params.values():
      for v in value if isinstance(value, (list, tuple)) else [value]:
        if isinstance(v, jex_core.ClosedJaxpr):
          yield from _all_eqns(v.jaxpr)
        elif isinstance(v, jex_core.Jaxpr):
          yield from _all_eqns(v)


@pytest.mark.parametrize("name", list(_LOSSES))
def test_no_device_holds_a_class_sized_array(name):
  """In the sharded forward and backward programs no collective gathers and no per-device
  value has the global class count (12, or 12 K) as a dimension: 4 shards of 3 classes."""
  num_classes, k = 12, 3
  labels = np.arange(B, dtype=np.int32) % num_classes
  x, y, p = _data(k if _LOSSES[name][2] else None, num_classes, labels)
  sharded = harness.sharded_loss(_harness_loss(name, reduction="sum"), [p], [0], (2, 4),
                                 batch_coupled=_LOSSES[name][1])
  closed = jax.make_jaxpr(jax.value_and_grad(sharded, argnums=(0, 2)))(x, y, p)
  bodies = list(_shard_map_bodies(closed.jaxpr))
  assert len(bodies) >= 2, "expected the forward and the transposed shard_map"
  for body in bodies:
    for eqn in _all_eqns(body):
      assert eqn.primitive.name not in ("all_gather", "all_to_all", "ragged_all_to_all"), eqn
      for var in list(eqn.invars) + list(eqn.outvars):
        shape = getattr(var.aval, "shape", ())
        assert num_classes not in shape and num_classes * k not in shape, (eqn, shape)


def test_in_map_gradients_are_the_local_blocks():
  """``grad`` taken inside ``shard_map`` (a trainer's step): the features' rows and the local
  proxy block of the one-device gradient, the batch coupled over "data"."""
  x, y, p = _data(3)
  want = jax.jit(jax.grad(lambda a, q: losses.mpa_loss(a, y, q), argnums=(0, 1)))(x, p)

  def per_device(a, t, q):
    return jax.grad(lambda a, q: losses.mpa_loss(
        a, t, q, axis_name=harness.DATA, class_axis_name=harness.MODEL), argnums=(0, 1))(a, q)

  got = jax.jit(jax.shard_map(
      per_device, mesh=harness.mesh((2, 4)), in_specs=(P(harness.DATA), P(harness.DATA),
                                                       P(harness.MODEL)),
      out_specs=(P(harness.DATA), P(harness.MODEL))))(x, y, p)
  chex.assert_trees_all_close(got, want, rtol=1e-4, atol=1e-6)
