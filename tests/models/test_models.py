"""Backbones and heads: shapes, parameter counts, RBR / extra BN-ReLU, pooling, containers."""

import math

import chex
import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmlax import models
from dmlax.models import heads
from dmlax.models import resnet


def _shapes(model, image_shape):
  return jax.eval_shape(
      lambda: model.init(jax.random.key(0), jnp.zeros(image_shape), train=False))


def _paths(tree):
  return set(flax.traverse_util.flatten_dict(flax.core.unfreeze(tree), sep="/"))


def _random_like(shapes, seed=0):
  """Random normal arrays (positive for BatchNorm variances) in the structure of `shapes`."""
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(shapes))
  rng = np.random.default_rng(seed)
  out = {}
  for path, leaf in flat.items():
    value = rng.normal(size=leaf.shape) / math.sqrt(max(1, math.prod(leaf.shape[:-1])))
    if path[-1] == "var":
      value = 0.5 + rng.random(leaf.shape)
    elif path[-1] == "scale":
      value = 1.0 + 0.1 * rng.normal(size=leaf.shape)
    out[path] = jnp.asarray(value, jnp.float32)
  return flax.traverse_util.unflatten_dict(out)


def _count(tree):
  return sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(tree))


# Published ImageNet parameter counts, including the 1000-way classifier (torchvision's model
# documentation: resnet18 11,689,512; resnet50 25,557,032; resnext50_32x4d 25,028,904;
# vgg16_bn 138,365,992). The classifier is D * 1000 + 1000; our backbones end before it.
@pytest.mark.parametrize("name, dim, published", [
    ("resnet18", 512, 11_689_512),
    ("resnet50", 2048, 25_557_032),
    ("resnext50_32x4d", 2048, 25_028_904),
    ("vgg16_bn", 4096, 138_365_992),
])
def test_parameter_counts_match_published(name, dim, published):
  model = models.get_model(name)
  shapes = _shapes(model, (1, 64, 64, 3))
  out = jax.eval_shape(lambda v: model.apply(v, jnp.zeros((3, 64, 64, 3)), train=False), shapes)
  chex.assert_shape(out, (3, dim))
  assert _count(shapes["params"]) + dim * 1000 + 1000 == published


@pytest.mark.parametrize("name, image_shape, dim", [
    ("bn_inception", (2, 64, 64, 3), 1024),
    ("prelu_mnist", (2, 28, 28, 1), 256),
    ("prelu_cifar", (2, 32, 32, 3), 256),
    ("five_layer_cnn", (2, 28, 28, 1), 3),
    ("small_cnn", (2, 8, 8, 1), 64),
])
def test_output_shapes(name, image_shape, dim):
  model = models.get_model(name)
  shapes = _shapes(model, image_shape)
  out = jax.eval_shape(lambda v: model.apply(v, jnp.zeros(image_shape), train=False), shapes)
  chex.assert_shape(out, (image_shape[0], dim))
  assert out.dtype == jnp.float32


def test_liu_et_al_layer_counts():
  """L-Softmax Table 1: MNIST has 10 conv layers of 64; CIFAR 13 with 64/96/128."""
  def convs(name, shape):
    params = _shapes(models.get_model(name), shape)["params"]["backbone"]
    return [v["kernel"].shape[-1] for k, v in sorted(params.items()) if k.startswith("conv")]
  assert convs("prelu_mnist", (1, 28, 28, 1)) == [64] * 10
  assert sorted(convs("prelu_cifar", (1, 32, 32, 3))) == [64] * 5 + [96] * 4 + [128] * 4
  params = _shapes(models.get_model("prelu_cifar", embedding_dim=9), (1, 32, 32, 3))["params"]
  chex.assert_shape(params["head"]["embedding"]["kernel"], (4 * 4 * 128, 9))


@pytest.mark.parametrize("name, removed", [
    ("resnet50", "layer4_2/bn3"),
    ("resnet18", "layer4_1/bn2"),
    ("resnext50_32x4d", "layer4_2/bn3"),
])
def test_rbr_removes_exactly_the_last_bn(name, removed):
  base = _shapes(models.get_model(name), (1, 32, 32, 3))
  rbr = _shapes(models.get_model(name, rbr=True), (1, 32, 32, 3))
  assert _paths(base["params"]) - _paths(rbr["params"]) == {
      f"backbone/{removed}/scale", f"backbone/{removed}/bias"}
  assert _paths(base["batch_stats"]) - _paths(rbr["batch_stats"]) == {
      f"backbone/{removed}/mean", f"backbone/{removed}/var"}
  assert _paths(rbr["params"]) <= _paths(base["params"])


def test_rbr_vgg_removes_features_41():
  base = _shapes(models.get_model("vgg16_bn", include_fc=False), (1, 32, 32, 3))
  rbr = _shapes(models.get_model("vgg16_bn", include_fc=False, rbr=True), (1, 32, 32, 3))
  assert _paths(base["params"]) - _paths(rbr["params"]) == {
      "backbone/features_41/scale", "backbone/features_41/bias"}
  with pytest.raises(ValueError, match="include_fc=False"):
    _shapes(models.get_model("vgg16_bn", rbr=True), (1, 32, 32, 3))


