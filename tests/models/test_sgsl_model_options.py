"""SGSL's model options as its authors ran them: fastreid's RBR, BN neck with scale, last stride 1.

References are written here: the last bottleneck recomputed with `jax.lax` convolutions and
eval-mode BatchNorm in float64 NumPy arithmetic from the same parameters.
"""

import math

import chex
import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmlax import models
from dmlax.models import resnet


def _random_variables(module, x, seed=0):
  shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), x, train=False))
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


def _conv(x, kernel, stride=1, padding=0):
  return np.asarray(jax.lax.conv_general_dilated(
      jnp.asarray(x, jnp.float32), jnp.asarray(kernel), (stride, stride),
      ((padding, padding), (padding, padding)),
      dimension_numbers=("NHWC", "HWIO", "NHWC"), precision="highest"), np.float64)


def _bn(x, params, stats):
  return ((x - np.asarray(stats["mean"])) / np.sqrt(np.asarray(stats["var"]) + 1e-5)
          * np.asarray(params["scale"]) + np.asarray(params["bias"]))


@pytest.mark.parametrize("variant", ["paper", "fastreid"])
def test_rbr_variants_match_a_hand_computed_last_bottleneck(variant):
  """"paper": conv3 path keeps its inner ReLUs; "fastreid": fastreid's one shared `relu` module
  set to identity removes them too. Both drop bn3 and the ReLU after the residual sum."""
  x = jax.random.normal(jax.random.key(1), (2, 16, 16, 3))
  net = resnet.ResNet(block="bottleneck", stage_sizes=(1, 1, 1, 1), remove_last_bn_relu=True,
                      rbr_variant=variant)
  v = _random_variables(net, x)
  out, state = net.apply(v, x, train=False, capture_intermediates=True)
  # The last block's input is the third stage's output.
  h = np.asarray(state["intermediates"]["layer3_0"]["__call__"][0], np.float64)
  p, s = v["params"]["layer4_0"], v["batch_stats"]["layer4_0"]
  relu = (lambda a: np.maximum(a, 0.0)) if variant == "paper" else (lambda a: a)
  y = relu(_bn(_conv(h, p["conv1"]["kernel"]), p["bn1"], s["bn1"]))
  y = relu(_bn(_conv(y, p["conv2"]["kernel"], stride=2, padding=1), p["bn2"], s["bn2"]))
  y = _conv(y, p["conv3"]["kernel"])
  identity = _bn(_conv(h, p["downsample_0"]["kernel"], stride=2), p["downsample_1"],
                 s["downsample_1"])
  chex.assert_trees_all_close(np.asarray(out, np.float64), y + identity, atol=1e-4, rtol=1e-4)


def test_rbr_variants_differ_and_have_the_same_parameters():
  x = jax.random.normal(jax.random.key(2), (2, 16, 16, 3))
  paper = resnet.ResNet(block="bottleneck", stage_sizes=(1, 1, 1, 1), remove_last_bn_relu=True)
  fastreid = resnet.ResNet(block="bottleneck", stage_sizes=(1, 1, 1, 1),
                           remove_last_bn_relu=True, rbr_variant="fastreid")
  v = _random_variables(paper, x)
  a = paper.apply(v, x, train=False)
  b = fastreid.apply(v, x, train=False)
  assert float(jnp.max(jnp.abs(a - b))) > 1e-3


def test_last_stride_one_doubles_the_final_map_and_keeps_the_parameters():
  x = jnp.zeros((1, 64, 64, 3))
  two = jax.eval_shape(lambda: models.get_model("resnet50").init(jax.random.key(0), x))
  one_model = models.get_model("resnet50", last_stride=1)
  one = jax.eval_shape(lambda: one_model.init(jax.random.key(0), x))
  chex.assert_trees_all_equal_shapes(two, one)
  trunk = resnet.resnet50(last_stride=1)
  fmap = jax.eval_shape(lambda: trunk.apply(trunk.init(jax.random.key(0), x, train=False), x,
                                            train=False))
  assert fmap.shape == (1, 4, 4, 2048)  # 64 / 16; stride 2 would give 2 x 2


def test_bn_neck_scale_is_a_learned_scale_without_bias():
  model = models.get_model("small_cnn", bn_neck=True, bn_neck_scale=True, embedding_dim=6)
  x = jax.random.normal(jax.random.key(3), (8, 8, 8, 1))
  v = flax.core.unfreeze(model.init(jax.random.key(0), x, train=False))
  assert set(v["params"]["head"]["bn_neck"]) == {"scale"}
  chex.assert_trees_all_close(v["params"]["head"]["bn_neck"]["scale"], jnp.ones(6))
  v["params"]["head"]["bn_neck"]["scale"] = jnp.arange(1.0, 7.0)
  plain = models.get_model("small_cnn", bn_neck=True, embedding_dim=6)
  vp = {"params": {k: val for k, val in v["params"].items()}, "batch_stats": v["batch_stats"]}
  vp["params"]["head"] = {k: val for k, val in v["params"]["head"].items() if k != "bn_neck"}
  scaled, _ = model.apply(v, x, train=True, mutable=["batch_stats"])
  unscaled, _ = plain.apply(vp, x, train=True, mutable=["batch_stats"])
  chex.assert_trees_all_close(scaled, unscaled * jnp.arange(1.0, 7.0), atol=1e-5)


def test_bad_sgsl_options_name_the_problem():
  with pytest.raises(ValueError, match="rbr_variant must be one of"):
    models.get_model("resnet50", rbr=True, rbr_variant="both")
  with pytest.raises(ValueError, match="ResNets only"):
    models.get_model("vgg16_bn", include_fc=False, rbr=True, rbr_variant="fastreid")
  with pytest.raises(ValueError, match="last_stride must be 1 or 2"):
    models.get_model("resnet50", last_stride=3)
  with pytest.raises(ValueError, match="bn_neck_scale=True needs bn_neck=True"):
    models.get_model("resnet50", bn_neck_scale=True)
  with pytest.raises(ValueError, match="unknown keyword"):
    models.get_model("bn_inception", last_stride=1)


def test_embedding_without_bias():
  shapes = jax.eval_shape(lambda: models.get_model(
      "small_cnn", embedding_dim=6, embedding_bias=False).init(
          jax.random.key(0), jnp.zeros((1, 8, 8, 1))))
  assert set(shapes["params"]["head"]["embedding"]) == {"kernel"}
