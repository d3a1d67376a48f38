"""Cross-batch memory from the config (`config.loss.memory_size`): trainer steps equal a
hand-written loop over `xbm_update` + the loss, resuming keeps the memory, and a loss that cannot
use it is a config error. (8 devices equal one: the `*_memory` cases of test_multidevice.py.)"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import chex

from configs import common
from configs import quickstart
from dmlax import losses
from dmlax.train import loop, objectives, optimizers, run as run_lib, state as state_lib
from dmlax.train import step as step_lib
from tests.train import harness

BATCH, DIM, NUM_CLASSES, STEPS, MEMORY = 8, 6, 3, 4, 24


class TinyNet(nn.Module):
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, images, *, train: bool):
    del train
    x = images.reshape(images.shape[0], -1)
    return nn.Dense(DIM)(nn.tanh(nn.Dense(10)(x)))


def _config(name):
  c = common.get_config()
  c.batch_size = BATCH
  c.loss.name = name
  c.loss.memory_size = MEMORY
  c.optimizer.name = "sgd"
  c.optimizer.lr = 0.1
  c.optimizer.head_lr = 0.2
  c.optimizer.weight_decay = 0.0
  return c


# The loss of each case on (embeddings, labels, owned parameters, references), written out.
HAND_WRITTEN = {
    "contrastive": lambda e, y, p, refs: losses.contrastive_loss(e, y, references=refs),
    "margin_class_beta": lambda e, y, p, refs: losses.margin_loss(e, y, p["beta"],
                                                                  references=refs),
}


@pytest.mark.parametrize("name", sorted(HAND_WRITTEN))
def test_trainer_steps_equal_a_hand_written_memory_loop(name):
  config = _config(name)
  objective = objectives.build_objective(config, num_classes=NUM_CLASSES, steps_per_epoch=1)
  assert objective.memory_size == MEMORY
  batches, model = harness.random_batches(STEPS, BATCH, 3, NUM_CLASSES), TinyNet()
  variables = model.init(jax.random.PRNGKey(1), batches[0]["image"], train=False)
  features = model.apply(variables, batches[0]["image"], train=False)
  params = {"model": variables["params"], "loss": objective.init(jax.random.PRNGKey(2), features)}
  tx, _ = optimizers.build_optimizer(config, params=params, batch_stats={}, steps_per_epoch=1,
                                     total_steps=STEPS)
  state = state_lib.TrainState.create(apply_fn=model.apply, params=params, tx=tx, batch_stats={},
                                      memory=objective.init_memory(features))
  driver = step_lib.make_driver("single", lambda ax: TinyNet(), objective,
                                rng=jax.random.PRNGKey(3))
  dstate, trainer_losses = driver.put_state(state), []
  for batch in batches:
    dstate, metrics = driver.step(dstate, driver.put_batch(batch))
    trainer_losses.append(float(metrics["loss"]))
  trained = driver.get_state(dstate)

  # The reference: enqueue, then the loss against the memory, then the optimiser.
  memory, p, opt_state, ref_losses = losses.xbm_init(MEMORY, DIM), params, tx.init(params), []
  for batch in batches:
    def loss_fn(p, memory=memory, batch=batch):
      e = model.apply({"params": p["model"]}, batch["image"], train=True)
      new = losses.xbm_update(memory, e, batch["label"])
      refs = losses.xbm_references(new, BATCH)
      return HAND_WRITTEN[name](e, batch["label"], p["loss"], refs), new
    (value, memory), grads = jax.value_and_grad(loss_fn, has_aux=True)(p)
    updates, opt_state = tx.update(grads, opt_state, p)
    p = optax.apply_updates(p, updates)
    ref_losses.append(float(value))

  np.testing.assert_allclose(trainer_losses, ref_losses, rtol=1e-5)
  # Step 1's memory holds only the batch (the batch's own loss); later steps see earlier batches.
  first = model.apply({"params": params["model"]}, batches[0]["image"], train=True)
  batch_only = float(HAND_WRITTEN[name](first, batches[0]["label"], params["loss"], None))
  np.testing.assert_allclose(trainer_losses[0], batch_only, rtol=1e-5)
  chex.assert_trees_all_close(trained.params, p, atol=1e-6, rtol=1e-5)
  chex.assert_trees_all_close(trained.memory, memory, atol=1e-6, rtol=1e-5)
  assert int(trained.memory.filled) == MEMORY and int(trained.memory.pointer) == 8
  if name == "margin_class_beta":
    assert trained.params["loss"]["beta"].shape == (NUM_CLASSES,)
    assert float(jnp.max(jnp.abs(trained.params["loss"]["beta"] - 1.2))) > 1e-4


@pytest.mark.parametrize("name,match", [
    ("lifted_structure", r"config.loss.memory_size=24 .*lifted_structure_loss.*does not"),
    ("softmax", r"config.loss.memory_size=24 .*references"),
])
def test_memory_with_a_loss_without_references_is_a_config_error(name, match):
  with pytest.raises(ValueError, match=match):
    objectives.build_objective(_config(name), num_classes=NUM_CLASSES, steps_per_epoch=1)


@pytest.mark.parametrize("size,match", [(4, "at least config.batch_size=8"),
                                        (-1, "non-negative integer")])
def test_bad_memory_size_is_a_config_error(size, match):
  config = _config("contrastive")
  config.loss.memory_size = size
  with pytest.raises(ValueError, match=f"config.loss.memory_size.*{match}"):
    objectives.build_objective(config, num_classes=NUM_CLASSES, steps_per_epoch=1)


def _run_config(steps):
  config = quickstart.get_config("mpa,smoke")
  config.loss.name, config.loss.num_proxies = "contrastive", 1
  config.loss.kwargs = {}
  config.loss.memory_size = 48  # three batches of 16: after 4 steps, filled 48, pointer 16
  config.num_train_steps = steps
  config.parallel = "single"
  config.schedule.name = "constant"  # the same learning rates whatever num_train_steps says
  return config


# The three runs and two set-ups build the same programs (a constant schedule): compile once.
@pytest.mark.usefixtures("compilation_cache")
def test_resumed_run_keeps_the_memory(tmp_path):
  loop.train_and_evaluate(_run_config(4), str(tmp_path / "whole"))
  loop.train_and_evaluate(_run_config(2), str(tmp_path / "split"))
  loop.train_and_evaluate(_run_config(4), str(tmp_path / "split"))
  whole = loop.restore(run_lib.setup(_run_config(4), str(tmp_path / "whole")))
  split = loop.restore(run_lib.setup(_run_config(4), str(tmp_path / "split")))
  assert int(split.step) == 4 and int(split.memory.filled) == 48
  assert int(split.memory.pointer) == 16
  chex.assert_trees_all_close(split.memory, whole.memory)
  chex.assert_trees_all_close(split.params, whole.params)
