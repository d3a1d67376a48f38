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