def test_rbr_output_is_the_residual_sum_without_bn_and_relu():
  """With the removed BN set to identity, the full trunk's map is exactly relu(RBR map).

  A one-block-per-stage bottleneck ResNet keeps the compile small; RBR acts in the same code.
  """
  x = jax.random.normal(jax.random.key(1), (2, 16, 16, 3))
  full = resnet.ResNet(block="bottleneck", stage_sizes=(1, 1, 1, 1))
  cut = resnet.ResNet(block="bottleneck", stage_sizes=(1, 1, 1, 1), remove_last_bn_relu=True)
  v = flax.core.unfreeze(_random_like(jax.eval_shape(
      lambda: cut.init(jax.random.key(0), x, train=False))))
  v_full = jax.tree_util.tree_map(lambda a: a, v)
  channels = v["params"]["layer4_0"]["conv3"]["kernel"].shape[-1]
  v_full["params"]["layer4_0"]["bn3"] = {"scale": jnp.ones(channels), "bias": jnp.zeros(channels)}
  v_full["batch_stats"]["layer4_0"]["bn3"] = {"mean": jnp.zeros(channels),
                                              "var": jnp.full(channels, 1.0 - 1e-5)}
  out_cut = jax.jit(lambda v: cut.apply(v, x, train=False))(v)
  out_full = jax.jit(lambda v: full.apply(v, x, train=False))(v_full)
  assert float(jnp.min(out_cut)) < 0.0  # RBR's map is not rectified
  chex.assert_trees_all_close(out_full, jax.nn.relu(out_cut), atol=1e-5)


@pytest.mark.parametrize("n", [1, 3])
def test_extra_bn_relu_adds_exactly_n_blocks(n):
  base = _shapes(models.get_model("resnet18", bn_neck=True), (1, 32, 32, 3))
  extra = _shapes(models.get_model("resnet18", bn_neck=True, extra_bn_relu=n), (1, 32, 32, 3))
  added = _paths(extra["params"]) - _paths(base["params"])
  assert added == {f"head/extra_bn_{i}/{leaf}" for i in range(n) for leaf in ("scale", "bias")}
  assert _paths(base["params"]) <= _paths(extra["params"])
  assert _paths(extra["batch_stats"]) - _paths(base["batch_stats"]) == {
      f"head/extra_bn_{i}/{leaf}" for i in range(n) for leaf in ("mean", "var")}


def test_bn_neck_has_no_scale_or_bias():
  shapes = _shapes(models.get_model("small_cnn", bn_neck=True), (1, 8, 8, 1))
  assert "bn_neck" not in shapes["params"]["head"]
  assert set(shapes["batch_stats"]["head"]["bn_neck"]) == {"mean", "var"}


def test_gem_p1_is_average_pooling_and_matches_numpy():
  x = np.abs(np.random.default_rng(0).normal(size=(3, 5, 4, 6))) + 0.1
  chex.assert_trees_all_close(heads.gem_pool(jnp.asarray(x, jnp.float32), 1.0),
                              x.mean(axis=(1, 2)), rtol=1e-5)
  ref = np.mean(np.maximum(x, 1e-6) ** 3.0, axis=(1, 2)) ** (1.0 / 3.0)
  chex.assert_trees_all_close(heads.gem_pool(jnp.asarray(x, jnp.float32), 3.0), ref, rtol=1e-5)
  chex.assert_trees_all_close(heads.global_pool(jnp.asarray(x, jnp.float32), "avg+max"),
                              x.mean(axis=(1, 2)) + x.max(axis=(1, 2)), rtol=1e-5)


def test_learned_gem_p_is_a_parameter_with_a_gradient():
  head = heads.EmbeddingHead(pooling="gem", learn_gem_p=True, gem_p=3.0)
  x = jax.random.uniform(jax.random.key(0), (2, 4, 4, 8))
  v = head.init(jax.random.key(1), x, train=False)
  assert float(v["params"]["gem_p"]) == 3.0
  grads = jax.jit(jax.grad(lambda p: jnp.sum(head.apply({"params": p}, x, train=False))))(
      v["params"])
  assert float(jnp.abs(grads["gem_p"])) > 0.0


def test_head_l2_dropout_and_train_mode():
  head = heads.EmbeddingHead(pooling="avg", embedding_dim=16, extra_bn_relu=1,
                             l2_normalize=True, feature_dropout=0.5)
  x = jax.random.normal(jax.random.key(0), (4, 3, 3, 8))
  v = head.init(jax.random.key(1), x, train=False)
  evaluated = jax.jit(lambda v: head.apply(v, x, train=False))(v)
  chex.assert_trees_all_close(jnp.linalg.norm(evaluated, axis=-1), jnp.ones(4), atol=1e-5)
  out, state = jax.jit(lambda v: head.apply(v, x, train=True, mutable=["batch_stats"],
                                            rngs={"dropout": jax.random.key(2)}))(v)
  dropped = np.asarray(out) == 0.0
  assert 0 < dropped.sum() < dropped.size
  assert not jax.tree_util.tree_all(jax.tree_util.tree_map(
      lambda a, b: bool(jnp.all(a == b)), state["batch_stats"], v["batch_stats"]))


