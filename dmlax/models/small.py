"""Small CNNs of the papers, and one sized for the embedded 8x8 default dataset.

- `prelu_mnist`, `prelu_cifar`: the nets of Liu et al., "Large-Margin Softmax Loss for
  Convolutional Neural Networks" (ICML 2016, Table 1 / appendix), which the W-Softmax paper
  trains (section 5.1): 3x3 convolutions, stride 1, padding 1, each followed by PReLU and then
  BatchNorm ("Batch normalization is used after PReLU"), 2x2 max pools with stride 2,
  xavier-initialised weights. MNIST: conv0.x [64]x1, conv1.x [64]x3, conv2.x [64]x3,
  conv3.x [64]x3; CIFAR: [64]x1, [64]x4, [96]x4, [128]x4. The backbone returns the flattened
  last map; the fully connected layer of width M (256 in Liu et al.; W-Softmax section 5.2
  sweeps M) is the head's `embedding_dim`.
- `five_layer_cnn`: the SGSL Fashion-MNIST visualisation net (AAAI 2023, "Feature Distribution
  Visualization": a five-layer CNN whose last hidden layer has 3 outputs). The paper gives no
  further detail; here: four 3x3 conv-PReLU-BN layers [32, 32] pool [64, 64] pool, then the
  head's 3-wide linear layer.
- `small_cnn`: conv-BN-ReLU [32, 64] pool [128], returning the map for a pooling head; sized for
  8x8 single-channel `digits` images (4x4x128 before pooling) and works on any size.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dmlax.models import layers


class PReLU(nn.Module):
  """Channel-wise PReLU, `max(x, 0) + a_c min(x, 0)`, a_c initialised to 0.25 (He et al. 2015)."""
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    alpha = self.param("alpha", nn.initializers.constant(0.25), (x.shape[-1],), jnp.float32)
    return jnp.where(x >= 0, x, alpha.astype(self.dtype) * x)


class PReLUNet(nn.Module):
  """Conv-PReLU-BN stages with 2x2 max pools, returning the flattened map.

  Attributes:
    stages: (channels, number of 3x3 convs, max pool after the stage) per stage.

  Example:
    >>> net = PReLUNet(stages=((8, 1, False), (8, 2, True)))
    >>> v = net.init(jax.random.key(0), jnp.zeros((2, 28, 28, 1)), train=False)
    >>> net.apply(v, jnp.zeros((2, 28, 28, 1)), train=False).shape
    (2, 1568)
  """
  stages: Sequence[tuple[int, int, bool]]
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    x = jnp.asarray(x, self.dtype)
    for s, (channels, num_convs, pool) in enumerate(self.stages):
      for c in range(num_convs):
        x = nn.Conv(channels, (3, 3), padding=((1, 1), (1, 1)),
                    kernel_init=nn.initializers.xavier_uniform(), dtype=self.dtype,
                    param_dtype=jnp.float32, name=f"conv{s}_{c}")(x)
        x = PReLU(dtype=self.dtype, name=f"prelu{s}_{c}")(x)
        x = layers.batch_norm(train, axis_name=self.bn_axis_name, dtype=self.dtype,
                              name=f"bn{s}_{c}")(x)
      if pool:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
    return x.reshape(x.shape[0], -1)


class SmallCNN(nn.Module):
  """conv-BN-ReLU [32, 64], 2x2 max pool, conv-BN-ReLU [128]; returns the map.

  Example:
    >>> net = SmallCNN()
    >>> v = net.init(jax.random.key(0), jnp.zeros((2, 8, 8, 1)), train=False)
    >>> net.apply(v, jnp.zeros((2, 8, 8, 1)), train=False).shape
    (2, 4, 4, 128)
  """
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    x = jnp.asarray(x, self.dtype)
    for i, channels in enumerate((32, 64, 128)):
      x = layers.conv(channels, 3, padding=1, dtype=self.dtype, name=f"conv{i}")(x)
      x = layers.batch_norm(train, axis_name=self.bn_axis_name, dtype=self.dtype,
                            name=f"bn{i}")(x)
      x = nn.relu(x)
      if i == 1:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
    return x


def prelu_mnist(**kwargs) -> PReLUNet:
  """Liu et al.'s MNIST net (L-Softmax Table 1), conv-PReLU-BN."""
  return PReLUNet(stages=((64, 1, False), (64, 3, True), (64, 3, True), (64, 3, True)), **kwargs)


def prelu_cifar(**kwargs) -> PReLUNet:
  """Liu et al.'s CIFAR-10/100 net (L-Softmax Table 1), conv-PReLU-BN."""
  return PReLUNet(stages=((64, 1, False), (64, 4, True), (96, 4, True), (128, 4, True)),
                  **kwargs)


def five_layer_cnn(**kwargs) -> PReLUNet:
  """The SGSL Fashion-MNIST visualisation net (4 conv layers; the head adds the 3-wide 5th)."""
  return PReLUNet(stages=((32, 2, True), (64, 2, True)), **kwargs)


def small_cnn(**kwargs) -> SmallCNN:
  """A small conv-BN-ReLU net for the embedded 8x8 `digits` data."""
  return SmallCNN(**kwargs)
