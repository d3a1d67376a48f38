"""ResNet-18/50 and ResNeXt-50 (32x4d) backbones in torchvision's layout (He et al., CVPR 2016;
Xie et al., CVPR 2017), returning the last feature map (B, H/32, W/32, C).

Module names follow torchvision's state dict: `conv1`, `bn1`, `layer{i}_{j}` (torchvision's
`layer{i}.{j}`) with `conv1..3`, `bn1..3`, `downsample_0` (conv) and `downsample_1` (BN). The
stride of a bottleneck sits on its 3x3 convolution (torchvision's "ResNet v1.5").

RBR (SGSL, AAAI 2023, "Remove the last BN-ReLU"): the backbone ends in BN-ReLU, and a BN neck
on top makes the last layers BN-ReLU-BN. With `remove_last_bn_relu=True` the final block's last
BatchNorm (`layer4_{last}/bn3`, `bn2` for ResNet-18) and the ReLU after its residual addition are
removed: the block returns `conv3(.) + identity`. Two readings, `rbr_variant`:
  * "paper" (the paper's wording): only that BN and that ReLU go; the block's inner ReLUs stay.
  * "fastreid" (what the authors ran, luyang-NWPU/SGSL `fastreid/modeling/meta_arch/
    baseline.py`): `layer4[2].bn3` and `layer4[2].relu` become identities, and fastreid's
    Bottleneck calls that one `relu` module three times (`fastreid/modeling/backbones/
    resnet.py`), so the ReLUs after `bn1` and `bn2` of the final block go as well:
    `conv3(bn2(conv2(bn1(conv1(x))))) + identity`, with no ReLU anywhere in the block.

`last_stride=1` keeps the last stage at the resolution of the third (fastreid's
`MODEL.BACKBONE.LAST_STRIDE`, as SGSL's runs use): a 224 input gives a 14x14 map.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dmlax.models import layers

RBR_VARIANTS = ("paper", "fastreid")


class BasicBlock(nn.Module):
  """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""
  planes: int
  stride: int = 1
  downsample: bool = False
  last_bn_relu: bool = True
  inner_relu: bool = True
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32
  expansion = 1

  @nn.compact
  def __call__(self, x, *, train: bool):
    bn = lambda name: layers.batch_norm(train, axis_name=self.bn_axis_name, dtype=self.dtype,
                                        name=name)
    identity = x
    y = layers.conv(self.planes, 3, stride=self.stride, padding=1, dtype=self.dtype,
                    name="conv1")(x)
    y = bn("bn1")(y)
    y = nn.relu(y) if self.inner_relu else y
    y = layers.conv(self.planes, 3, padding=1, dtype=self.dtype, name="conv2")(y)
    if self.last_bn_relu:
      y = bn("bn2")(y)
    if self.downsample:
      identity = layers.conv(self.planes, 1, stride=self.stride, dtype=self.dtype,
                             name="downsample_0")(x)
      identity = bn("downsample_1")(identity)
    y = y + identity
    return nn.relu(y) if self.last_bn_relu else y


class Bottleneck(nn.Module):
  """1x1 - 3x3 (grouped for ResNeXt) - 1x1 bottleneck with a residual connection."""
  planes: int
  stride: int = 1
  downsample: bool = False
  groups: int = 1
  base_width: int = 64
  last_bn_relu: bool = True
  inner_relu: bool = True
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32
  expansion = 4

  @nn.compact
  def __call__(self, x, *, train: bool):
    bn = lambda name: layers.batch_norm(train, axis_name=self.bn_axis_name, dtype=self.dtype,
                                        name=name)
    width = int(self.planes * (self.base_width / 64.0)) * self.groups
    identity = x
    y = layers.conv(width, 1, dtype=self.dtype, name="conv1")(x)
    relu = nn.relu if self.inner_relu else (lambda v: v)
    y = relu(bn("bn1")(y))
    y = layers.conv(width, 3, stride=self.stride, padding=1, groups=self.groups,
                    dtype=self.dtype, name="conv2")(y)
    y = relu(bn("bn2")(y))
    y = layers.conv(self.planes * 4, 1, dtype=self.dtype, name="conv3")(y)
    if self.last_bn_relu:
      y = bn("bn3")(y)
    if self.downsample:
      identity = layers.conv(self.planes * 4, 1, stride=self.stride, dtype=self.dtype,
                             name="downsample_0")(x)
      identity = bn("downsample_1")(identity)
    y = y + identity
    return nn.relu(y) if self.last_bn_relu else y


