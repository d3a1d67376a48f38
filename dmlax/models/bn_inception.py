"""BN-Inception (Ioffe & Szegedy, ICML 2015) in Cadene's `pretrainedmodels.bninception` layout.

This is the backbone of ProxyAnchor (Kim et al. 2020), SoftTriple (Qian et al. 2019) and the MPA
paper (section 4.2: "Inception with batch normalization", cubic GeM, 512-d). Those repositories
load Cadene's ImageNet weights (`bn_inception-52deb4733.pth`), whose module names are flat
(`inception_3a_1x1`, `inception_3a_1x1_bn`, ...); this module uses the same names. Every
convolution has a bias and is followed by BatchNorm (eps 1e-5) and ReLU; max pools use PyTorch's
`ceil_mode=True`; the branch average pools are 3x3, stride 1, padding 1, counting the padding.
The backbone returns the inception_5b map (B, H/32, W/32, 1024); Cadene's 7x7 average pool and
classifier are replaced by the head.

Cadene's weights expect BGR images in [0, 255] minus (104, 117, 128); ProxyAnchor's repository
feeds them that way. That is the data pipeline's business; this module only computes.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from dmlax.models import layers

# name: (1x1, 3x3 reduce, 3x3, double 3x3 reduce, double 3x3, pool, pool proj, stride)
# 1x1 = 0 and pool proj = 0 mark the two grid-reduction modules (3c, 4e).
_MODULES = (
    ("3a", 64, 64, 64, 64, 96, "avg", 32, 1),
    ("3b", 64, 64, 96, 64, 96, "avg", 64, 1),
    ("3c", 0, 128, 160, 64, 96, "max", 0, 2),
    ("4a", 224, 64, 96, 96, 128, "avg", 128, 1),
    ("4b", 192, 96, 128, 96, 128, "avg", 128, 1),
    ("4c", 160, 128, 160, 128, 160, "avg", 128, 1),
    ("4d", 96, 128, 192, 160, 192, "avg", 128, 1),
    ("4e", 0, 128, 192, 192, 256, "max", 0, 2),
    ("5a", 352, 192, 320, 160, 224, "avg", 128, 1),
    ("5b", 352, 192, 320, 192, 224, "max", 128, 1),
)


class BNInception(nn.Module):
  """BN-Inception trunk.

  Example:
    >>> net = BNInception()
    >>> x = jnp.zeros((1, 64, 64, 3))
    >>> v = jax.eval_shape(lambda: net.init(jax.random.key(0), x, train=False))  # shapes only
    >>> jax.eval_shape(lambda v: net.apply(v, x, train=False), v).shape
    (1, 2, 2, 1024)
  """
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  def _conv_bn_relu(self, x, name: str, features: int, kernel: int, *, train: bool,
                    stride: int = 1, padding: int = 0):
    x = layers.conv(features, kernel, stride=stride, padding=padding, use_bias=True,
                    dtype=self.dtype, name=name)(x)
    x = layers.batch_norm(train, axis_name=self.bn_axis_name, dtype=self.dtype,
                          name=f"{name}_bn")(x)
    return nn.relu(x)

  def _inception(self, x, spec, *, train: bool):
    tag, n1x1, n3r, n3, nd3r, nd3, pool, nproj, stride = spec
    p = f"inception_{tag}"
    branches = []
    if n1x1:
      branches.append(self._conv_bn_relu(x, f"{p}_1x1", n1x1, 1, train=train))
    y = self._conv_bn_relu(x, f"{p}_3x3_reduce", n3r, 1, train=train)
    branches.append(self._conv_bn_relu(y, f"{p}_3x3", n3, 3, train=train, stride=stride,
                                       padding=1))
    y = self._conv_bn_relu(x, f"{p}_double_3x3_reduce", nd3r, 1, train=train)
    y = self._conv_bn_relu(y, f"{p}_double_3x3_1", nd3, 3, train=train, padding=1)
    branches.append(self._conv_bn_relu(y, f"{p}_double_3x3_2", nd3, 3, train=train,
                                       stride=stride, padding=1))
    if stride == 2:
      branches.append(layers.max_pool_ceil(x, 3, 2))
    else:
      if pool == "avg":
        y = layers.avg_pool_3x3_same(x)
      else:
        y = nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
      branches.append(self._conv_bn_relu(y, f"{p}_pool_proj", nproj, 1, train=train))
    return jnp.concatenate(branches, axis=-1)

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    x = jnp.asarray(x, self.dtype)
    x = self._conv_bn_relu(x, "conv1_7x7_s2", 64, 7, train=train, stride=2, padding=3)
    x = layers.max_pool_ceil(x, 3, 2)
    x = self._conv_bn_relu(x, "conv2_3x3_reduce", 64, 1, train=train)
    x = self._conv_bn_relu(x, "conv2_3x3", 192, 3, train=train, padding=1)
    x = layers.max_pool_ceil(x, 3, 2)
    for spec in _MODULES:
      x = self._inception(x, spec, train=train)
    return x


def bn_inception(**kwargs) -> BNInception:
  """BN-Inception trunk (Cadene's `bninception` less `last_linear`: 10,270,240 parameters).

  Parameter count checked in tests/models/test_pretrained.py.
  """
  return BNInception(**kwargs)
