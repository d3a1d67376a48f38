"""Objectives from config: owned parameters, weighted sums, phases and gates, against NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import common
from dmlax.train import objectives


def _objective(num_classes=3, steps_per_epoch=1, **loss):
  c = common.get_config()
  kwargs = loss.pop("kwargs", {})
  c.loss.update(loss)
  c.loss.kwargs.update(kwargs)
  return objectives.build_objective(c, num_classes=num_classes, steps_per_epoch=steps_per_epoch)


def _data(batch=6, dim=4, num_classes=3, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=(batch, dim)).astype(np.float32),
          rng.integers(0, num_classes, batch).astype(np.int32))


def _ce(z, y):
  z = z.astype(np.float64)
  m = z.max(1, keepdims=True)
  lse = np.log(np.exp(z - m).sum(1)) + m[:, 0]
  return np.mean(lse - z[np.arange(len(y)), y])


@pytest.mark.parametrize("name,kw,key,shape", [
    ("softmax", {}, "classifier", (4, 3)),
    ("mpa", {"num_proxies": 5}, "proxies", (3, 5, 4)),
    ("soft_triple", {"num_proxies": 2}, "proxies", (3, 2, 4)),
    ("proxy_anchor", {}, "single_proxies", (3, 4)),
    ("triplet", {}, None, None),
])
def test_owned_parameters(name, kw, key, shape):
  x, _ = _data()
  params = _objective(name=name, **kw).init(jax.random.PRNGKey(0), jnp.asarray(x))
  if key is None:
    assert params == {}
  else:
    assert set(params) == {key} and params[key].shape == shape


def test_softmax_plus_center_loss_is_the_weighted_sum():
  x, y = _data()
  obj = _objective(name="softmax", aux_name="center", aux_weight=0.3)
  params = obj.init(jax.random.PRNGKey(0), jnp.asarray(x))
  assert set(params) == {"classifier", "aux_centers"}
  centers = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
  params["aux_centers"] = jnp.asarray(centers)
  loss, aux = obj.apply(jnp.asarray(x), jnp.asarray(y), params, step=0,
                        rng=jax.random.PRNGKey(0))
  w = np.asarray(params["classifier"], np.float64)
  center = np.mean(0.5 * np.sum((x - centers[y]) ** 2, axis=1))
  np.testing.assert_allclose(float(aux["center/loss"]), center, rtol=1e-5)
  np.testing.assert_allclose(float(loss), _ce(x @ w, y) + 0.3 * center, rtol=1e-5)


def _w_softmax_reference(x, y, w, alpha):
  w = w / np.linalg.norm(w, axis=0, keepdims=True)
  x = x.astype(np.float64)
  logits = np.zeros((len(y), w.shape[1]))
  for i in range(len(y)):
    for j in range(w.shape[1]):
      v = w[:, j] if j == y[i] else (alpha * w[:, y[i]] + w[:, j])
      logits[i, j] = v @ x[i] / np.linalg.norm(v)
  return _ce(logits, y)


def test_w_softmax_two_phases():
  x, y = _data()
  obj = _objective(name="weights_biased_softmax", kwargs={"alpha": 2.0}, softmax_epochs=2.0,
                   steps_per_epoch=3)
  params = obj.init(jax.random.PRNGKey(0), jnp.asarray(x))
  w = np.asarray(params["classifier"], np.float64)
  apply = jax.jit(lambda step: obj.apply(jnp.asarray(x), jnp.asarray(y), params, step=step,
                                         rng=jax.random.PRNGKey(0)))
  loss, aux = apply(5)   # 2 epochs x 3 steps of softmax first
  np.testing.assert_allclose(float(loss), _ce(x @ w, y), rtol=1e-5)
  assert float(aux["weights_biased_softmax/softmax_phase"]) == 1.0
  loss, aux = apply(6)
  np.testing.assert_allclose(float(loss), _w_softmax_reference(x, y, w, 2.0), rtol=1e-5)
  assert float(aux["weights_biased_softmax/softmax_phase"]) == 0.0


def test_sgsl_joins_only_below_three():
  x, y = _data(batch=8, dim=4, num_classes=64)
  obj = _objective(num_classes=64, name="softmax_sgsl")
  params = {"classifier": jnp.zeros((4, 64))}   # uniform logits: softmax loss log 64 > 3
  loss, aux = obj.apply(jnp.asarray(x), jnp.asarray(y), params, step=0,
                        rng=jax.random.PRNGKey(0))
  np.testing.assert_allclose(float(aux["softmax_sgsl/softmax"]), np.log(64), rtol=1e-5)
  assert float(aux["softmax_sgsl/sgsl_active"]) == 0.0
  np.testing.assert_allclose(float(loss), np.log(64), rtol=1e-5)
  # A classifier that already separates the batch: the softmax loss is small and SGSL joins.
  y = np.arange(8, dtype=np.int32)
  w = np.zeros((4, 64), np.float32)
  w[:, y] = 3 * x.T
  loss, aux = obj.apply(jnp.asarray(x), jnp.asarray(y), {"classifier": jnp.asarray(w)}, step=0,
                        rng=jax.random.PRNGKey(0))
  assert float(aux["softmax_sgsl/sgsl_active"]) == 1.0
  np.testing.assert_allclose(float(loss), float(aux["softmax_sgsl/softmax"]) +
                             float(aux["softmax_sgsl/sgsl"]), rtol=1e-5)


def test_unknown_names_and_hyperparameters():
  with pytest.raises(ValueError, match=r"config\.loss\.name must be one of \(.*'mpa'.*\), "
                     r"got 'mpaa'"):
    _objective(name="mpaa")
  with pytest.raises(ValueError, match=r"config\.loss\.kwargs has \['margn'\], which "
                     r"dmlax\.losses\.mpa_loss does not take; it takes \[.*'margin'"):
    _objective(name="mpa", kwargs={"margn": 0.1})
  with pytest.raises(ValueError, match=r"config\.loss\.softmax_epochs .* needs a classifier"):
    _objective(name="mpa", softmax_epochs=1.0)


def test_group_softmax_bias_is_trained_and_passed():
  x, y = _data()
  obj = _objective(name="group_softmax_bias", kwargs={"groups": (1, 2)})
  params = obj.init(jax.random.PRNGKey(0), jnp.asarray(x))
  assert set(params) == {"classifier", "bias"} and params["bias"].shape == (3,)
  np.testing.assert_array_equal(params["bias"], np.zeros(3))
  bias = jnp.asarray([2.0, -1.0, 0.5])
  loss, _ = obj.apply(jnp.asarray(x), jnp.asarray(y), {**params, "bias": bias}, step=0,
                      rng=jax.random.PRNGKey(0))
  from dmlax import losses  # pylint: disable=g-import-not-at-top
  expected = losses.group_softmax_loss(jnp.asarray(x), jnp.asarray(y), params["classifier"], bias,
                                       groups=(1, 2))
  np.testing.assert_allclose(float(loss), float(expected), rtol=1e-6)
  grads = jax.grad(lambda p: obj.apply(jnp.asarray(x), jnp.asarray(y), p, step=0,
                                       rng=jax.random.PRNGKey(0))[0])(params)
  assert float(jnp.abs(grads["bias"]).max()) > 0
  logits = obj.logits(jnp.asarray(x), {**params, "bias": bias})
  np.testing.assert_allclose(logits, x @ np.asarray(params["classifier"]) + np.asarray(bias),
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rate", [0.005, 0.1, 0.3])
def test_adversarial_dropout_flips_ceil_pd_and_does_not_lower_the_loss(rate):
  x, y = _data(batch=8, dim=40, num_classes=3, seed=2)
  x = np.abs(x) + 0.1  # no zero component, so every dropped one is visible
  obj = _objective(name="group_softmax", kwargs={"groups": (1, 2)}, adversarial_dropout=rate)
  plain = _objective(name="group_softmax", kwargs={"groups": (1, 2)})
  params = plain.init(jax.random.PRNGKey(0), jnp.asarray(x))
  clean_loss = lambda f: plain.apply(f, jnp.asarray(y), params, step=0,
                                     rng=jax.random.PRNGKey(0))
  masked = objectives.adversarial_features(lambda f, l, p: clean_loss(f), jnp.asarray(x),
                                           jnp.asarray(y), params, rate=rate)
  dropped = np.sum(np.asarray(masked) == 0, axis=1)
  np.testing.assert_array_equal(dropped, np.full(8, int(np.ceil(rate * 40 - 1e-9))))
  loss, _ = obj.apply(jnp.asarray(x), jnp.asarray(y), params, step=0, rng=jax.random.PRNGKey(0))
  np.testing.assert_allclose(float(loss), float(clean_loss(masked)[0]), rtol=1e-6)
  assert float(loss) >= float(clean_loss(jnp.asarray(x))[0])
  with pytest.raises(ValueError, match=r"config\.loss\.adversarial_dropout must be in \[0, 1\)"):
    _objective(name="group_softmax", adversarial_dropout=1.0)


@pytest.mark.parametrize("name,kw,shape", [
    ("margin", {}, ()),                       # pml's MarginLoss: one learnable beta
    ("margin_class_beta", {}, (3,)),          # Wu et al.'s beta^(class)
])
def test_margin_loss_owns_a_learnable_beta_started_at_1_2(name, kw, shape):
  x, y = _data()
  obj = _objective(name=name, **kw)
  params = obj.init(jax.random.PRNGKey(0), jnp.asarray(x))
  np.testing.assert_array_equal(params["beta"], np.full(shape, 1.2, np.float32))
  loss, _ = obj.apply(jnp.asarray(x), jnp.asarray(y), params, step=0, rng=jax.random.PRNGKey(1))
  from dmlax import losses  # pylint: disable=g-import-not-at-top
  np.testing.assert_allclose(loss, losses.margin_loss(x, y, params["beta"]), rtol=1e-6)
  grad = jax.grad(lambda p: obj.apply(jnp.asarray(x), jnp.asarray(y), p, step=0,
                                      rng=jax.random.PRNGKey(1))[0])(params)
  assert np.all(np.isfinite(grad["beta"])) and np.any(grad["beta"] != 0)
  assert obj.logits is None


def test_subcenter_arcface_owns_k_subcenters_and_scores_by_the_best_one():
  x, y = _data(batch=5, dim=4, num_classes=3)
  obj = _objective(name="subcenter_arcface", num_proxies=2)
  params = obj.init(jax.random.PRNGKey(0), jnp.asarray(x))
  w = np.asarray(params["subcenters"], np.float64)
  assert w.shape == (4, 3, 2)
  # PyTorch Linear's fan-in bound 1/sqrt(D) for every sub-center.
  assert np.abs(w).max() <= 0.5 and np.abs(w).max() > 0.25
  xn = x.astype(np.float64) / np.linalg.norm(x, axis=1, keepdims=True)
  wn = w / np.linalg.norm(w, axis=0, keepdims=True)
  expected = np.einsum("nd,dck->nck", xn, wn).max(-1)
  np.testing.assert_allclose(obj.logits(jnp.asarray(x), params), expected, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="config.loss.num_proxies"):
    _objective(name="subcenter_arcface", num_proxies=0)


def test_multiclass_hinge_scores_are_x_w():
  x, y = _data()
  obj = _objective(name="multiclass_hinge", kwargs={"variant": "weston_watkins"})
  params = obj.init(jax.random.PRNGKey(0), jnp.asarray(x))
  z = x.astype(np.float64) @ np.asarray(params["classifier"], np.float64)
  np.testing.assert_allclose(obj.logits(jnp.asarray(x), params), z, rtol=1e-5, atol=1e-6)
  margins = np.maximum(0.0, 1.0 + z - z[np.arange(len(y)), y][:, None])
  margins[np.arange(len(y)), y] = 0.0
  loss, _ = obj.apply(jnp.asarray(x), jnp.asarray(y), params, step=0, rng=jax.random.PRNGKey(1))
  np.testing.assert_allclose(loss, margins.sum(1).mean(), rtol=1e-5)
