"""Class parallelism: 8 fake CPU devices as (data, model) = 2 x 4 and 4 x 2 meshes, the loss's
classifier/proxies split over "model", train to the one-device result, for every loss of
`objectives.LOSSES` whose function takes `class_axis_name` (a loss that gains it later is
checked without editing this file).

As in tests/train/test_multidevice.py, compiling the step dominates on a CPU: every case is
built from its own config with its own class arrays, and one step trains their sum on a shared
BatchNorm model (each case's arrays receive only that case's gradient, so they are compared
case by case), with one compilation per mesh.
"""

import functools

import chex
import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from configs import common
from dmlax.train import checkpoints, checks, class_parallel, loss_params, objectives, optimizers
from dmlax.train import state as state_lib
from dmlax.train import step as step_lib
from tests.train import harness

NUM_CLASSES = 8
GLOBAL_BATCH = 16
STEPS = 3
MESHES = ((2, 4), (4, 2))
SHARDED = tuple(sorted(n for n, e in objectives.LOSSES.items() if e.shards_classes))
# The trainer's recipes around a loss, on the first class-sharded loss with a classifier.
_CLASSIFIER = next((n for n in SHARDED if n != "softmax" and isinstance(
    objectives.LOSSES[n].params, loss_params.Classifier)), None)
VARIANTS = {} if _CLASSIFIER is None else {
    # Softmax CE at step 0, the loss afterwards (W-Softmax's recipe), on the same classifier.
    f"{_CLASSIFIER}_softmax_first": dict(name=_CLASSIFIER, softmax_epochs=1.0),
    # GSL's adversarial DropOut: the features' gradient sums the class blocks' shares.
    f"{_CLASSIFIER}_adversarial": dict(name=_CLASSIFIER, adversarial_dropout=0.25),
}
CASES = SHARDED + tuple(VARIANTS)
# Losses that send no gradient into their own parameters (only weight decay moves them).
NO_GRADIENT_INTO_PARAMS = ("stop_gradient_softmax",)


# BatchNorm statistics cross-replica over the data axis only (bn_axis_name="batch").
TinyBNNet = functools.partial(harness.TinyBNNet, hidden=12, dim=6)


def _config(name="softmax"):
  c = common.get_config()
  spec = dict(VARIANTS.get(name, {"name": name}))
  c.loss.name = spec.pop("name")
  for k, v in spec.items():
    c.loss[k] = v
  c.loss.num_proxies = 2   # (C, K, D) proxies and (D, C, K) sub-centers split on their C axis
  c.batch_size = GLOBAL_BATCH
  c.parallel = "shard_map"
  c.optimizer.lr, c.optimizer.head_lr, c.optimizer.weight_decay = 0.05, 0.1, 1e-4
  return c


def _combined(objs):
  """One objective, the sum of `objs` (case -> Objective); case c's arrays are "c/<name>"."""

  def own(params, case):
    return {k.split("/", 1)[1]: v for k, v in params.items() if k.split("/", 1)[0] == case}

  def init(rng, features):
    return {f"{case}/{k}": v for i, (case, o) in enumerate(objs.items())
            for k, v in o.init(jax.random.fold_in(rng, i), features).items()}

  def apply(features, labels, params, *, step, rng, axis_name=None, references=None,
            class_axis_name=None):
    del references
    total, aux = 0.0, {}
    for case, o in objs.items():
      loss, _ = o.apply(features, labels, own(params, case), step=step, rng=rng,
                        axis_name=axis_name, class_axis_name=class_axis_name)
      total, aux[case] = total + loss, loss
    return total, aux

  class_axes = {f"{case}/{k}": a for case, o in objs.items() for k, a in o.class_axes.items()}
  return objectives.Objective(init=init, apply=apply, logits=None, num_classes=NUM_CLASSES,
                              class_axes=class_axes)


def _batches():
  return harness.random_batches(STEPS, GLOBAL_BATCH, 3, NUM_CLASSES)


