"""8 fake CPU devices (pmap and shard_map) train to the same parameters as one device, for every
loss the trainer registers.

The per-device step sees 4 of the 32 examples; cross-replica BatchNorm, the pmean of gradients and
the losses' axis_name (group softmax scores, ProxyAnchor/MPA class sums) or all_gather must make
three optimiser steps on 8 devices equal to three on one device with the whole batch.

The cases are every name of `objectives.LOSSES` with its default hyperparameters (a newly
registered loss is checked without editing this file) plus the variants in `VARIANTS`.
Compiling a train step dominates the time on a CPU, so every case is built from its own config
(`build_objective`) with its own classifier/proxies, and one step trains their sum on a shared
BatchNorm model: each case's parameters receive only that case's gradient, so comparing them leaf
by leaf checks every loss separately (one parametrised test per case), with three compilations
in all, shared by the module fixture.
"""

import jax
import numpy as np
import pytest
import chex

from configs import common
from dmlax import losses
from dmlax.train import objectives, optimizers, state as state_lib, step as step_lib
from tests.train import harness

NUM_CLASSES = 5
GLOBAL_BATCH = 32
STEPS = 3


VARIANTS = {
    "group_softmax_I": dict(name="group_softmax", kwargs={"groups": (1, 2), "loss_type": "I"}),
    "group_softmax_II": dict(name="group_softmax",
                             kwargs={"groups": (1, 2, 4), "loss_type": "II"}),
    # Softmax for the first step, W-Softmax afterwards: both phases run within the test.
    "w_softmax": dict(name="weights_biased_softmax", kwargs={"alpha": 1.0}, softmax_epochs=1.0),
    "softmax_sgsl": dict(name="softmax_sgsl"),
    "proxy_anchor": dict(name="proxy_anchor"),
    "mpa": dict(name="mpa", num_proxies=3),
    "mpa_dw": dict(name="mpa_dw", num_proxies=3),
    "mpa_ap": dict(name="mpa_ap", num_proxies=3),
    "soft_triple": dict(name="soft_triple", num_proxies=3),
    "softmax+triplet": dict(name="softmax", aux_name="triplet", aux_weight=0.5),
    "softmax+center": dict(name="softmax", aux_name="center", aux_weight=0.1),
    "group_softmax_random": dict(name="group_softmax", kwargs={"grouping": "random"}),
    # GSL's adversarial DropOut of 3 of the 12 feature components, before group softmax.
    "group_softmax_adversarial": dict(name="group_softmax", adversarial_dropout=0.25),
    # Cross-batch memory of two global batches: the third step overwrites the first.
    "contrastive_memory": dict(name="contrastive", memory_size=2 * GLOBAL_BATCH),
    "ntxent_memory": dict(name="ntxent", memory_size=2 * GLOBAL_BATCH),
    "margin_class_beta_memory": dict(name="margin_class_beta", memory_size=2 * GLOBAL_BATCH),
}
# Losses that send no gradient into their own parameters (only weight decay moves them).
NO_GRADIENT_INTO_PARAMS = ("stop_gradient_softmax",)
CASES = {**{name: dict(name=name) for name in objectives.LOSSES}, **VARIANTS}


def _config(case):
  c = common.get_config()
  spec = dict(CASES[case])
  c.loss.name = spec.pop("name")
  c.loss.kwargs.update(spec.pop("kwargs", {}))
  for k, v in spec.items():
    c.loss[k] = v
  c.batch_size = GLOBAL_BATCH
  c.optimizer.name = "sgd"
  # The shared model takes the sum of all cases' gradients; at lr 0.05 three steps collapsed
  # some embeddings onto each other (8 positive pairs at distance < 1e-3), where
  # contrastive's count of non-zero pair terms flips with the last bit of the distance: its
  # loss then jumped by 0.0065 between 8 devices and 1 and moved the model by 8e-5. At 0.01
  # the closest positive pair stays 0.17 apart (found with the group softmax block gather).
  c.optimizer.lr = 0.01
  c.optimizer.head_lr = 0.1
  c.optimizer.weight_decay = 1e-4
  return c


def _batches():
  return harness.random_batches(STEPS, GLOBAL_BATCH, 4, NUM_CLASSES)


def _initial_state(config, objective, batches):
  model = harness.TinyBNNet()
  variables = model.init(jax.random.PRNGKey(1), batches[0]["image"], train=False)
  features = model.apply(variables, batches[0]["image"], train=False)
  params = {"model": variables["params"], "loss": objective.init(jax.random.PRNGKey(2), features)}
  tx, _ = optimizers.build_optimizer(config, params=params, batch_stats=variables["batch_stats"],
                                     steps_per_epoch=1, total_steps=STEPS)
  return state_lib.TrainState.create(apply_fn=model.apply, params=params, tx=tx,
                                     batch_stats=variables["batch_stats"],
                                     memory=objective.init_memory(features))


def _train(driver_name, config, objective, init_state, batches):
  driver = step_lib.make_driver(driver_name, lambda ax: harness.TinyBNNet(bn_axis_name=ax), objective,
                                rng=jax.random.PRNGKey(3))
  dstate = driver.put_state(init_state)
  for batch in batches:
    dstate, metrics = driver.step(dstate, driver.put_batch(batch))
  return driver.get_state(dstate), jax.device_get(metrics)


