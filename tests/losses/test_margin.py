"""Margin softmaxes against float64 NumPy references written from the papers' formulas."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from dmlax import losses


def _ce(logits, y):
  m = logits.max(1, keepdims=True)
  return (m[:, 0] + np.log(np.exp(logits - m).sum(1))) - logits[np.arange(len(y)), y]


def _geometry(x, w):
  x = np.asarray(x, np.float64)
  w = np.asarray(w, np.float64)
  xn = np.linalg.norm(x, axis=1)
  wn = np.linalg.norm(w, axis=0)
  cos = (x @ w) / (xn[:, None] * wn[None])
  return x, w, xn, wn, np.clip(cos, -1, 1)


def _replace_target(logits, y, target):
  logits = logits.copy()
  logits[np.arange(len(y)), y] = target
  return _ce(logits, y)


def np_lsoftmax(x, y, w, m, lam, normalize_w):
  x, w, xn, wn, cos = _geometry(x, w)
  if normalize_w:
    wn = np.ones_like(wn)
  theta = np.arccos(cos[np.arange(len(y)), y])
  k = np.floor(theta * m / np.pi)
  psi = (-1.0) ** k * np.cos(m * theta) - 2 * k
  mag = xn[:, None] * wn[None]
  target = mag[np.arange(len(y)), y] * (lam * np.cos(theta) + psi) / (1 + lam)
  return _replace_target(cos * mag, y, target)


def np_cosface(x, y, w, m, s):
  *_, cos = _geometry(x, w)
  return _replace_target(s * cos, y, s * (cos[np.arange(len(y)), y] - m))


def np_arcface(x, y, w, m, s):
  *_, cos = _geometry(x, w)
  theta = np.arccos(cos[np.arange(len(y)), y])
  # Past pi - m the monotone extension cos(theta) - m sin(m) (insightface's th/mm form).
  psi = np.where(theta <= np.pi - m, np.cos(theta + m), np.cos(theta) - m * np.sin(m))
  return _replace_target(s * cos, y, s * psi)


def np_sigsoftmax(x, y, w, b):
  z = np.asarray(x, np.float64) @ np.asarray(w, np.float64) + b
  return _ce(z + np.log(1 / (1 + np.exp(-z))), y)


def np_noisy(x, y, w, alpha, xi):
  x, w, xn, wn, cos = _geometry(x, w)
  theta = np.arccos(cos[np.arange(len(y)), y])
  target = xn * wn[y] * np.cos(np.minimum(theta + alpha * np.abs(xi), np.pi))
  return _replace_target(x @ w, y, target)


def np_virtual(x, y, w, b):
  x, w, xn, wn, _ = _geometry(x, w)
  logits = x @ w + b
  virtual = (xn * wn[y])[:, None]
  full = np.concatenate([logits, virtual], axis=1)
  return _ce(full, y)


_KEY = jax.random.PRNGKey(3)


@jax.jit
def _all(x, y, w, b):
  none = functools.partial(dict, reduction="none")
  return [
      losses.large_margin_softmax_loss(x, y, w, **none()),
      losses.large_margin_softmax_loss(x, y, w, margin=3, lam=2.5, **none()),
      losses.sphereface_loss(x, y, w, **none()),
      losses.sphereface_loss(x, y, w, margin=2, lam=5.0, **none()),
      losses.cosface_loss(x, y, w, **none()),
      losses.arcface_loss(x, y, w, **none()),
      losses.arcface_loss(x, y, w, margin=1.2, scale=10.0, **none()),  # theta + m past pi
      losses.sigsoftmax_loss(x, y, w, bias=b, **none()),
      losses.noisy_softmax_loss(x, y, w, key=_KEY, noise_scale=0.3, **none()),
      losses.virtual_softmax_loss(x, y, w, bias=b, **none()),
  ]


def test_margin_losses_match_reference():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(10, 6)).astype(np.float32)
  w = rng.normal(size=(6, 5)).astype(np.float32)
  b = rng.normal(size=5).astype(np.float32)
  y = rng.integers(0, 5, size=10).astype(np.int32)
  xi = np.asarray(jax.random.normal(_KEY, (10,), jnp.float32), np.float64)
  expected = [
      np_lsoftmax(x, y, w, 4, 0.0, False), np_lsoftmax(x, y, w, 3, 2.5, False),
      np_lsoftmax(x, y, w, 4, 0.0, True), np_lsoftmax(x, y, w, 2, 5.0, True),
      np_cosface(x, y, w, 0.35, 64), np_arcface(x, y, w, 0.5, 64), np_arcface(x, y, w, 1.2, 10),
      np_sigsoftmax(x, y, w, b), np_noisy(x, y, w, 0.3, xi), np_virtual(x, y, w, b),
  ]
  chex.assert_trees_all_close(_all(x, y, w, b), expected, rtol=1e-4, atol=1e-4)


def test_noisy_softmax_without_noise_is_softmax_ce():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(4, 3)).astype(np.float32)
  w = rng.normal(size=(3, 6)).astype(np.float32)
  y = np.array([0, 5, 2, 2])
  value = jax.jit(functools.partial(losses.noisy_softmax_loss, key=_KEY, noise_scale=0.0))(x, y, w)
  chex.assert_trees_all_close(value, _ce(x.astype(np.float64) @ w, y).mean(), rtol=1e-5)


_FNS = [losses.large_margin_softmax_loss, losses.sphereface_loss, losses.cosface_loss,
        losses.arcface_loss, losses.sigsoftmax_loss, losses.virtual_softmax_loss,
        functools.partial(losses.noisy_softmax_loss, key=_KEY, noise_scale=0.3)]


@functools.partial(jax.jit, static_argnums=3)
def _grads(x, y, w, lam):
  out = [jax.value_and_grad(f, argnums=(0, 2))(x, y, w) for f in _FNS]
  out.append(jax.value_and_grad(functools.partial(losses.sphereface_loss, lam=lam),
                                argnums=(0, 2))(x, y, w))
  return out


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_cosine_pm1_gives_finite_gradients(dtype):
  rng = np.random.default_rng(2)
  w = rng.normal(size=(4, 3))
  x = np.stack([w[:, 0], 2 * w[:, 1], -w[:, 2], -w[:, 0]])  # cos = +1, +1, -1, -1 to its label
  y = np.array([0, 1, 2, 0])
  for value, grads in _grads(jnp.asarray(x, dtype), jnp.asarray(y), jnp.asarray(w, dtype), 5.0):
    assert np.isfinite(float(value))
    for g in grads:
      assert g.dtype == dtype and np.all(np.isfinite(np.asarray(g, np.float32)))


def test_check_grads_and_annealing():
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
  y = jnp.asarray([0, 1, 2, 1, 0])

  def combined(a, p):  # one compilation for all; an error in any term shows in the sum
    return (losses.large_margin_softmax_loss(a, y, p, lam=1.0)
            + 0.7 * losses.arcface_loss(a, y, p, scale=4.0)
            + 1.3 * losses.cosface_loss(a, y, p, scale=4.0)
            + 0.5 * losses.sphereface_loss(a, y, p, margin=2)
            + losses.sigsoftmax_loss(a, y, p) + losses.virtual_softmax_loss(a, y, p))

  check_grads(jax.jit(combined), (x, w), order=1, modes=["rev"], atol=2e-2, rtol=2e-2, eps=1e-3)
  steps = np.array([0, 10, 1000, 10**6])
  lam = jax.jit(losses.annealed_lambda)(steps)
  chex.assert_trees_all_close(lam, np.maximum(5.0, 1000.0 / (1 + 0.12 * steps)), rtol=1e-6)


def test_bad_input_raises():
  x, w, y = jnp.ones((2, 4)), jnp.ones((4, 3)), jnp.array([0, 1])
  with pytest.raises(ValueError, match="margin"):
    losses.large_margin_softmax_loss(x, y, w, margin=2.5)
  with pytest.raises(ValueError, match="weights"):
    losses.arcface_loss(x, y, jnp.ones((5, 3)))
  with pytest.raises(ValueError, match="bias"):
    losses.sigsoftmax_loss(x, y, w, bias=jnp.ones(4))
  with pytest.raises(ValueError, match="labels must lie"):
    losses.cosface_loss(x, jnp.array([0, 3]), w)


# Target weight e1 and two negatives +-e3 orthogonal to the plane in which the feature rotates:
# only the target logit depends on the angle, so the loss must be non-decreasing in it.
_ANGLES = np.linspace(0.0, np.pi, 721)
_MONOTONE = {
    "arcface": functools.partial(losses.arcface_loss),  # m = 0.5, s = 64 (paper, pml)
    "cosface": functools.partial(losses.cosface_loss),  # m = 0.35, s = 64
    "sphereface": functools.partial(losses.sphereface_loss),  # m = 4, lam = 0 (pml)
    "lsoftmax": functools.partial(losses.large_margin_softmax_loss),  # m = 4, lam = 0 (pml)
    "sphereface_lam5": functools.partial(losses.sphereface_loss, lam=5.0),  # annealing floor
}


def _rotating(t, radius=2.0):
  x = radius * jnp.stack([jnp.cos(t), jnp.sin(t), jnp.zeros_like(t)], axis=-1)
  w = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, -1.0]], x.dtype).T  # (D, C)
  return x, jnp.zeros(t.shape, jnp.int32), w


@pytest.mark.parametrize("name", list(_MONOTONE))
def test_loss_non_decreasing_in_target_angle(name):
  fn = _MONOTONE[name]
  with jax.enable_x64(True):
    x, y, w = _rotating(jnp.asarray(_ANGLES, jnp.float64))
    values = np.asarray(jax.jit(lambda a: fn(a, y, w, reduction="none"))(x))
    slopes = np.asarray(jax.jit(jax.vmap(jax.grad(
        lambda t: fn(_rotating(t[None])[0], y[:1], w))))(jnp.asarray(_ANGLES[1:-1])))
  assert values.dtype == np.float64
  assert np.all(np.diff(values) >= -1e-9 * np.abs(values[1:]).max()), name
  assert np.all(slopes >= -1e-9), (name, _ANGLES[1:-1][slopes < -1e-9])


def test_arcface_past_pi_minus_margin():
  """theta + m > pi: the target logit is s (cos theta - m sin m), pml >= 2.0 / insightface."""
  m, s = 0.5, 64.0
  t = np.radians([155.0, 170.0, 179.0])  # all past pi - m = 151.4 degrees
  x, y, w = _rotating(jnp.asarray(t, jnp.float32), radius=1.0)
  got = losses.arcface_loss(x, y, w, reduction="none")
  target = s * (np.cos(t) - m * np.sin(m))
  want = np.log(np.exp(target) + 2.0) - target  # two negatives with cos 0
  chex.assert_trees_all_close(got, want, rtol=1e-5)
  # cos(theta + m) alone would make the loss fall here (it rises back towards cos(pi) = -1).
  paper = s * np.cos(t + m)
  assert np.all(np.diff(np.log(np.exp(paper) + 2.0) - paper) < 0)
  assert np.all(np.diff(np.asarray(got)) > 0)
  slope = jax.grad(lambda a: losses.arcface_loss(_rotating(a[None], 1.0)[0], y[:1], w))(t[1])
  assert slope > 0