def test_bfloat16_compute_keeps_float32_params_and_is_close():
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 1))
  m32 = models.get_model("small_cnn")
  m16 = models.get_model("small_cnn", dtype=jnp.bfloat16)
  v = jax.jit(lambda: m16.init(jax.random.key(1), x, train=False))()
  assert all(l.dtype == jnp.float32 for l in jax.tree_util.tree_leaves(v))
  out16 = jax.jit(lambda v: m16.apply(v, x, train=False))(v)
  assert out16.dtype == jnp.float32
  out32 = jax.jit(lambda v: m32.apply(v, x, train=False))(v)
  chex.assert_trees_all_close(out16, out32, atol=0.05, rtol=0.05)


def test_cross_replica_batch_norm_equals_full_batch():
  """Under pmap with bn_axis_name, train-mode features equal the single-device full batch."""
  n = jax.local_device_count()
  x = jax.random.normal(jax.random.key(0), (2 * n, 8, 8, 1))
  single = models.get_model("small_cnn", bn_neck=True)
  sharded = models.get_model("small_cnn", bn_neck=True, bn_axis_name="batch")
  v = jax.jit(lambda: single.init(jax.random.key(1), x, train=False))()
  ref, _ = jax.jit(lambda v: single.apply(v, x, train=True, mutable=["batch_stats"]))(v)
  out, _ = jax.pmap(lambda xs: sharded.apply(v, xs, train=True, mutable=["batch_stats"]),
                    axis_name="batch")(x.reshape(n, 2, 8, 8, 1))
  # Summation order differs between one device and a psum over eight: float32 round-off only.
  chex.assert_trees_all_close(out.reshape(2 * n, -1), ref, atol=1e-4)


def test_adversarial_dropout_mask_matches_numpy_reference():
  rng = np.random.default_rng(0)
  h, g = rng.normal(size=(3, 50)), rng.normal(size=(3, 50))
  base = (rng.random((3, 50)) > 0.3).astype(np.float64)
  mask = np.asarray(heads.adversarial_dropout_mask(jnp.asarray(h), jnp.asarray(g), rate=0.1,
                                                   base_mask=jnp.asarray(base)))
  gain = g * h * (1 - 2 * base)
  for row in range(3):
    order = np.argsort(-gain[row])[:5]
    flip = [i for i in order if gain[row, i] > 0]
    expected = base[row].copy()
    expected[flip] = 1 - expected[flip]
    np.testing.assert_array_equal(mask[row], expected)
  # With the all-ones default, it only drops, and drops the components whose loss gain is largest.
  ones = np.asarray(heads.adversarial_dropout_mask(jnp.asarray(h), jnp.asarray(g), rate=0.1))
  assert set(np.unique(ones)) <= {0.0, 1.0} and (ones == 0).sum(axis=1).max() <= 5


def test_classifier_and_proxy_containers():
  f = jnp.zeros((4, 32))
  clf = models.ClassifierWeights(num_classes=7)
  w = clf.apply(clf.init(jax.random.key(0), f), f)
  chex.assert_shape(w, (32, 7))
  assert float(jnp.max(jnp.abs(w))) <= 1 / math.sqrt(32)  # PyTorch nn.Linear's bound
  px = models.Proxies(num_classes=5, num_proxies=3)
  chex.assert_shape(px.apply(px.init(jax.random.key(0), f), f), (5, 3, 32))
  clf = models.ClassifierWeights(7, init=jax.nn.initializers.ones)
  chex.assert_trees_all_equal(clf.apply(clf.init(jax.random.key(0), f), f), jnp.ones((32, 7)))
  b = models.ClassifierBias(num_classes=7)
  chex.assert_shape(b.apply(b.init(jax.random.key(0))), (7,))


def test_bad_configuration_raises_value_error():
  with pytest.raises(ValueError, match="known models: resnet18"):
    models.get_model("resnet101")
  with pytest.raises(ValueError, match="unknown keyword"):
    models.get_model("resnet50", embeding_dim=3)
  with pytest.raises(ValueError, match="rbr is defined"):
    models.get_model("bn_inception", rbr=True)
  with pytest.raises(ValueError, match="pooling must be"):
    models.get_model("resnet50", pooling="median")
  with pytest.raises(ValueError, match="pooling='none'"):
    _shapes(models.get_model("small_cnn", pooling="none"), (1, 8, 8, 1))
  with pytest.raises(ValueError, match="NHWC"):
    _shapes(models.get_model("small_cnn"), (8, 8, 1))
