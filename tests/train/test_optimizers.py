"""Schedules against their formulas; parameter groups, warm-up, frozen BatchNorm, clipping."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import common
from dmlax.train import optimizers


def _schedule(**kw):
  c = common.get_config().schedule
  c.update(kw)
  return c


def test_step_schedule_divides_at_epoch_boundaries():  # GSL: lr 0.1 / 10 at given epochs
  fn = optimizers.schedule_fn(_schedule(name="step", boundaries=(30, 60), factor=0.1),
                              base_lr=0.1, steps_per_epoch=10, total_steps=900)
  for t, want in [(0, 0.1), (299, 0.1), (300, 0.01), (599, 0.01), (600, 0.001), (899, 0.001)]:
    np.testing.assert_allclose(float(fn(t)), want, rtol=1e-6)


def test_cosine_schedule():  # SGSL
  fn = optimizers.schedule_fn(_schedule(name="cosine"), base_lr=0.2, steps_per_epoch=10,
                              total_steps=1000)
  for t in (0, 250, 500, 999):
    np.testing.assert_allclose(float(fn(t)), 0.2 * 0.5 * (1 + math.cos(math.pi * t / 1000)),
                               rtol=1e-5, atol=1e-8)


def test_exponential_schedules():
  # W-Softmax: 0.01, times 0.9 every 6000 steps.
  fn = optimizers.schedule_fn(_schedule(name="exponential", decay_rate=0.9, decay_steps=6000),
                              base_lr=0.01, steps_per_epoch=100, total_steps=30000)
  for t in (0, 5999, 6000, 12000, 17999):
    np.testing.assert_allclose(float(fn(t)), 0.01 * 0.9 ** (t // 6000), rtol=1e-6)
  # MPA: halved every 20 epochs.
  fn = optimizers.schedule_fn(_schedule(name="exponential", decay_rate=0.5, decay_epochs=20),
                              base_lr=1e-4, steps_per_epoch=7, total_steps=420)
  for t in (0, 139, 140, 280):
    np.testing.assert_allclose(float(fn(t)), 1e-4 * 0.5 ** (t // 140), rtol=1e-6)


def test_ramp():
  fn = optimizers.schedule_fn(_schedule(name="constant", ramp_epochs=1.0), base_lr=1.0,
                              steps_per_epoch=4, total_steps=100)
  np.testing.assert_allclose([float(fn(t)) for t in range(6)], [0.25, 0.5, 0.75, 1, 1, 1])


def test_bad_schedule_and_optimizer_names():
  with pytest.raises(ValueError, match=r"config\.schedule\.name must be one of"):
    optimizers.schedule_fn(_schedule(name="poly"), base_lr=1.0, steps_per_epoch=1, total_steps=1)
  with pytest.raises(ValueError, match=r"config\.schedule\.boundaries"):
    optimizers.schedule_fn(_schedule(name="step", boundaries=(60, 30)), base_lr=1.0,
                           steps_per_epoch=1, total_steps=100)
  c = common.get_config()
  c.optimizer.name = "lamb"
  with pytest.raises(ValueError, match=r"config\.optimizer\.name must be one of"):
    optimizers.build_optimizer(c, params={"model": {}, "loss": {}}, batch_stats={},
                               steps_per_epoch=1, total_steps=1)


def _params():
  return {"model": {"backbone": {"conv": {"kernel": jnp.zeros((3,))},
                                 "bn": {"scale": jnp.ones((2,)), "bias": jnp.zeros((2,))}},
                    "head": {"dense": {"kernel": jnp.zeros((2,))}}},
          "loss": {"proxies": jnp.zeros((4,))}}


_BATCH_STATS = {"backbone": {"bn": {"mean": jnp.zeros((2,)), "var": jnp.ones((2,))}}}


def _run(config, steps, grad_value=1.0):
  params = _params()
  tx, schedules = optimizers.build_optimizer(config, params=params, batch_stats=_BATCH_STATS,
                                             steps_per_epoch=2, total_steps=100)
  opt_state = tx.init(params)
  history = []
  for _ in range(steps):
    grads = jax.tree.map(lambda p: jnp.full_like(p, grad_value), params)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    history.append(params)
  return history, schedules


def test_adamw_separate_learning_rates():  # MPA: 1e-4 backbone, 1e-2 proxies
  c = common.get_config()
  c.optimizer.update(name="adamw", lr=1e-4, head_lr=1e-2, weight_decay=0.0)
  (p,), _ = _run(c, 1)
  # Adam's first step moves every coordinate by -lr (m / sqrt(v) = g / |g|).
  np.testing.assert_allclose(p["model"]["backbone"]["conv"]["kernel"], -1e-4, rtol=1e-4)
  np.testing.assert_allclose(p["model"]["head"]["dense"]["kernel"], -1e-4, rtol=1e-4)
  np.testing.assert_allclose(p["loss"]["proxies"], -1e-2, rtol=1e-4)


def test_sgd_momentum_weight_decay():
  c = common.get_config()
  c.optimizer.update(name="sgd", lr=0.1, momentum=0.9, weight_decay=0.5)
  hist, _ = _run(c, 2)
  # PyTorch SGD: g' = g + wd p; buf = mu buf + g'; p -= lr buf.
  p, buf = 0.0, 0.0
  for got in hist:
    g = 1.0 + 0.5 * p
    buf = 0.9 * buf + g
    p = p - 0.1 * buf
    np.testing.assert_allclose(got["loss"]["proxies"], p, rtol=1e-6)


def test_warmup_trains_only_new_layers():
  c = common.get_config()
  c.optimizer.update(name="sgd", lr=0.1, momentum=0.0, weight_decay=0.0, warmup_epochs=1.0,
                     new_layers="head")
  hist, schedules = _run(c, 3)  # 2 steps per epoch: steps 0 and 1 are warm-up
  for t in (0, 1):
    np.testing.assert_array_equal(hist[t]["model"]["backbone"]["conv"]["kernel"], 0.0)
    np.testing.assert_allclose(hist[t]["model"]["head"]["dense"]["kernel"], -0.1 * (t + 1))
    np.testing.assert_allclose(hist[t]["loss"]["proxies"], -0.1 * (t + 1))
  np.testing.assert_allclose(hist[2]["model"]["backbone"]["conv"]["kernel"], -0.1)
  assert float(schedules["backbone"](1)) == 0.0 and float(schedules["backbone"](2)) > 0


def test_new_layers_must_exist():
  c = common.get_config()
  c.optimizer.new_layers = "embedding"
  with pytest.raises(ValueError, match=r"config\.optimizer\.new_layers names 'embedding'.*"
                     r"\['backbone', 'head'\]"):
    optimizers.build_optimizer(c, params=_params(), batch_stats=_BATCH_STATS, steps_per_epoch=1,
                               total_steps=1)


def test_frozen_batchnorm_parameters_do_not_move():
  c = common.get_config()
  c.optimizer.update(name="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4)
  c.model.frozen_bn = True
  (p,), _ = _run(c, 1)
  np.testing.assert_array_equal(p["model"]["backbone"]["bn"]["scale"], 1.0)
  np.testing.assert_array_equal(p["model"]["backbone"]["bn"]["bias"], 0.0)
  assert np.all(np.asarray(p["model"]["backbone"]["conv"]["kernel"]) < 0)


def test_gradient_clipping_by_global_norm():
  c = common.get_config()
  c.optimizer.update(name="sgd", lr=1.0, momentum=0.0, weight_decay=0.0, grad_clip_norm=1.0)
  (p,), _ = _run(c, 1, grad_value=10.0)
  leaves = [np.asarray(x) - np.asarray(x0) for x, x0 in
            zip(jax.tree.leaves(p), jax.tree.leaves(_params()))]
  np.testing.assert_allclose(np.sqrt(sum(np.sum(d * d) for d in leaves)), 1.0, rtol=1e-5)


def test_warmup_then_cosine_matches_fastreid():
  # fastreid WarmupLR (linear, factor w) over W iterations, then the cosine to eta_min over the
  # remaining T - W: SGSL's recipe (W = 1000, w = 0.1, eta_min = 5e-4 at lr 0.05 on CUB).
  lr, w, big_w, total, eta = 0.05, 0.1, 1000, 9000, 5e-4
  fn = optimizers.schedule_fn(_schedule(name="cosine", warmup_steps=big_w, warmup_factor=w,
                                        final_fraction=eta / lr),
                              base_lr=lr, steps_per_epoch=90, total_steps=total)

  def want(t):
    if t < big_w:
      return lr * (w + (1 - w) * t / big_w)
    return eta + (lr - eta) * (1 + math.cos(math.pi * (t - big_w) / (total - big_w))) / 2

  for t in (0, 1, 250, 500, 999, 1000, 1001, 3000, 5000, 8999):
    np.testing.assert_allclose(float(fn(t)), want(t), rtol=1e-5, err_msg=str(t))
  np.testing.assert_allclose(float(fn(0)), 0.005, rtol=1e-6)


def test_warmup_multiplies_other_schedules():
  # fastreid WarmupMultiStepLR: the step schedule keeps its boundaries, times the warm-up factor.
  fn = optimizers.schedule_fn(_schedule(name="step", boundaries=(1,), factor=0.1,
                                        warmup_steps=20, warmup_factor=0.5),
                              base_lr=1.0, steps_per_epoch=10, total_steps=100)
  for t in (0, 5, 9, 10, 19, 20, 50):
    ramp = 0.5 + 0.5 * t / 20 if t < 20 else 1.0
    np.testing.assert_allclose(float(fn(t)), ramp * (1.0 if t < 10 else 0.1), rtol=1e-6)
  # warmup_steps = 0 (the default) leaves every schedule as it was.
  plain = optimizers.schedule_fn(_schedule(name="cosine"), base_lr=0.2, steps_per_epoch=10,
                                 total_steps=100)
  np.testing.assert_allclose(float(plain(0)), 0.2)


def test_bad_warmup_names_the_field():
  with pytest.raises(ValueError, match=r"config\.schedule\.warmup_steps=100 must be fewer"):
    optimizers.schedule_fn(_schedule(name="cosine", warmup_steps=100), base_lr=1.0,
                           steps_per_epoch=1, total_steps=100)
  with pytest.raises(ValueError, match=r"warmup_factor in \[0, 1\]"):
    optimizers.schedule_fn(_schedule(name="cosine", warmup_steps=10, warmup_factor=2.0),
                           base_lr=1.0, steps_per_epoch=1, total_steps=100)


def test_gradient_clipping_by_value_clips_each_component():
  # ProxyAnchor: torch.nn.utils.clip_grad_value_(model and proxies, 10) before the step.
  c = common.get_config()
  c.optimizer.update(name="sgd", lr=1.0, momentum=0.0, weight_decay=0.0, grad_clip_value=10.0)
  params = _params()
  tx, _ = optimizers.build_optimizer(c, params=params, batch_stats=_BATCH_STATS,
                                     steps_per_epoch=1, total_steps=10)
  rng = np.random.default_rng(0)
  grads = jax.tree.map(lambda p: jnp.asarray(rng.uniform(-30, 30, p.shape), jnp.float32), params)
  updates, _ = tx.update(grads, tx.init(params), params)
  for g, u in zip(jax.tree.leaves(grads), jax.tree.leaves(updates)):
    np.testing.assert_allclose(np.asarray(u), -np.clip(np.asarray(g), -10.0, 10.0), rtol=1e-6)
  assert any(np.abs(np.asarray(g)).max() > 10 for g in jax.tree.leaves(grads))
  c.optimizer.grad_clip_value = -1.0
  with pytest.raises(ValueError, match=r"config\.optimizer\.grad_clip_value must be >= 0"):
    optimizers.build_optimizer(c, params=params, batch_stats=_BATCH_STATS, steps_per_epoch=1,
                               total_steps=10)


def test_new_layers_lr_is_a_group_of_its_own():
  # ProxyAnchor's groups: backbone lr, embedding lr * 1, proxies lr * 100; here three rates.
  c = common.get_config()
  c.optimizer.update(name="sgd", lr=0.1, head_lr=10.0, new_layers="head", new_layers_lr=0.5,
                     momentum=0.0, weight_decay=0.0, warmup_epochs=1.0)
  hist, schedules = _run(c, 3)  # 2 steps per epoch: steps 0 and 1 train only new layers + loss
  assert set(schedules) == {"head", "backbone", "new"}
  for t in range(3):
    np.testing.assert_allclose(hist[t]["model"]["head"]["dense"]["kernel"], -0.5 * (t + 1))
    np.testing.assert_allclose(hist[t]["loss"]["proxies"], -10.0 * (t + 1), rtol=1e-6)
  np.testing.assert_array_equal(hist[1]["model"]["backbone"]["conv"]["kernel"], 0.0)
  np.testing.assert_allclose(hist[2]["model"]["backbone"]["conv"]["kernel"], -0.1, rtol=1e-6)
  # Without it the new layers train at head_lr, as before.
  c.optimizer.new_layers_lr = None
  hist, schedules = _run(c, 1)
  assert "new" not in schedules
  np.testing.assert_allclose(hist[0]["model"]["head"]["dense"]["kernel"], -10.0, rtol=1e-6)


def test_frozen_bn_scope_backbone_labels_only_backbone_batchnorm():
  params = {"model": {"backbone": {"bn": {"scale": jnp.ones(2), "bias": jnp.zeros(2)},
                                   "conv": {"kernel": jnp.zeros(3)}},
                      "head": {"bn_neck": {"scale": jnp.ones(2)}}}, "loss": {}}
  stats = {"backbone": {"bn": {"mean": jnp.zeros(2), "var": jnp.ones(2)}},
           "head": {"bn_neck": {"mean": jnp.zeros(2), "var": jnp.ones(2)}}}
  labels = optimizers.param_labels(params, batch_stats=stats, frozen_bn=True,
                                   frozen_bn_scope="backbone")
  assert labels["model"]["backbone"]["bn"] == {"scale": "frozen", "bias": "frozen"}
  assert labels["model"]["head"]["bn_neck"]["scale"] == "backbone"
  every = optimizers.param_labels(params, batch_stats=stats, frozen_bn=True)
  assert every["model"]["head"]["bn_neck"]["scale"] == "frozen"
  with pytest.raises(ValueError, match=r"config\.model\.frozen_bn_scope must be one of"):
    optimizers.param_labels(params, batch_stats=stats, frozen_bn=True, frozen_bn_scope="neck")