def _state_factory(config, objective, images):
  """`make(model_params, batch_stats, key, features) -> TrainState`, and its arguments."""
  model = TinyBNNet()
  variables = model.init(jax.random.PRNGKey(1), images, train=False)
  features = model.apply(variables, images, train=False)
  abstract = {"model": variables["params"],
              "loss": jax.eval_shape(objective.init, jax.random.PRNGKey(2), features)}
  tx, _ = optimizers.build_optimizer(config, params=abstract,
                                     batch_stats=variables["batch_stats"], steps_per_epoch=1,
                                     total_steps=STEPS)

  def make(model_params, batch_stats, key, feats):
    return state_lib.TrainState.create(
        apply_fn=model.apply, params={"model": model_params, "loss": objective.init(key, feats)},
        tx=tx, batch_stats=batch_stats)

  return make, (variables["params"], variables["batch_stats"], jax.random.PRNGKey(2), features)


def _driver(objective, mesh_shape=None):
  make_model = lambda ax: TinyBNNet(bn_axis_name=ax)  # noqa: E731
  if mesh_shape is None:
    return step_lib.SingleDeviceDriver(make_model, objective, rng=jax.random.PRNGKey(3))
  return step_lib.ShardMapDriver(make_model, objective, rng=jax.random.PRNGKey(3),
                                 mesh=class_parallel.make_mesh(*mesh_shape))


def _run(driver, state, batches):
  dstate = driver.put_state(state)
  metrics = []
  for batch in batches:
    dstate, m = driver.step(dstate, driver.put_batch(batch))
    metrics.append(jax.device_get(m))
  return dstate, metrics


def _host(tree):
  return jax.tree.map(np.asarray, tree)


@pytest.fixture(scope="module")
def trained():
  """Every case built; their sum trained on one device and on the 2 x 4 and 4 x 2 meshes, each
  mesh run starting from a state initialised directly in its shards."""
  assert jax.device_count() == 8, "tests/conftest.py sets 8 fake CPU devices"
  assert CASES, "no loss of objectives.LOSSES takes class_axis_name"
  config = _config()
  objs = {c: objectives.build_objective(_config(c), num_classes=NUM_CLASSES, steps_per_epoch=1)
          for c in CASES}
  objective = _combined(objs)
  batches = _batches()
  make, args = _state_factory(config, objective, batches[0]["image"])
  host_init = make(*args)
  single_state, single_metrics = _run(_driver(objective), host_init, batches)
  out = dict(objective=objective, batches=batches, make=make, args=args, init=host_init,
             single=(_host(single_state), single_metrics), meshes={})
  for shape in MESHES:
    driver = _driver(objective, shape)
    init = class_parallel.sharded_state(make, args, mesh=driver.mesh,
                                        class_axes=objective.class_axes)
    dstate, metrics = _run(driver, init, batches)
    out["meshes"][shape] = dict(driver=driver, init=init, device_state=dstate,
                                state=_host(driver.get_state(dstate)), metrics=metrics)
  return out