def _combined(objs):
  """One objective: the sum of `objs` (name -> Objective), each with its own parameters.

  The cases with a cross-batch memory share one (all see the same features and labels), of the
  size they all ask for.
  """
  sizes = {o.memory_size for o in objs.values() if o.memory_size}
  assert len(sizes) <= 1, sizes

  def init(rng, features):
    # Pytree utilities drop empty dicts, so losses without parameters get no entry.
    params = {name: o.init(jax.random.fold_in(rng, i), features)
              for i, (name, o) in enumerate(objs.items())}
    return {name: p for name, p in params.items() if p}

  def apply(features, labels, params, *, step, rng, axis_name=None, references=None):
    total, aux = 0.0, {}
    for name, o in objs.items():
      loss, _ = o.apply(features, labels, params.get(name, {}), step=step, rng=rng,
                        axis_name=axis_name, references=references if o.memory_size else None)
      total = total + loss
      aux[name] = loss
    return total, aux

  return objectives.Objective(init=init, apply=apply, logits=None, num_classes=NUM_CLASSES,
                              memory_size=max(sizes, default=0))


@pytest.fixture(scope="module")
def trained():
  """Every case built, and their sum trained on one device, pmap and shard_map."""
  assert jax.device_count() == 8, "tests/conftest.py sets 8 fake CPU devices"
  objs, errors = {}, {}
  for c in CASES:
    try:
      objs[c] = objectives.build_objective(_config(c), num_classes=NUM_CLASSES,
                                           steps_per_epoch=1)
    except Exception as e:  # pylint: disable=broad-except
      errors[c] = e  # reported by that case's test
  config = _config("softmax")
  objective = _combined(objs)
  batches = _batches()
  init_state = _initial_state(config, objective, batches)
  runs = {d: _train(d, config, objective, init_state, batches)
          for d in ("single", "pmap", "shard_map")}
  return dict(init=init_state, runs=runs, errors=errors)


@pytest.mark.parametrize("case", sorted(CASES))
def test_eight_devices_equal_one_for_every_loss(trained, case):
  if case in trained["errors"]:
    raise trained["errors"][case]
  init_state, runs = trained["init"], trained["runs"]
  single, single_metrics = runs["single"]
  assert bool(single_metrics["finite"])
  assert np.isfinite(single_metrics[case]), case
  # The loss's own parameters moved: no comparison is between two copies of the initial state.
  owned = single.params["loss"].get(case)
  if owned and case not in NO_GRADIENT_INTO_PARAMS:
    moved = jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))),
                         owned, init_state.params["loss"][case])
    assert max(jax.tree.leaves(moved)) > 1e-4, case
  for driver in ("pmap", "shard_map"):
    multi, multi_metrics = runs[driver]
    assert int(multi.step) == STEPS
    np.testing.assert_allclose(multi_metrics[case], single_metrics[case], rtol=1e-5,
                               err_msg=f"{driver}, {case}")
    chex.assert_trees_all_close(multi.params["loss"].get(case), owned,
                                atol=1e-5, rtol=1e-5, custom_message=f"{driver}, {case}")


def test_eight_devices_equal_one_model_and_optimiser(trained):
  single, _ = trained["runs"]["single"]
  for driver in ("pmap", "shard_map"):
    multi, _ = trained["runs"][driver]
    chex.assert_trees_all_close(multi.params["model"], single.params["model"], atol=1e-5,
                                rtol=1e-5, custom_message=driver)
    chex.assert_trees_all_close(multi.batch_stats, single.batch_stats, atol=1e-5, rtol=1e-5)
    # The momentum traces sum three steps' gradients, whose cross-device sums run in another
    # order than one device's: one element of 256 differed by 1.5e-5 at |0.073| (rtol 2e-4).
    chex.assert_trees_all_close(multi.opt_state, single.opt_state, atol=2e-5, rtol=1e-4)
    # The memory holds the last two global batches' embeddings, in device order.
    assert int(single.memory.filled) == 2 * GLOBAL_BATCH and int(single.memory.pointer) == 32
    chex.assert_trees_all_close(multi.memory, single.memory, atol=1e-5, rtol=1e-5,
                                custom_message=driver)


def test_signature_decides_how_a_loss_is_called():
  """What the trainer passes comes from each function's signature, not from a declaration."""
  entries = objectives.LOSSES
  for name in ("group_softmax", "softmax_sgsl", "proxy_anchor", "mpa", "mpa_dw", "mpa_ap"):
    assert entries[name].couples_batch, name
  for name in ("triplet", "contrastive", "multi_similarity", "ntxent", "supcon", "circle",
               "margin", "lifted_structure", "subcenter_arcface"):
    assert entries[name].couples_batch, name
  for name in ("softmax", "multiclass_hinge", "center"):
    assert not entries[name].couples_batch, name
  assert entries["margin"].takes_references and not entries["lifted_structure"].takes_references
  assert entries["noisy_softmax"].rng_keyword == "key"
  assert entries["group_softmax"].rng_keyword == "rng"
  assert entries["sphereface"].anneals_lambda and not entries["cosface"].anneals_lambda
  assert not entries["ring"].takes_labels and entries["center"].takes_labels
  for entry in entries.values():
    assert callable(entry.fn) and entry.fn is getattr(losses, entry.fn.__name__)


def test_per_device_batchnorm_would_differ():
  """Guards the test above: without cross-replica statistics the 8-device result differs."""
  config = _config("softmax")
  objective = objectives.build_objective(config, num_classes=NUM_CLASSES, steps_per_epoch=1)
  batches = _batches()
  init_state = _initial_state(config, objective, batches)
  single, _ = _train("single", config, objective, init_state, batches)
  driver = step_lib.PmapDriver(lambda ax: harness.TinyBNNet(bn_axis_name=None), objective,
                               rng=jax.random.PRNGKey(3))
  dstate = driver.put_state(init_state)
  for batch in batches:
    dstate, _ = driver.step(dstate, driver.put_batch(batch))
  local_bn = driver.get_state(dstate)
  diff = jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))),
                      local_bn.params, single.params)
  assert max(jax.tree.leaves(diff)) > 1e-4
