"""W-Softmax's LFW networks: convolution counts (as the papers state them), shapes, residuals."""

import chex
import flax
import jax
import jax.numpy as jnp
import numpy as np

from dmlax import models
from dmlax.models import face


def _kernels(shapes):
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(shapes["params"]))
  return [(p, v.shape) for p, v in flat.items() if p[-1] == "kernel" and len(v.shape) == 4]


def _shapes(model, hw):
  return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, *hw, 3))))


def test_convolution_counts_are_the_papers():
  """W-Softmax Table 3: "17 convolution layers"; Table 4: SphereFace-64 "64 convolution
  layers"; SphereFace (CVPR 2017) Table 2: the 20-layer net."""
  assert len(_kernels(_shapes(models.get_model("liu_lfw17"), (160, 160)))) == 17
  assert len(_kernels(_shapes(models.get_model("sphereface20"), (64, 64)))) == 20
  assert len(_kernels(_shapes(models.get_model("sphereface64"), (64, 64)))) == 64


def test_feature_widths_and_bn():
  for name, hw, flat in (("liu_lfw17", (160, 160), 10 * 10 * 256),
                         ("sphereface64", (160, 160), 10 * 10 * 512)):
    model = models.get_model(name)
    shapes = _shapes(model, hw)
    assert shapes["params"]["head"]["embedding"]["kernel"].shape == (flat, 512)
  assert "batch_stats" not in _shapes(models.get_model("sphereface20"), (32, 32))
  assert "batch_stats" in _shapes(models.get_model("liu_lfw17"), (32, 32))


def test_sphere_unit_is_a_residual_of_two_prelu_convs():
  """Zeroing a unit's second convolution makes the unit the identity: the stage output equals
  the stage's first conv-PReLU."""
  net = face.SphereNet(units=(1,), widths=(4,))
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 3))
  v = flax.core.unfreeze(net.init(jax.random.key(0), x, train=False))
  v["params"]["conv1_0_2"]["kernel"] = jnp.zeros_like(v["params"]["conv1_0_2"]["kernel"])
  out = net.apply(v, x, train=False).reshape(2, 4, 4, 4)
  stem = jax.lax.conv_general_dilated(x, v["params"]["conv1_0"]["kernel"], (2, 2),
                                      ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                      precision="highest") + v["params"]["conv1_0"]["bias"]
  a = v["params"]["prelu1_0"]["alpha"]
  chex.assert_trees_all_close(out, jnp.where(stem >= 0, stem, a * stem), atol=1e-5)
  assert float(np.std(np.asarray(v["params"]["conv1_0_1"]["kernel"]))) < 0.02  # N(0, 0.01)
