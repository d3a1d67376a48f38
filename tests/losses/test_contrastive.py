"""NT-Xent, SupCon, Circle, Margin, Lifted Structure and sub-center ArcFace against float64 NumPy
loops written from the papers' definitions; distances against float64 references; the uniform
loss contract (traced hyperparameters, dtypes, reductions, bad input)."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmlax import distances
from dmlax import losses
from dmlax import miners


def _normalize(x):
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def np_matrix(x, distance):
  x = np.asarray(x, np.float64)
  if distance == "dot":
    return x @ x.T
  x = _normalize(x)
  diff = ((x[:, None] - x[None]) ** 2).sum(-1)
  return {"cosine": x @ x.T, "euclidean": np.sqrt(diff), "squared_euclidean": diff}[distance]


def _sets(y, a):
  n = len(y)
  return ([p for p in range(n) if p != a and y[p] == y[a]], [q for q in range(n) if y[q] != y[a]])


def np_ntxent(x, y, t, distance="cosine"):
  s = np_matrix(x, distance) * (1 if distance in ("cosine", "dot") else -1)
  terms = []
  for a in range(len(y)):
    pos, neg = _sets(y, a)
    for p in pos:
      terms.append(-np.log(np.exp(s[a, p] / t) / (np.exp(s[a, p] / t)
                                                   + np.exp(s[a, neg] / t).sum())))
  return np.mean(terms) if terms else 0.0


def np_supcon(x, y, t):
  s = np_matrix(x, "cosine")
  out = []
  for a in range(len(y)):
    pos, neg = _sets(y, a)
    if not pos:
      out.append(0.0)
      continue
    den = np.exp(s[a, pos + neg] / t).sum()
    out.append(-np.mean([np.log(np.exp(s[a, p] / t) / den) for p in pos]))
  out = np.array(out)
  return out[out > 0].mean() if np.any(out > 0) else 0.0


def np_circle(x, y, m, gamma):
  s = np_matrix(x, "cosine")
  out = []
  for a in range(len(y)):
    pos, neg = _sets(y, a)
    if not pos or not neg:
      out.append(0.0)
      continue
    total = sum(np.exp(gamma * (max(s[a, n] + m, 0) * (s[a, n] - m)
                                - max(1 + m - s[a, p], 0) * (s[a, p] - 1 + m)))
                for p in pos for n in neg)
    out.append(np.log1p(total))
  out = np.array(out)
  return out[out > 0].mean()


def np_margin(x, y, beta, margin, nu):
  d = np_matrix(x, "euclidean")
  terms, nonzero, reg = 0.0, 0, 0.0
  for a in range(len(y)):
    pos, neg = _sets(y, a)
    b = beta[y[a]] if np.ndim(beta) else beta
    for p in pos:
      for n in neg:
        tp, tn = max(d[a, p] - b + margin, 0), max(b - d[a, n] + margin, 0)
        terms += tp + tn
        nonzero += int(tp > 0) + int(tn > 0)
        reg += nu * b
  if np.ndim(beta):
    return terms / nonzero + reg / nonzero
  return terms / nonzero + nu * beta


def np_lifted(x, y, neg_margin, pos_margin):
  d = np_matrix(x, "euclidean")
  terms = []
  for a in range(len(y)):
    pos, neg_a = _sets(y, a)
    for p in pos:
      _, neg_p = _sets(y, p)
      j = np.log(np.exp(neg_margin - d[a, neg_a]).sum() + np.exp(neg_margin - d[p, neg_p]).sum())
      terms.append(0.5 * max(j + d[a, p] - pos_margin, 0) ** 2)
  return np.mean(terms)


def np_subcenter(x, y, w, margin, scale):
  x = _normalize(np.asarray(x, np.float64))
  w = np.asarray(w, np.float64)
  w = w / np.linalg.norm(w, axis=0, keepdims=True)
  cos = np.einsum("bd,dck->bck", x, w).max(-1)
  out = []
  for i, c in enumerate(y):
    theta = np.arccos(np.clip(cos[i, c], -1, 1))
    target = np.cos(theta + margin) if theta <= np.pi - margin else (
        np.cos(theta) - margin * np.sin(margin))
    logits = scale * cos[i].copy()
    logits[c] = scale * target
    out.append(np.log(np.exp(logits - logits.max()).sum()) + logits.max() - logits[c])
  return np.mean(out)


def _problem(seed, b=14, d=5, c=4):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(b, d)).astype(np.float32)
  y = rng.integers(0, c, size=b).astype(np.int32)
  y[0] = 9  # an anchor without positives
  return x, y


def test_distances_match_float64():
  x, _ = _problem(0)
  r = np.random.default_rng(1).normal(size=(7, 5)).astype(np.float32)
  both = np.concatenate([x, r])
  got = jax.jit(lambda a, b: {k: distances.pairwise(a, b, k) for k in distances.DISTANCES})(x, r)
  for k in distances.DISTANCES:
    chex.assert_trees_all_close(got[k], np_matrix(both, k)[:14, 14:], rtol=1e-5, atol=2e-6)
  with pytest.raises(ValueError, match="distance"):
    distances.pairwise(x, r, "manhattan")


def test_losses_match_float64_references():
  x, y = _problem(2)
  w = np.random.default_rng(3).normal(size=(5, 10, 3)).astype(np.float32)
  beta = np.linspace(0.8, 1.2, 10)
  yc = np.where(y == 9, 3, y).astype(np.int32)  # per-class beta / sub-centers need classes < C

  @jax.jit
  def ours(x, y, yc, w, beta):
    return [losses.ntxent_loss(x, y, temperature=0.3),
            losses.ntxent_loss(x, y, temperature=0.3, distance="euclidean"),
            losses.supcon_loss(x, y, temperature=0.2),
            losses.circle_loss(x, y, m=0.25, gamma=16.0),
            losses.margin_loss(x, y, 1.1, margin=0.2, nu=0.05),
            losses.margin_loss(x, yc, beta, margin=0.2, nu=0.05),
            losses.lifted_structure_loss(x, y, neg_margin=0.9, pos_margin=0.1),
            losses.subcenter_arcface_loss(x, yc, w, margin=0.5, scale=16.0)]

  expected = [np_ntxent(x, y, 0.3), np_ntxent(x, y, 0.3, "euclidean"), np_supcon(x, y, 0.2),
              np_circle(x, y, 0.25, 16.0), np_margin(x, y, 1.1, 0.2, 0.05),
              np_margin(x, yc, beta, 0.2, 0.05), np_lifted(x, y, 0.9, 0.1),
              np_subcenter(x, yc, w, 0.5, 16.0)]
  chex.assert_trees_all_close(ours(x, y, yc, w, jnp.asarray(beta, jnp.float32)), expected,
                              rtol=2e-5, atol=1e-6)


def test_float64_in_float64_out_and_gradients():
  x, y = _problem(4, b=8, d=3)
  fns = [functools.partial(losses.ntxent_loss, temperature=0.5),
         functools.partial(losses.supcon_loss, temperature=0.5),
         functools.partial(losses.circle_loss, m=0.4, gamma=4.0),
         losses.lifted_structure_loss,
         functools.partial(losses.margin_loss, beta=1.0, margin=0.5)]
  expected = [np_ntxent(x, y, 0.5), np_supcon(x, y, 0.5), np_circle(x, y, 0.4, 4.0),
              np_lifted(x, y, 1.0, 0.0), np_margin(x, y, 1.0, 0.5, 0.0)]
  with jax.enable_x64(True):
    x64 = jnp.asarray(x, jnp.float64)
    values = jax.jit(lambda a: [f(a, y) for f in fns])(x64)
    assert all(v.dtype == jnp.float64 for v in values)
    chex.assert_trees_all_close(values, expected, rtol=1e-10)
    for f in (fns[0], fns[3]):
      jax.test_util.check_grads(jax.jit(lambda a, f=f: f(a, y)), (x64,), order=1, modes=["rev"])


def test_traced_hyperparameters_vmap_and_jit():
  x, y = _problem(5, b=10)
  temps = jnp.array([0.1, 0.5, 1.0])
  swept = jax.jit(jax.vmap(lambda t: losses.ntxent_loss(x, y, temperature=t)))(temps)
  chex.assert_trees_all_close(swept, np.array([np_ntxent(x, y, float(t)) for t in temps]),
                              rtol=2e-5)
  calls = {
      "supcon": lambda h: losses.supcon_loss(x, y, temperature=h),
      "circle": lambda h: losses.circle_loss(x, y, m=h, gamma=10.0 * h),
      "margin": lambda h: losses.margin_loss(x, y, h, margin=h / 4, nu=h),
      "lifted": lambda h: losses.lifted_structure_loss(x, y, neg_margin=h, pos_margin=h / 9),
      "triplet": lambda h: losses.triplet_margin_loss(x, y, margin=h),
      "contrastive": lambda h: losses.contrastive_loss(x, y, pos_margin=h / 9, neg_margin=h),
      "ms": lambda h: losses.multi_similarity_loss(x, y, alpha=h, beta=40 * h, base=h / 2),
      "ms_miner": lambda h: jnp.sum(miners.multi_similarity_miner(x, y, epsilon=h)[0]),
      "triplet_miner": lambda h: jnp.sum(miners.triplet_margin_miner(x, y, margin=h)),
  }
  for name, f in calls.items():
    h = jnp.array([0.4, 0.8])
    chex.assert_trees_all_close(jax.jit(jax.vmap(f))(h), jnp.stack([f(0.4), f(0.8)]),
                                rtol=1e-5, custom_message=name)


def test_bfloat16_reductions_and_bad_input():
  x, y = _problem(6, b=10)
  xb = jnp.asarray(x, jnp.bfloat16)
  for fn in (losses.ntxent_loss, losses.supcon_loss, losses.circle_loss, losses.margin_loss,
             losses.lifted_structure_loss, losses.contrastive_loss):
    value, grad = jax.value_and_grad(fn)(xb, y)
    assert value.dtype == jnp.float32 and grad.dtype == jnp.bfloat16
    assert np.isfinite(float(value))
    per_anchor = fn(x, y, reduction="none")
    chex.assert_shape(per_anchor, (10,))
    chex.assert_trees_all_close(jnp.sum(per_anchor), fn(x, y, reduction="sum"), rtol=1e-5)
  # ntxent "mean" is over positive pairs: sum / #pairs.
  pos = (y[:, None] == y[None]) & ~np.eye(10, dtype=bool)
  chex.assert_trees_all_close(losses.ntxent_loss(x, y),
                              losses.ntxent_loss(x, y, reduction="sum") / pos.sum(), rtol=1e-5)
  with pytest.raises(ValueError, match="empty"):
    losses.ntxent_loss(x[:0], y[:0])
  with pytest.raises(ValueError, match="distance"):
    losses.circle_loss(x, y, distance="euclidean")
  with pytest.raises(ValueError, match="distance"):
    losses.supcon_loss(x, y, distance="l1")
  with pytest.raises(ValueError, match="pairs"):
    losses.ntxent_loss(x, y, pairs=(pos[:3], pos))
  with pytest.raises(ValueError, match="triplets"):
    losses.margin_loss(x, y, triplets=np.ones((10, 10), bool))
  with pytest.raises(ValueError, match="mining"):
    losses.triplet_margin_loss(x, y, mining="hard", triplets=np.ones((10, 10, 10), bool))
  with pytest.raises(ValueError, match="references"):
    losses.supcon_loss(x, y, references=(x, y))
  with pytest.raises(ValueError, match="labels"):
    losses.margin_loss(x, y, jnp.ones(4))  # per-class beta, label 9 out of range
  with pytest.raises(ValueError, match="weights"):
    losses.subcenter_arcface_loss(x, y, np.ones((5, 4), np.float32))


def test_traced_out_of_range_label_gives_nan_value_and_gradient():
  x, y = _problem(7, b=6)
  y = np.array([0, 1, 2, 0, 1, 7], np.int32)  # 7 is outside C = 3
  w = np.random.default_rng(8).normal(size=(5, 3, 2)).astype(np.float32)
  for fn in (lambda a, b: losses.subcenter_arcface_loss(a, b, w),
             lambda a, b: losses.margin_loss(a, b, jnp.ones(3))):
    value, grad = jax.jit(jax.value_and_grad(fn))(x, y)
    assert np.isnan(float(value)) and np.any(np.isnan(np.asarray(grad)))


def test_subcenter_arcface_is_monotone_in_the_target_angle():
  """The loss never falls as the feature turns away from its class, over the whole [0, pi]."""
  theta = np.linspace(0.0, np.pi, 181)
  x = np.stack([np.cos(theta), np.sin(theta)], axis=1).astype(np.float32)
  w = np.zeros((2, 2, 1), np.float32)
  w[:, 0, 0] = [1.0, 0.0]
  w[:, 1, 0] = [0.0, -1.0]
  per = losses.subcenter_arcface_loss(x, np.zeros(181, np.int32), w, reduction="none")
  assert np.all(np.diff(np.asarray(per)) >= -1e-4)
