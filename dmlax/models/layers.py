"""Convolution, BatchNorm and pooling layers with PyTorch's conventions, shared by the backbones.

The backbones keep torchvision's (and Cadene's) module names so that `load_pretrained` maps a
state-dict key to a Flax path by a fixed rule. Padding is explicit and symmetric, as PyTorch's,
so that imported weights give the same outputs.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

# torchvision's ResNet/VGG initialisation: kaiming normal, fan-out, ReLU gain.
conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def conv(features: int, kernel: int, *, stride: int = 1, padding: int = 0, groups: int = 1,
         use_bias: bool = False, dtype: Any = jnp.float32, name: str | None = None) -> nn.Conv:
  """A 2-D convolution with PyTorch's symmetric padding and float32 parameters."""
  return nn.Conv(
      features, (kernel, kernel), strides=(stride, stride),
      padding=((padding, padding), (padding, padding)), feature_group_count=groups,
      use_bias=use_bias, kernel_init=conv_init, dtype=dtype, param_dtype=jnp.float32, name=name)


def batch_norm(train: bool, *, axis_name: str | None, dtype: Any = jnp.float32,
               name: str | None = None) -> nn.BatchNorm:
  """BatchNorm with PyTorch's defaults (momentum 0.1 there is 0.9 here, eps 1e-5)."""
  return nn.BatchNorm(
      use_running_average=not train, momentum=0.9, epsilon=1e-5, axis_name=axis_name,
      dtype=dtype, param_dtype=jnp.float32, name=name)


def max_pool_ceil(x: jax.Array, window: int, stride: int) -> jax.Array:
  """Max pooling with PyTorch's `ceil_mode=True` and no padding (Cadene's BN-Inception).

  The output has `ceil((H - window) / stride) + 1` rows; the last window, which may run past the
  edge, sees only real pixels (PyTorch drops a window that would start past the input).
  """
  pads = []
  for size in x.shape[1:3]:
    out = math.ceil((size - window) / stride) + 1
    if (out - 1) * stride >= size:
      out -= 1
    pads.append((0, max(0, (out - 1) * stride + window - size)))
  return nn.max_pool(x, (window, window), strides=(stride, stride), padding=tuple(pads))


def adaptive_avg_pool(x: jax.Array, output_size: tuple[int, int]) -> jax.Array:
  """PyTorch's `AdaptiveAvgPool2d`: bin i spans [floor(i H / o), ceil((i + 1) H / o))."""
  height, width = x.shape[1:3]
  out_h, out_w = output_size
  if (height, width) == (out_h, out_w):
    return x

  def bins(size, out):
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]

  rows = [jnp.stack([jnp.mean(x[:, h0:h1, w0:w1], axis=(1, 2)) for w0, w1 in bins(width, out_w)],
                    axis=1) for h0, h1 in bins(height, out_h)]
  return jnp.stack(rows, axis=1)


avg_pool_3x3_same = functools.partial(
    nn.avg_pool, window_shape=(3, 3), strides=(1, 1), padding=((1, 1), (1, 1)),
    count_include_pad=True)
