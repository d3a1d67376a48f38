"""VGG-16 with BatchNorm (Simonyan & Zisserman, ICLR 2015) in torchvision's `vgg16_bn` layout.

`features_{i}` are torchvision's `features.{i}` (conv at i, BN at i+1, ReLU at i+2, max pool after
each block); `classifier_0` and `classifier_3` its two 4096-wide layers. With `include_fc=True`
(default) the backbone returns the 4096-d fc7 activations, the penultimate features of the GSL
paper's VGG16 (Table 2, D = 4096); torchvision's DropOut layers are left out, since the GSL
comparison uses backbones without DropOut. With `include_fc=False` it returns the last conv map
(B, H/32, W/32, 512) for a pooling head.

RBR: with `include_fc=False`, `remove_last_bn_relu=True` drops `features_41` (BN) and the ReLU
at index 42, so the last conv output goes straight into the final max pool.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from dmlax.models import layers

_CFG_D = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
# torchvision initialises VGG's linear layers with N(0, 0.01) and zero bias.
_fc_init = nn.initializers.normal(0.01)


class VGG16BN(nn.Module):
  """VGG-16-BN trunk.

  Example:
    >>> net = VGG16BN(include_fc=False)
    >>> v = net.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)), train=False)
    >>> net.apply(v, jnp.zeros((1, 64, 64, 3)), train=False).shape
    (1, 2, 2, 512)
  """
  include_fc: bool = True
  remove_last_bn_relu: bool = False
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    if self.remove_last_bn_relu and self.include_fc:
      raise ValueError("vgg16_bn: remove_last_bn_relu needs include_fc=False (with the fc "
                       "layers the backbone does not end in BN-ReLU)")
    x = jnp.asarray(x, self.dtype)
    index = 0
    last_conv = max(i for i, v in enumerate(_CFG_D) if v != "M")
    for position, v in enumerate(_CFG_D):
      if v == "M":
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
        index += 1
        continue
      x = layers.conv(v, 3, padding=1, use_bias=True, dtype=self.dtype,
                      name=f"features_{index}")(x)
      if not (position == last_conv and self.remove_last_bn_relu):
        x = layers.batch_norm(train, axis_name=self.bn_axis_name, dtype=self.dtype,
                              name=f"features_{index + 1}")(x)
        x = nn.relu(x)
      index += 3
    if not self.include_fc:
      return x
    x = layers.adaptive_avg_pool(x, (7, 7))
    # torchvision flattens NCHW; flattening in that order lets the fc6 weights load unchanged.
    x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)
    for name in ("classifier_0", "classifier_3"):
      x = nn.relu(nn.Dense(4096, kernel_init=_fc_init, dtype=self.dtype,
                           param_dtype=jnp.float32, name=name)(x))
    return x


def vgg16_bn(**kwargs) -> VGG16BN:
  """VGG-16-BN (torchvision `vgg16_bn` less `classifier.6`: 134,268,992 parameters).

  Parameter count checked in tests/models/test_models.py.
  """
  return VGG16BN(**kwargs)