@pytest.mark.parametrize("mesh_shape", MESHES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("case", CASES)
def test_mesh_equals_one_device(trained, case, mesh_shape):
  single, single_metrics = trained["single"]
  run = trained["meshes"][mesh_shape]
  names = [k for k in single.params["loss"] if k.split("/", 1)[0] == case]
  assert names, case
  for step in range(STEPS):  # the loss of every step
    assert np.isfinite(single_metrics[step][case]), case
    np.testing.assert_allclose(run["metrics"][step][case], single_metrics[step][case],
                               rtol=1e-5, atol=1e-6, err_msg=f"{case}, step {step}")
  init = trained["init"].params["loss"]
  for name in names:
    # The class arrays moved, and moved alike (after one SGD step the parameters are the
    # gradients; after three, the trajectory).
    if case not in NO_GRADIENT_INTO_PARAMS:
      assert np.max(np.abs(single.params["loss"][name] - np.asarray(init[name]))) > 1e-4, name
    chex.assert_trees_all_close(run["state"].params["loss"][name], single.params["loss"][name],
                                atol=1e-5, rtol=1e-5, custom_message=f"{mesh_shape}, {name}")


@pytest.mark.parametrize("mesh_shape", MESHES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_mesh_equals_one_device_model_optimiser_and_norm(trained, mesh_shape):
  single, single_metrics = trained["single"]
  run = trained["meshes"][mesh_shape]
  state = run["state"]
  assert int(state.step) == STEPS
  chex.assert_trees_all_close(state.params["model"], single.params["model"], atol=1e-5,
                              rtol=1e-5)
  chex.assert_trees_all_close(state.batch_stats, single.batch_stats, atol=1e-5, rtol=1e-5)
  # Momentum traces sum three steps' gradients, whose cross-device sums run in another order
  # than one device's; margin losses (scale 64) give gradients of |g| ~ 20, so the rounding is
  # relative to each array's scale: one element of 48 differed by 1.3e-4 at |0.82| in a trace
  # whose largest entry is 17.9.
  for (path, got), want in zip(jax.tree_util.tree_flatten_with_path(_host(state.opt_state))[0],
                               jax.tree.leaves(single.opt_state)):
    scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5 * scale,
                               err_msg=jax.tree_util.keystr(path))
  for step in range(STEPS):   # the global gradient norm adds the class blocks over "model"
    np.testing.assert_allclose(run["metrics"][step]["grad_norm"],
                               single_metrics[step]["grad_norm"], rtol=1e-5)
    np.testing.assert_allclose(run["metrics"][step]["loss"], single_metrics[step]["loss"],
                               rtol=1e-5)


def test_sharded_init_equals_unsharded(trained):
  # Equal draws; an initialiser's normalisation may round differently in a shard (1 ulp).
  for shape in MESHES:
    chex.assert_trees_all_close(_host(trained["meshes"][shape]["init"].params),
                                _host(trained["init"].params), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("mesh_shape", MESHES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_no_device_holds_a_whole_class_array(trained, mesh_shape):
  """Class arrays and their momentum are split into C / model classes per device; the backbone
  is whole on every device."""
  run, (_, model) = trained["meshes"][mesh_shape], mesh_shape
  dstate = run["device_state"]
  class_axes = trained["objective"].class_axes
  momentum = [t for t in jax.tree.leaves(dstate.opt_state, is_leaf=lambda x: isinstance(
      x, dict) and "loss" in x) if isinstance(t, dict)]
  assert momentum, "no parameter-shaped tree in the optimiser state"
  for name, axis in class_axes.items():
    for tree in [dstate.params] + momentum:
      leaf = tree["loss"][name]
      if not hasattr(leaf, "addressable_shards"):  # masked out of this group
        continue
      shards = leaf.addressable_shards
      assert len(shards) == 8, name
      for s in shards:
        assert s.data.shape[axis] == NUM_CLASSES // model, (name, s.data.shape)
  for leaf in jax.tree.leaves(dstate.params["model"]):
    assert leaf.sharding.is_fully_replicated


def test_resumed_sharded_checkpoint_continues_identically(trained, tmp_path):
  """Two steps, an orbax save of the sharded state, a restore into the sharded template, and one
  more step give exactly the uninterrupted three-step run."""
  run = trained["meshes"][(2, 4)]
  driver, batches = run["driver"], trained["batches"]
  dstate, _ = _run(driver, run["init"], batches[:2])
  ckpt = checkpoints.Checkpoints(str(tmp_path), keep=1)
  try:
    saved = driver.get_state(dstate)
    ckpt.save(2, saved, data_state={"index": 2}, meta={"note": "sharded"})
    ckpt.wait()
    template = driver.get_state(driver.put_state(run["init"]))
    restored, data_state, meta = ckpt.restore_latest(template)
  finally:
    ckpt.close()
  assert data_state == {"index": 2} and meta == {"note": "sharded"}
  for name in trained["objective"].class_axes:  # restored into the shards, not gathered
    got, want = restored.params["loss"][name], template.params["loss"][name]
    assert got.sharding == want.sharding and not got.sharding.is_fully_replicated, name
  chex.assert_trees_all_equal(_host(restored.params), _host(saved.params))
  resumed, _ = _run(driver, restored, batches[2:])
  chex.assert_trees_all_equal(_host(driver.get_state(resumed)), run["state"])


@pytest.mark.parametrize("name,mesh_shape", [
    ("softmax", (2, 4)), ("group_softmax_bias", (4, 2)), ("mpa", (2, 4)),
    ("subcenter_arcface", (4, 2))], ids=lambda v: f"{v[0]}x{v[1]}" if isinstance(v, tuple) else v)
def test_top1_merged_across_class_blocks_equals_argmax(name, mesh_shape):
  """Test-time top-1 from class blocks (each device its C / model classes) equals the argmax of
  the full logits, ties to the lower class across blocks included."""
  objective = objectives.build_objective(_config(name), num_classes=NUM_CLASSES,
                                         steps_per_epoch=1)
  rng = np.random.default_rng(1)
  features = rng.normal(size=(40, 6)).astype(np.float32)
  params = objective.init(jax.random.PRNGKey(0), features)
  # Class 6 (last block) copies class 1 (first block) in every array: exact ties across blocks.
  params = {k: np.asarray(v).copy() for k, v in params.items()}
  for k, axis in objective.class_axes.items():
    v = np.moveaxis(params[k], axis, 0)
    v[6] = v[1]
    params[k] = np.moveaxis(v, 0, axis)
  want = np.asarray(jax.numpy.argmax(objective.logits(features, params), axis=1))
  assert np.any(want == 1), "no row ties between classes 1 and 6; the check would be empty"
  got = class_parallel.top1_predictions(objective.logits, features, params,
                                        mesh=class_parallel.make_mesh(*mesh_shape),
                                        class_axes=objective.class_axes, block=3)
  np.testing.assert_array_equal(got, want)
  assert not np.any(got == 6)   # a tie goes to class 1


def test_config_errors():
  c = _config("cosface")
  c.mesh = (2, 2)
  with pytest.raises(ValueError, match=r"config.mesh=\(2, 2\) holds 4 devices; the run has 8"):
    checks.check_config(c)
  c.mesh = (2, 4)
  checks.check_config(c)
  c.parallel = "pmap"
  with pytest.raises(ValueError, match="config.parallel='shard_map'"):
    checks.check_config(c)
  c = _config("triplet")
  c.mesh = (-1, 4)
  with pytest.raises(ValueError, match=r"config.loss.name='triplet' .* does not take "
                                       r"class_axis_name. Losses that do: \[.*'cosface'"):
    checks.check_config(c)
  c = _config("cosface")
  c.mesh, c.loss.aux_name = (4, 2), "triplet"
  with pytest.raises(ValueError, match="config.loss.aux_name='triplet'"):
    checks.check_config(c)
  c = _config("cosface")
  c.mesh, c.optimizer.grad_clip_norm = (2, 4), 1.0
  with pytest.raises(ValueError, match="config.optimizer.grad_clip_norm=1.0 clips by the global"):
    checks.check_config(c)
  c.optimizer.grad_clip_norm = 0.0
  with pytest.raises(ValueError, match="the 10 classes .* do not split into 4 equal blocks"):
    objectives.check_class_sharding(c, model=4, num_classes=10)
  c.mesh = (2, "4")
  with pytest.raises(ValueError, match="config.mesh must be two integers"):
    checks.check_config(c)


def test_train_and_evaluate_on_a_mesh(tmp_path):
  """configs/scale/million_classes.py:smoke through the whole loop on a (4, 2) mesh: the state
  is created in its shards, trained, checkpointed and restored in its shards, and the top-1
  error merged from the class blocks equals that of the full logits."""
  from configs.scale import million_classes  # pylint: disable=g-import-not-at-top
  from dmlax import metrics  # pylint: disable=g-import-not-at-top
  from dmlax.train import loop  # pylint: disable=g-import-not-at-top
  from dmlax.train import run as run_lib  # pylint: disable=g-import-not-at-top
  config = million_classes.get_config("smoke")
  config.num_train_steps = 2
  results = loop.train_and_evaluate(config, str(tmp_path))
  assert results["status"] == "done" and results["steps"] == 2
  run = run_lib.setup(config, str(tmp_path))
  assert run.state.params["loss"]["classifier"].sharding.spec == P(None, "model")
  state = loop.restore(run)
  w = state.params["loss"]["classifier"]
  assert w.sharding.spec == P(None, "model") and w.addressable_shards[0].data.shape == (16, 5)
  emb, labels = run.evaluator.embed(state, run.data.info.eval_split)
  logits = run.objective.logits(emb, {"classifier": np.asarray(w)})
  assert results["final"]["top1_error"] == pytest.approx(metrics.topk_error(logits, labels, 1))


def test_million_classes_config_checks():
  from configs.scale import million_classes  # pylint: disable=g-import-not-at-top
  c = million_classes.get_config("dataset=casia_webface")
  assert tuple(c.mesh) == (1, 8) and c.parallel == "shard_map"
  checks.check_config(c)   # the mesh spans the 8 devices; W-Softmax takes class_axis_name
  with pytest.raises(ValueError, match="the 10575 classes .* do not split into 8 equal blocks"):
    objectives.check_class_sharding(c, model=8, num_classes=10575)   # CASIA-WebFace on (1, 8)
  with pytest.raises(ValueError, match="needs dataset=<name>"):
    million_classes.get_config()
