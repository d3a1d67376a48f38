"""The face-verification CNNs of the W-Softmax paper's LFW tables (Li & Wang, PR 2020, 5.5).

- `liu_lfw17` (Table 3, "the same as [23] with 17 convolution layers"): the LFW network of Liu
  et al., "Large-Margin Softmax Loss for Convolutional Neural Networks" (ICML 2016, Table 1, LFW
  column): conv0.x [3x3, 64] x 1 with stride 2, conv1.x [3x3, 64] x 4, 2x2 max pool, conv2.x
  [3x3, 256] x 4, pool, conv3.x [3x3, 256] x 4, pool, conv4.x [3x3, 256] x 4; 17 convolutions,
  then the fully connected layer of width 512 (the head's `embedding_dim`). Each convolution is
  followed by PReLU and then BatchNorm, as the W-Softmax paper builds Liu et al.'s nets (5.1:
  "Batch normalization is used after PReLU"); xavier-initialised weights (5.1).
- `sphereface64`, `sphereface20` (Table 4, "the ResNet called SphereFace-64 [24] with 64
  convolution layers"): Liu et al., "SphereFace" (CVPR 2017, Table 2), as its authors build it
  (wy1iu/sphereface `train/code/make_spherenet.py`): four stages of widths 64, 128, 256, 512,
  each a 3x3 stride-2 convolution with bias (xavier) and PReLU followed by residual units
  `x + prelu(conv(prelu(conv(x))))` of bias-free 3x3 convolutions (Gaussian std 0.01); 3, 8, 16,
  3 units for 64 layers (1, 2, 4, 1 for 20); no BatchNorm; then the 512-wide fully connected
  layer (the head's `embedding_dim`).
Both return the flattened last map (B, H' W' C), as Liu et al.'s nets feed their FC layer.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dmlax.models import layers
from dmlax.models.small import PReLU


class LiuLFW(nn.Module):
  """Conv-PReLU-BN stages; the first convolution has stride 2 (see the module docstring).

  Attributes:
    stages: (channels, number of 3x3 convs, stride of the stage's first conv, max pool after).
  """
  stages: Sequence[tuple[int, int, int, bool]]
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    x = jnp.asarray(x, self.dtype)
    for s, (channels, num_convs, stride, pool) in enumerate(self.stages):
      for c in range(num_convs):
        x = nn.Conv(channels, (3, 3), strides=(stride, stride) if c == 0 else (1, 1),
                    padding=((1, 1), (1, 1)), kernel_init=nn.initializers.xavier_uniform(),
                    dtype=self.dtype, param_dtype=jnp.float32, name=f"conv{s}_{c}")(x)
        x = PReLU(dtype=self.dtype, name=f"prelu{s}_{c}")(x)
        x = layers.batch_norm(train, axis_name=self.bn_axis_name, dtype=self.dtype,
                              name=f"bn{s}_{c}")(x)
      if pool:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
    return x.reshape(x.shape[0], -1)


class SphereNet(nn.Module):
  """SphereFace's residual network (see the module docstring).

  Attributes:
    units: residual units per stage, e.g. (3, 8, 16, 3) for SphereFace-64.
    widths: channels per stage.

  Example:
    >>> net = SphereNet(units=(1, 1, 1, 1), widths=(4, 4, 4, 4))
    >>> v = net.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)
    >>> net.apply(v, jnp.zeros((1, 32, 32, 3)), train=False).shape
    (1, 16)
  """
  units: Sequence[int]
  widths: Sequence[int] = (64, 128, 256, 512)
  bn_axis_name: str | None = None  # unused: SphereNet has no BatchNorm
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    del train
    x = jnp.asarray(x, self.dtype)
    conv = lambda width, stride, bias, init, name: nn.Conv(  # noqa: E731
        width, (3, 3), strides=(stride, stride), padding=((1, 1), (1, 1)), use_bias=bias,
        kernel_init=init, dtype=self.dtype, param_dtype=jnp.float32, name=name)
    for s, (num_units, width) in enumerate(zip(self.units, self.widths)):
      x = conv(width, 2, True, nn.initializers.xavier_uniform(), f"conv{s + 1}_0")(x)
      x = PReLU(dtype=self.dtype, name=f"prelu{s + 1}_0")(x)
      for u in range(num_units):
        y = x
        for k in (1, 2):
          y = conv(width, 1, False, nn.initializers.normal(0.01), f"conv{s + 1}_{u}_{k}")(y)
          y = PReLU(dtype=self.dtype, name=f"prelu{s + 1}_{u}_{k}")(y)
        x = x + y
    return x.reshape(x.shape[0], -1)


def liu_lfw17(**kwargs) -> LiuLFW:
  """Liu et al.'s 17-convolution LFW network (W-Softmax Table 3)."""
  return LiuLFW(stages=((64, 1, 2, False), (64, 4, 1, True), (256, 4, 1, True),
                        (256, 4, 1, True), (256, 4, 1, False)), **kwargs)


def sphereface64(**kwargs) -> SphereNet:
  """SphereFace-64 (W-Softmax Table 4): 4 + 2 x (3 + 8 + 16 + 3) = 64 convolutions."""
  return SphereNet(units=(3, 8, 16, 3), **kwargs)


def sphereface20(**kwargs) -> SphereNet:
  """SphereFace-20: 4 + 2 x (1 + 2 + 4 + 1) = 20 convolutions."""
  return SphereNet(units=(1, 2, 4, 1), **kwargs)
