"""Every pair/triplet loss and miner on 8 fake devices: inside ``shard_map`` the value and the
per-device gradient equal the single-device value and gradient of the global batch; inside
``pmap`` the value is equal and the gradient is 8 times it (pmap transposes psum to psum, the
convention documented in `dmlax.pairs`). Mined masks are the global masks' rows of each device.
"""

import functools

import chex
import jax
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from dmlax import losses
from dmlax import miners

N = 8  # devices (tests/conftest.py)
B, D, C = 24, 6, 5  # global batch; 3 per device


def _problem(seed=0, b=B):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(b, D)).astype(np.float32)
  y = rng.integers(0, C, size=b).astype(np.int32)
  return x, y


_W = np.random.default_rng(9).normal(size=(D, C, 2)).astype(np.float32)
_BETA = np.linspace(0.9, 1.2, C).astype(np.float32)

LOSSES = {
    "contrastive": losses.contrastive_loss,
    "contrastive_cos": functools.partial(losses.contrastive_loss, distance="cosine",
                                         pos_margin=0.8, neg_margin=0.3),
    "ms": losses.multi_similarity_loss,
    "triplet_all": losses.triplet_margin_loss,
    "triplet_soft_dot": functools.partial(losses.triplet_margin_loss, soft=True, distance="dot"),
    "triplet_hard": functools.partial(losses.triplet_margin_loss, mining="hard"),
    "triplet_semihard": functools.partial(losses.triplet_margin_loss, mining="semihard",
                                          distance="squared_euclidean"),
    "ntxent": functools.partial(losses.ntxent_loss, temperature=0.5),
    "supcon": losses.supcon_loss,
    "circle": functools.partial(losses.circle_loss, gamma=8.0),
    "margin": functools.partial(losses.margin_loss, beta=1.1, nu=0.1),
    "margin_per_class": lambda x, y, **k: losses.margin_loss(x, y, _BETA, nu=0.1, **k),
    "lifted": losses.lifted_structure_loss,
    "subcenter_arcface": lambda x, y, **k: losses.subcenter_arcface_loss(x, y, _W, scale=8.0,
                                                                         **k),
}
PAIR_MINED = {"contrastive": losses.contrastive_loss, "ms": losses.multi_similarity_loss,
              "ntxent": losses.ntxent_loss, "lifted": losses.lifted_structure_loss}


def _all(x, y, axis_name=None):
  """Every loss's value and gradient, the miners' masks and the mined losses."""
  out = {name: jax.value_and_grad(lambda a, f=f: f(a, y, axis_name=axis_name))(x)
         for name, f in LOSSES.items()}
  masks = {
      "ms_miner": miners.multi_similarity_miner(x, y, axis_name=axis_name),
      "pair_margin": miners.pair_margin_miner(x, y, pos_margin=1.0, neg_margin=1.2,
                                              axis_name=axis_name),
      "triplet_semihard": miners.triplet_margin_miner(x, y, margin=0.3,
                                                      type_of_triplets="semihard",
                                                      axis_name=axis_name),
      "batch_hard": miners.batch_hard_miner(x, y, axis_name=axis_name),
      "easy_hard": miners.batch_easy_hard_miner(x, y, axis_name=axis_name),
  }
  for name, f in PAIR_MINED.items():
    out[name + "_mined"] = jax.value_and_grad(
        lambda a, f=f: f(a, y, pairs=masks["ms_miner"], axis_name=axis_name))(x)
  out["triplet_mined"] = jax.value_and_grad(lambda a: losses.triplet_margin_loss(
      a, y, triplets=masks["triplet_semihard"], axis_name=axis_name))(x)
  out["margin_mined"] = jax.value_and_grad(lambda a: losses.margin_loss(
      a, y, triplets=masks["batch_hard"], axis_name=axis_name))(x)
  out["ms_none"] = losses.multi_similarity_loss(x, y, reduction="none", axis_name=axis_name)
  out["triplet_sum"] = losses.triplet_margin_loss(x, y, reduction="sum", axis_name=axis_name)
  return out, masks


