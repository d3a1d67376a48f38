"""Proxy losses: float64 NumPy references, the MPA paper's gradient forms, edge cases, devices."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads

from dmlax import losses
from dmlax.losses import proxy as proxy_lib

# ---------------------------------------------------------------------------------------------
# Float64 NumPy references, written from the formulas (MPA paper eqs. 1, 3, 6, 12, 15-16).


def _unit(a):
  a = np.asarray(a, np.float64)
  return a / np.linalg.norm(a, axis=-1, keepdims=True)


def np_similarity(x, w, gamma):
  sims = np.einsum("bd,ckd->bck", _unit(x), _unit(w))
  e = np.exp((sims - sims.max(-1, keepdims=True)) / gamma)
  return np.sum(e / e.sum(-1, keepdims=True) * sims, -1)


def np_reg(w):
  w = _unit(w)
  c, k, _ = w.shape
  if k == 1:
    return 0.0
  total = sum(np.sqrt(2 + 1e-5 - 2 * w[j, s] @ w[j, t])
              for j in range(c) for t in range(k) for s in range(t + 1, k))
  return total / (c * k * (k - 1))


def np_anchor(s, y, alpha, delta):
  n, c = s.shape
  pos_terms, neg_terms = [], []
  for j in range(c):
    p = [np.exp(-alpha * (s[i, j] - delta)) for i in range(n) if y[i] == j]
    q = [np.exp(alpha * (s[i, j] + delta)) for i in range(n) if y[i] != j]
    if p:
      pos_terms.append(np.log1p(np.sum(p)))
    neg_terms.append(np.log1p(np.sum(q)) if q else 0.0)
  return np.sum(pos_terms) / len(pos_terms) + np.sum(neg_terms) / c


def np_dw(s, y, alpha, delta):
  out = []
  for i in range(s.shape[0]):
    neg = [np.exp(alpha * (s[i, j] + delta)) for j in range(s.shape[1]) if j != y[i]]
    out.append(np.log1p(np.exp(-alpha * (s[i, y[i]] - delta))) + np.log1p(np.sum(neg)))
  return np.array(out)


def np_ap(s, y, alpha, delta):
  sp = s + delta
  sp[np.arange(len(y)), y] = delta - s[np.arange(len(y)), y]
  return np.log1p(np.exp(alpha * sp).sum(1))


def np_soft_triple(s, y, la, delta):
  z = la * s
  z[np.arange(len(y)), y] -= la * delta
  m = z.max(1)
  return m + np.log(np.exp(z - m[:, None]).sum(1)) - z[np.arange(len(y)), y]


def _problem(seed, b=12, c=7, k=3, d=16, classes=None):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(b, d)).astype(np.float32)
  w = rng.normal(size=(c, k, d)).astype(np.float32)
  pool = np.arange(c) if classes is None else np.asarray(classes)
  y = rng.choice(pool, size=b).astype(np.int32)
  return x, y, w


# ---------------------------------------------------------------------------------------------


def test_similarity_matches_reference():
  x, _, w = _problem(0)
  sim = jax.jit(functools.partial(losses.multi_proxy_similarity, gamma=0.1))
  chex.assert_trees_all_close(sim(x, w),
                              np_similarity(x, w, 0.1), atol=1e-5)


@pytest.mark.parametrize("classes", [None, [0, 2, 5]])  # [0, 2, 5]: classes absent from the batch
def test_mpa_family_match_reference(classes):
  x, y, w = _problem(1, classes=classes)
  s = np_similarity(x, w, 0.1)
  reg = np_reg(w)

  @jax.jit
  def all_losses(x, y, w):
    return (losses.mpa_loss(x, y, w), losses.mpa_dw_loss(x, y, w),
            losses.mpa_ap_loss(x, y, w, reduction="none"), losses.soft_triple_loss(x, y, w),
            losses.mpa_dw_loss(x, y, w, reduction="sum", tau=0.5))

  ours = all_losses(x, y, w)
  refs = (np_anchor(s, y, 32, 0.1) + 0.2 * reg, np_dw(s, y, 32, 0.1).mean() + 0.2 * reg,
          np_ap(s, y, 32, 0.1) + 0.2 * reg, np_soft_triple(s, y, 20, 0.01).mean() + 0.2 * reg,
          np_dw(s, y, 32, 0.1).sum() + 0.5 * reg)
  chex.assert_trees_all_close(ours, refs, rtol=2e-5)


def test_proxy_anchor_and_nca_match_reference():
  x, y, w3 = _problem(2, classes=[1, 3, 4, 6])
  w = w3[:, 0]
  cos = _unit(x) @ _unit(w).T
  anchor = jax.jit(functools.partial(losses.proxy_anchor_loss, alpha=16.0, margin=0.2))
  chex.assert_trees_all_close(anchor(x, y, w), np_anchor(cos, y, 16.0, 0.2), rtol=2e-5)
  logits = -3.0 * np.sum((_unit(x)[:, None] - _unit(w)[None]) ** 2, -1)
  m = logits.max(1)
  ref = m + np.log(np.exp(logits - m[:, None]).sum(1)) - logits[np.arange(len(y)), y]
  nca = jax.jit(functools.partial(losses.proxy_nca_loss, softmax_scale=3.0, reduction="none"))
  chex.assert_trees_all_close(nca(x, y, w), ref, atol=2e-5)


def test_mpa_with_one_proxy_and_no_regulariser_is_proxy_anchor():
  x, y, w = _problem(3, k=1)
  both = jax.jit(lambda x, y, w: (losses.mpa_loss(x, y, w, tau=0.0, gamma=0.37),
                                  losses.proxy_anchor_loss(x, y, w[:, 0])))
  mpa, anchor = both(x, y, w)
  chex.assert_trees_all_close(mpa, anchor, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Gradient forms of the MPA paper, w.r.t. the similarity S.


def _grad_wrt_s(fn, s, y, **kw):
  grad = jax.jit(jax.grad(lambda t: jnp.sum(fn(t, jnp.asarray(y), **kw))))
  return np.asarray(grad(jnp.asarray(s, jnp.float32)), np.float64)


def test_mpa_gradient_eq8_eq9():
  rng = np.random.default_rng(4)
  n, c, alpha, delta = 10, 6, 8.0, 0.1
  s = rng.uniform(-0.5, 0.9, size=(n, c))
  y = rng.choice([0, 1, 3, 4], size=n)
  g = _grad_wrt_s(proxy_lib._anchor_similarity_loss, s, y, alpha=alpha, margin=delta,
                  axis_name=None)
  n_pos = len(np.unique(y))
  lp = np.exp(-alpha * (s - delta))
  ln = np.exp(alpha * (s + delta))
  for i in range(n):
    for j in range(c):
      pos_set = y == j
      if y[i] == j:
        eq8 = -alpha * lp[i, j] / (1 + lp[pos_set, j].sum()) / n_pos
        s_r = s[pos_set, j] - s[i, j]
        eq9 = -alpha / (np.exp(-alpha * (delta - s[i, j])) + np.exp(-alpha * s_r).sum()) / n_pos
      else:
        eq8 = alpha * ln[i, j] / (1 + ln[~pos_set, j].sum()) / c
        s_r = s[~pos_set, j] - s[i, j]
        eq9 = alpha / (np.exp(-alpha * (s[i, j] + delta)) + np.exp(alpha * s_r).sum()) / c
      np.testing.assert_allclose(g[i, j], eq8, rtol=1e-4, atol=1e-7)
      np.testing.assert_allclose(g[i, j], eq9, rtol=1e-4, atol=1e-7)


def test_mpa_dw_gradient_eq14():
  rng = np.random.default_rng(5)
  n, c, alpha, delta = 6, 5, 8.0, 0.1
  s = rng.uniform(-0.5, 0.9, size=(n, c))
  y = rng.integers(0, c, size=n)
  g = _grad_wrt_s(proxy_lib._dw_similarity_loss, s, y, alpha=alpha, margin=delta) / n
  for i in range(n):
    others = np.arange(c) != y[i]
    for j in range(c):
      if j == y[i]:
        ref = -alpha / (np.exp(-alpha * (delta - s[i, j])) + 1) / n
      else:
        s_dr = s[i, others] - s[i, j]
        ref = alpha / (np.exp(-alpha * (s[i, j] + delta)) + np.exp(alpha * s_dr).sum()) / n
      np.testing.assert_allclose(g[i, j], ref, rtol=1e-4, atol=1e-7)


def test_mpa_ap_gradient_eq18():
  rng = np.random.default_rng(6)
  n, c, alpha, delta = 6, 5, 8.0, 0.1
  s = rng.uniform(-0.5, 0.9, size=(n, c))
  y = rng.integers(0, c, size=n)
  g = _grad_wrt_s(proxy_lib._ap_similarity_loss, s, y, alpha=alpha, margin=delta) / n
  sp = s + delta
  sp[np.arange(n), y] = delta - s[np.arange(n), y]
  for i in range(n):
    for j in range(c):
      d_sprime = alpha / (np.exp(-alpha * sp[i, j]) + np.exp(alpha * (sp[i] - sp[i, j])).sum()) / n
      ref = -d_sprime if j == y[i] else d_sprime  # dS'/dS = -1 for the label, +1 otherwise
      np.testing.assert_allclose(g[i, j], ref, rtol=1e-4, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# Extreme inputs: finite values and gradients in float32 and bfloat16.

_MULTI = [losses.mpa_loss, losses.mpa_dw_loss, losses.mpa_ap_loss, losses.soft_triple_loss]


def _extreme_cases():
  """Same shapes (B = C = 6) so that one compiled function serves all but the K = 1 case."""
  rng = np.random.default_rng(7)
  c, k, d = 6, 2, 8
  w = rng.normal(size=(c, k, d)).astype(np.float32)
  on_proxy = np.concatenate([w[:3, 0], -w[3:, 1]])  # cosines exactly +1 / -1 to some proxies
  return {
      "absent_classes": (rng.normal(size=(6, d)), np.array([0, 0, 2, 2, 2, 0]), w),
      "one_class": (rng.normal(size=(6, d)), np.full(6, 3), w),
      "one_per_class": (rng.normal(size=(6, d)), np.arange(6), w),
      "cos_pm1": (on_proxy, np.array([0, 1, 2, 4, 5, 0]), w),
      "k1": (rng.normal(size=(6, d)), rng.integers(0, c, 6), w[:, :1]),
  }


def _all_values_and_grads(x, y, w):
  fns = [functools.partial(f, alpha=32.0) for f in _MULTI[:3]] + [losses.soft_triple_loss]
  fns += [lambda a, b, p: losses.proxy_anchor_loss(a, b, p[:, 0], alpha=32.0),
          lambda a, b, p: losses.proxy_nca_loss(a, b, p[:, 0], softmax_scale=32.0)]
  return [jax.value_and_grad(fn, argnums=(0, 2))(x, y, w) for fn in fns]


_all_values_and_grads_jit = jax.jit(_all_values_and_grads)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_extreme_inputs_are_finite(dtype):
  for case, (x, y, w) in _extreme_cases().items():
    x, w, y = jnp.asarray(x, dtype), jnp.asarray(w, dtype), jnp.asarray(y, jnp.int32)
    for i, (value, grads) in enumerate(_all_values_and_grads_jit(x, y, w)):
      assert np.isfinite(float(value)), (case, i)
      for g in grads:
        assert g.dtype == dtype
        assert np.all(np.isfinite(np.asarray(g, np.float32))), (case, i)


# ---------------------------------------------------------------------------------------------
# Transformations and devices.


def test_jit_vmap_and_check_grads():
  x, y, w = _problem(8, b=6, c=4, k=2, d=5)
  s = np_similarity(x, w, 0.1)
  chex.assert_trees_all_close(jax.jit(losses.mpa_loss)(x, y, w),
                              np_anchor(s, y, 32, 0.1) + 0.2 * np_reg(w), rtol=2e-5)
  xs = np.stack([x, x[::-1]])
  ys = np.stack([y, y[::-1]])
  batched = jax.jit(jax.vmap(losses.mpa_ap_loss, in_axes=(0, 0, None)))(xs, ys, w)
  refs = [np_ap(s, y, 32, 0.1).mean(), np_ap(s[::-1], y[::-1], 32, 0.1).mean()]
  chex.assert_trees_all_close(batched, np.array(refs) + 0.2 * np_reg(w), rtol=2e-5)
  # Moderate scales so float32 finite differences resolve the gradient. One weighted sum of all
  # five losses keeps this to a single compilation; an error in any term would show in the sum.
  def combined(a, p):
    terms = [losses.mpa_loss(a, y, p, alpha=4.0), losses.mpa_dw_loss(a, y, p, alpha=4.0),
             losses.mpa_ap_loss(a, y, p, alpha=4.0), losses.soft_triple_loss(a, y, p, la=4.0),
             losses.proxy_anchor_loss(a, y, p[:, 0], alpha=4.0)]
    return sum(c * t for c, t in zip((1.0, 0.7, 1.3, 0.9, 1.1), terms))

  check_grads(jax.jit(combined), (x, w), order=1, modes=["rev"], atol=2e-2, rtol=2e-2, eps=1e-3)


_DEVICE_FNS = {
    "proxy_anchor": lambda x, y, w, axis_name=None: losses.proxy_anchor_loss(
        x, y, w[:, 0], axis_name=axis_name),
    "mpa": lambda x, y, w, axis_name=None: losses.mpa_loss(x, y, w, axis_name=axis_name),
    "mpa_dw": lambda x, y, w, axis_name=None: losses.mpa_dw_loss(x, y, w, axis_name=axis_name),
    "mpa_ap": lambda x, y, w, axis_name=None: losses.mpa_ap_loss(x, y, w, axis_name=axis_name),
}


def test_eight_devices_equal_one():
  """pmap and shard_map over 8 devices give the single-device global-batch value and gradient.

  The gradients are those of the mapped function as a whole (taken outside the map), i.e. of
  the global loss w.r.t. the global batch and the replicated proxies.
  """
  n_dev = 8
  assert jax.device_count() >= n_dev
  x, y, w = _problem(9, b=16, c=10, k=3, d=8, classes=[0, 1, 2, 4, 7])
  mesh = Mesh(np.array(jax.devices()[:n_dev]), ("batch",))

  def pmapped(fn):
    def run(x, w):
      mapped = jax.pmap(lambda a, b, p: fn(a, b, p, axis_name="batch"), axis_name="batch",
                        in_axes=(0, 0, None))
      return mapped(x.reshape(n_dev, -1, x.shape[1]), y.reshape(n_dev, -1), w)[0]
    return run

  def sharded(fn):
    def run(x, w):
      return jax.shard_map(lambda a, b, p: fn(a, b, p, axis_name="batch"), mesh=mesh,
                           in_specs=(P("batch"), P("batch"), P()), out_specs=P())(x, y, w)
    return run

  def single(fn):
    return lambda x, w: fn(x, y, w)

  def evaluate(driver):
    return jax.jit(lambda x, w: {name: jax.value_and_grad(driver(fn), argnums=(0, 1))(x, w)
                                 for name, fn in _DEVICE_FNS.items()})(x, w)

  expected = evaluate(single)
  for driver in (pmapped, sharded):
    chex.assert_trees_all_close(evaluate(driver), expected, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Bad input.


def test_bad_input_raises():
  x, y, w = _problem(10)
  with pytest.raises(ValueError, match="proxies"):
    losses.mpa_loss(x, y, w[:, 0])  # rank 2 where (C, K, D) is needed
  with pytest.raises(ValueError, match="proxies"):
    losses.proxy_anchor_loss(x, y, w)  # rank 3 where (C, D) is needed
  with pytest.raises(ValueError, match="proxies"):
    losses.soft_triple_loss(x, y, w[..., :5])  # wrong D
  with pytest.raises(ValueError, match="K >= 1"):
    losses.mpa_ap_loss(x, y, w[:, :0])
  with pytest.raises(ValueError, match="labels"):
    losses.mpa_dw_loss(x, y[:5], w)
  with pytest.raises(ValueError, match="labels must lie"):
    losses.mpa_loss(x, y + 7, w)
  with pytest.raises(ValueError, match="reduction"):
    losses.mpa_ap_loss(x, y, w, reduction="max")
  with pytest.raises(ValueError, match="gamma"):
    losses.multi_proxy_similarity(x, w, gamma=0.0)
  # Traced out-of-range labels cannot raise: the loss turns NaN instead of gathering wrongly.
  assert np.isnan(jax.jit(losses.mpa_loss)(x, y + 7, w))


def test_initializers_match_reference_distributions():
  key = jax.random.PRNGKey(0)
  a = np.asarray(jax.jit(losses.proxy_anchor_init, static_argnums=1)(key, (50, 400)))
  np.testing.assert_allclose(a.std(), np.sqrt(2 / 50), rtol=0.02)
  np.testing.assert_allclose(a.mean(), 0.0, atol=0.01)
  b = np.asarray(jax.jit(losses.soft_triple_init, static_argnums=1)(key, (25, 4, 400)))
  bound = 1 / np.sqrt(100)
  assert b.min() >= -bound and b.max() <= bound
  np.testing.assert_allclose(b.std(), bound / np.sqrt(3), rtol=0.02)
  assert losses.proxy_anchor_init(key, (3, 2, 4), jnp.bfloat16).dtype == jnp.bfloat16


def test_in_map_parameter_gradients_after_pmean_equal_one_device():
  """The data-parallel step's convention: grad inside the map, then pmean over the axis.

  For the replicated proxies this gives the single-device gradient under both drivers. (For the
  per-device embeddings pmap's in-map gradient is the global one times the device count, and
  shard_map's is exact; after backprop into replicated backbone weights and the pmean both again
  give the single-device gradient.)
  """
  n_dev = 8
  x, y, w = _problem(11, b=16, c=10, k=3, d=8, classes=[0, 1, 2, 4, 7])
  expected = jax.jit(jax.grad(losses.mpa_loss, argnums=2))(x, y, w)

  def per_device(a, b, p):
    g = jax.grad(lambda p: losses.mpa_loss(a, b, p, axis_name="batch"))(p)
    return jax.lax.pmean(g, "batch")

  by_pmap = jax.pmap(per_device, axis_name="batch", in_axes=(0, 0, None))(
      x.reshape(n_dev, -1, x.shape[1]), y.reshape(n_dev, -1), w)[0]
  mesh = Mesh(np.array(jax.devices()[:n_dev]), ("batch",))
  by_shard_map = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(P("batch"), P("batch"), P()),
                                       out_specs=P()))(x, y, w)
  chex.assert_trees_all_close(by_pmap, expected, rtol=1e-4, atol=1e-6)
  chex.assert_trees_all_close(by_shard_map, expected, rtol=1e-4, atol=1e-6)