class ResNet(nn.Module):
  """A ResNet/ResNeXt trunk without its pooling and classifier.

  Attributes:
    block: "basic" or "bottleneck".
    stage_sizes: blocks per stage, e.g. (3, 4, 6, 3) for ResNet-50.
    groups, width_per_group: ResNeXt cardinality and width (32, 4 for ResNeXt-50 32x4d).
    remove_last_bn_relu: RBR (see the module docstring).
    rbr_variant: "paper" or "fastreid", which ReLUs RBR removes (see the module docstring).
    last_stride: stride of the last stage's first block (2 as torchvision; 1 as fastreid's
      `LAST_STRIDE: 1`).
    bn_axis_name: axis name for cross-replica BatchNorm statistics.
    dtype: compute dtype; parameters stay float32.

  Example:
    >>> net = ResNet(block="bottleneck", stage_sizes=(3, 4, 6, 3))
    >>> x = jnp.zeros((1, 64, 64, 3))
    >>> v = jax.eval_shape(lambda: net.init(jax.random.key(0), x, train=False))  # shapes only
    >>> jax.eval_shape(lambda v: net.apply(v, x, train=False), v).shape
    (1, 2, 2, 2048)
  """
  block: str
  stage_sizes: Sequence[int]
  groups: int = 1
  width_per_group: int = 64
  remove_last_bn_relu: bool = False
  rbr_variant: str = "paper"
  last_stride: int = 2
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    if self.rbr_variant not in RBR_VARIANTS:
      raise ValueError(f"rbr_variant must be one of {RBR_VARIANTS}, got {self.rbr_variant!r}")
    if self.last_stride not in (1, 2):
      raise ValueError(f"last_stride must be 1 or 2, got {self.last_stride}")
    x = jnp.asarray(x, self.dtype)
    x = layers.conv(64, 7, stride=2, padding=3, dtype=self.dtype, name="conv1")(x)
    x = layers.batch_norm(train, axis_name=self.bn_axis_name, dtype=self.dtype, name="bn1")(x)
    x = nn.relu(x)
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    block_cls = BasicBlock if self.block == "basic" else Bottleneck
    extra = {} if self.block == "basic" else dict(groups=self.groups,
                                                  base_width=self.width_per_group)
    in_channels = 64
    num_stages = len(self.stage_sizes)
    for i, num_blocks in enumerate(self.stage_sizes):
      planes = 64 * 2**i
      for j in range(num_blocks):
        stride = 2 if (i > 0 and j == 0) else 1
        if i == num_stages - 1 and j == 0:
          stride = self.last_stride
        out_channels = planes * block_cls.expansion
        is_last = i == num_stages - 1 and j == num_blocks - 1
        rbr_here = is_last and self.remove_last_bn_relu
        x = block_cls(
            planes=planes, stride=stride,
            downsample=(j == 0 and (stride != 1 or in_channels != out_channels)),
            last_bn_relu=not rbr_here,
            inner_relu=not (rbr_here and self.rbr_variant == "fastreid"),
            bn_axis_name=self.bn_axis_name, dtype=self.dtype, name=f"layer{i + 1}_{j}",
            **extra)(x, train=train)
        in_channels = out_channels
    return x


def resnet18(**kwargs) -> ResNet:
  """ResNet-18 trunk (torchvision `resnet18`, 11,176,512 parameters without `fc`).

  Parameter count checked in tests/models/test_models.py.
  """
  return ResNet(block="basic", stage_sizes=(2, 2, 2, 2), **kwargs)


def resnet50(**kwargs) -> ResNet:
  """ResNet-50 trunk (torchvision `resnet50`, 23,508,032 parameters without `fc`).

  Parameter count checked in tests/models/test_models.py.
  """
  return ResNet(block="bottleneck", stage_sizes=(3, 4, 6, 3), **kwargs)


def resnext50_32x4d(**kwargs) -> ResNet:
  """ResNeXt-50 32x4d trunk (torchvision `resnext50_32x4d`, 22,979,904 without `fc`).

  Parameter count checked in tests/models/test_models.py.
  """
  return ResNet(block="bottleneck", stage_sizes=(3, 4, 6, 3), groups=32, width_per_group=4,
                **kwargs)