def _check_against_single(got, masks, expected, expected_masks, grad_factor):
  exp_out, _ = expected
  for name, want in exp_out.items():
    if isinstance(want, tuple):
      chex.assert_trees_all_close(got[name][0], want[0], rtol=1e-5, atol=1e-6,
                                  custom_message=name)
      chex.assert_trees_all_close(got[name][1], grad_factor * want[1], rtol=1e-4, atol=1e-6,
                                  custom_message=name)
    else:
      chex.assert_trees_all_close(got[name], want, rtol=1e-5, atol=1e-6, custom_message=name)
  for name, want in expected_masks.items():
    np.testing.assert_array_equal(np.asarray(masks[name][0] if isinstance(want, tuple) else
                                             masks[name]),
                                  np.asarray(want[0] if isinstance(want, tuple) else want),
                                  err_msg=name)
    if isinstance(want, tuple):
      np.testing.assert_array_equal(np.asarray(masks[name][1]), np.asarray(want[1]),
                                    err_msg=name)


def test_shard_map_and_pmap_equal_single_device():
  x, y = _problem(0)
  single = jax.jit(_all)(x, y)
  assert float(single[0]["lifted"][0]) > 0 and np.any(single[1]["batch_hard"])
  # Values replicated (P()); gradients, per-anchor outputs and mask rows stay sharded.
  mesh = Mesh(np.array(jax.devices()[:N]), ("d",))
  out_specs = jax.tree_util.tree_map(lambda _: P("d"), single)
  for name, v in single[0].items():
    if isinstance(v, tuple):
      out_specs[0][name] = (P(), P("d"))
  out_specs[0]["triplet_sum"] = P()
  sharded = jax.jit(jax.shard_map(functools.partial(_all, axis_name="d"), mesh=mesh,
                                  in_specs=(P("d"), P("d")), out_specs=out_specs))(x, y)
  _check_against_single(*sharded, single, single[1], grad_factor=1.0)

  pmapped = jax.pmap(functools.partial(_all, axis_name="d"), axis_name="d")(
      x.reshape(N, B // N, D), y.reshape(N, B // N))
  flat = lambda a: a.reshape((B,) + a.shape[2:])
  out, masks = pmapped
  out = {k: ((v[0][0], flat(v[1])) if isinstance(v, tuple) else
             (v[0] if k == "triplet_sum" else flat(v))) for k, v in out.items()}
  masks = jax.tree_util.tree_map(flat, masks)
  _check_against_single(out, masks, single, single[1], grad_factor=float(N))


def test_sorted_batch_all_path_across_devices():
  """A global batch of 128 takes the sorted batch-all path; same value and gradient."""
  x, y = _problem(1, b=128)
  y = y % 20
  fn = lambda a, b, axis_name=None: jax.value_and_grad(
      lambda t: losses.triplet_margin_loss(t, b, axis_name=axis_name))(a)
  want = jax.jit(fn)(x, y)
  mesh = Mesh(np.array(jax.devices()[:N]), ("d",))
  got = jax.jit(jax.shard_map(functools.partial(fn, axis_name="d"), mesh=mesh,
                              in_specs=(P("d"), P("d")), out_specs=(P(), P("d"))))(x, y)
  chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-7)


def test_cross_batch_memory_across_devices():
  """The memory of the gathered global batch: same loss and gradient as on one device."""
  size = 40

  def step(state, x, y, axis_name=None):
    state = losses.xbm_update(state, x, y, axis_name=axis_name)
    refs = losses.xbm_references(state, x.shape[0], axis_name=axis_name)
    value, grad = jax.value_and_grad(
        lambda a: losses.multi_similarity_loss(a, y, references=refs, axis_name=axis_name))(x)
    return state, value, grad

  mesh = Mesh(np.array(jax.devices()[:N]), ("d",))
  sharded = jax.jit(jax.shard_map(functools.partial(step, axis_name="d"), mesh=mesh,
                                  in_specs=(P(), P("d"), P("d")),
                                  out_specs=(P(), P(), P("d"))))
  single = jax.jit(step)
  s1 = s8 = losses.xbm_init(size, D)
  for i in range(3):
    x, y = _problem(20 + i)
    s1, v1, g1 = single(s1, x, y)
    s8, v8, g8 = sharded(s8, x, y)
    chex.assert_trees_all_close((v8, g8), (v1, g1), rtol=1e-5, atol=1e-7)
    chex.assert_trees_all_close(s8, s1)
