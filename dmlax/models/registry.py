"""Models by name: a backbone and an `EmbeddingHead`, built from keyword arguments (a config).

    model = get_model("resnet50", pooling="gem", bn_neck=True, rbr=True)      # SGSL
    model = get_model("bn_inception", pooling="gem", gem_p=3.0, embedding_dim=512)  # MPA
    model = get_model("vgg16_bn", feature_dropout=0.5)                         # GSL baseline
    model = get_model("prelu_cifar", embedding_dim=9)                          # W-Softmax, M = 9
    model = get_model("sphereface64")                                          # W-Softmax LFW

    variables = model.init(rng, images, train=False)
    features, state = model.apply(variables, images, train=True, mutable=["batch_stats"],
                                  rngs={"dropout": key})

Parameters live under "backbone" and "head" (`variables["params"]["backbone"]["conv1"]`...).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from dmlax.models import bn_inception, face, heads, resnet, small, vgg


class Embedder(nn.Module):
  """`head(backbone(images))`: images (B, H, W, C) NHWC -> float32 features (B, D).

  With `frozen_backbone_bn` the backbone always runs in inference mode (its BatchNorm normalises
  with the running statistics and never updates them; the backbones hold no dropout), while the
  head follows `train`: fastreid's FrozenBN backbone under a training BN neck (SGSL's recipe).
  """
  backbone: nn.Module
  head: heads.EmbeddingHead
  frozen_backbone_bn: bool = False

  def __call__(self, images: jax.Array, *, train: bool = False) -> jax.Array:
    images = jnp.asarray(images)
    if images.ndim != 4:
      raise ValueError(f"images must be (B, H, W, C) NHWC, got shape {images.shape}")
    if not jnp.issubdtype(images.dtype, jnp.floating):
      raise ValueError(f"images must be floating point, got dtype {images.dtype}")
    backbone_train = train and not self.frozen_backbone_bn
    features = self.head(self.backbone(images, train=backbone_train), train=train)
    # Losses and metrics run in float32 whatever the compute dtype.
    return features.astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class _Entry:
  build: Callable[..., nn.Module]
  head_defaults: dict[str, Any]
  backbone_kwargs: tuple[str, ...] = ()
  supports_rbr: bool = False


_MAP_HEAD = {"pooling": "avg"}
_RESNET_KWARGS = ("last_stride",)
_VECTOR_HEAD = {"pooling": "none"}
_REGISTRY: dict[str, _Entry] = {
    "resnet18": _Entry(resnet.resnet18, _MAP_HEAD, _RESNET_KWARGS, supports_rbr=True),
    "resnet50": _Entry(resnet.resnet50, _MAP_HEAD, _RESNET_KWARGS, supports_rbr=True),
    "resnext50_32x4d": _Entry(resnet.resnext50_32x4d, _MAP_HEAD, _RESNET_KWARGS,
                              supports_rbr=True),
    "vgg16_bn": _Entry(vgg.vgg16_bn, _VECTOR_HEAD, ("include_fc",), supports_rbr=True),
    "bn_inception": _Entry(bn_inception.bn_inception, _MAP_HEAD),
    "prelu_mnist": _Entry(small.prelu_mnist, {"pooling": "none", "embedding_dim": 256}),
    "prelu_cifar": _Entry(small.prelu_cifar, {"pooling": "none", "embedding_dim": 256}),
    "five_layer_cnn": _Entry(small.five_layer_cnn, {"pooling": "none", "embedding_dim": 3}),
    # W-Softmax Tables 3-4 (LFW): 512-wide FC layers, as Liu et al.'s nets.
    "liu_lfw17": _Entry(face.liu_lfw17, {"pooling": "none", "embedding_dim": 512}),
    "sphereface20": _Entry(face.sphereface20, {"pooling": "none", "embedding_dim": 512}),
    "sphereface64": _Entry(face.sphereface64, {"pooling": "none", "embedding_dim": 512}),
    "small_cnn": _Entry(small.small_cnn, {"pooling": "avg", "embedding_dim": 64}),
}
MODEL_NAMES = tuple(_REGISTRY)
_RESNETS = (resnet.resnet18, resnet.resnet50, resnet.resnext50_32x4d)
_HEAD_KEYS = ("pooling", "gem_p", "learn_gem_p", "extra_bn_relu", "embedding_dim",
              "embedding_bias", "bn_neck", "bn_neck_scale", "l2_normalize", "feature_dropout")


def get_model(name: str, *, dtype: Any = jnp.float32, bn_axis_name: str | None = None,
              rbr: bool = False, rbr_variant: str = "paper", frozen_backbone_bn: bool = False,
              **kwargs) -> Embedder:
  """The model `name` with the head configured by keyword.

  Args:
    name: one of `MODEL_NAMES`.
    dtype: compute dtype (jnp.bfloat16 for mixed precision); parameters stay float32.
    bn_axis_name: axis name for cross-replica BatchNorm (the trainer passes "batch").
    rbr: remove the backbone's last BN-ReLU (SGSL); resnet*, resnext50_32x4d, and vgg16_bn with
      include_fc=False.
    rbr_variant: for the ResNets, "paper" (the last BN and the ReLU after the residual sum) or
      "fastreid" (also the final block's inner ReLUs, as SGSL's authors ran it); see
      `dmlax.models.resnet`.
    frozen_backbone_bn: run the backbone in inference mode whatever `train` says (its BatchNorm
      frozen; the head's BatchNorm trains), see `Embedder`.
    **kwargs: head options (`pooling`, `gem_p`, `learn_gem_p`, `extra_bn_relu`,
      `embedding_dim`, `embedding_bias`, `bn_neck`, `bn_neck_scale`, `l2_normalize`,
      `feature_dropout`; see `EmbeddingHead`), `include_fc` for vgg16_bn (with `include_fc=False` its pooling
      defaults to "avg") and `last_stride` (1 or 2) for the ResNets. `rbr_variant` has an
      effect only with `rbr=True`.

  Returns:
    An `Embedder` whose `apply(..., train=...)` returns the (B, D) features.

  Example:
    >>> model = get_model("small_cnn", embedding_dim=32)
    >>> v = model.init(jax.random.key(0), jnp.zeros((2, 8, 8, 1)), train=False)
    >>> model.apply(v, jnp.zeros((2, 8, 8, 1)), train=False).shape
    (2, 32)
  """
  if name not in _REGISTRY:
    raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODEL_NAMES)}")
  entry = _REGISTRY[name]
  unknown = sorted(set(kwargs) - set(_HEAD_KEYS) - set(entry.backbone_kwargs))
  if unknown:
    accepted = sorted(_HEAD_KEYS + entry.backbone_kwargs +
                      ("dtype", "bn_axis_name", "rbr", "rbr_variant", "frozen_backbone_bn"))
    raise ValueError(f"get_model({name!r}): unknown keyword(s) {unknown}; accepted: {accepted}")
  if rbr and not entry.supports_rbr:
    raise ValueError(f"get_model({name!r}): rbr is defined for resnet18, resnet50, "
                     "resnext50_32x4d and vgg16_bn(include_fc=False)")
  backbone_kwargs = {k: kwargs[k] for k in entry.backbone_kwargs if k in kwargs}
  head_kwargs = dict(entry.head_defaults)
  if name == "vgg16_bn" and not backbone_kwargs.get("include_fc", True):
    head_kwargs["pooling"] = "avg"
  head_kwargs.update({k: kwargs[k] for k in _HEAD_KEYS if k in kwargs})
  if head_kwargs.get("pooling", "avg") not in heads.POOLINGS:
    raise ValueError(f"pooling must be one of {heads.POOLINGS}, got {head_kwargs['pooling']!r}")
  if int(head_kwargs.get("extra_bn_relu", 0)) < 0:
    raise ValueError(f"extra_bn_relu must be >= 0, got {head_kwargs['extra_bn_relu']}")
  if not 0.0 <= float(head_kwargs.get("feature_dropout", 0.0)) < 1.0:
    raise ValueError(f"feature_dropout must be in [0, 1), got {head_kwargs['feature_dropout']}")
  if rbr_variant not in resnet.RBR_VARIANTS:
    raise ValueError(f"get_model({name!r}): rbr_variant must be one of {resnet.RBR_VARIANTS}, "
                     f"got {rbr_variant!r}")
  if rbr and rbr_variant != "paper" and entry.build not in _RESNETS:
    raise ValueError(f"get_model({name!r}): rbr_variant={rbr_variant!r} is defined for the "
                     "ResNets only (the variants differ in a residual block's inner ReLUs)")
  if "last_stride" in backbone_kwargs and backbone_kwargs["last_stride"] not in (1, 2):
    raise ValueError(f"get_model({name!r}): last_stride must be 1 or 2, got "
                     f"{backbone_kwargs['last_stride']}")
  if head_kwargs.get("bn_neck_scale") and not head_kwargs.get("bn_neck"):
    raise ValueError(f"get_model({name!r}): bn_neck_scale=True needs bn_neck=True")
  if rbr:
    backbone_kwargs["remove_last_bn_relu"] = True
    if entry.build in _RESNETS:
      backbone_kwargs["rbr_variant"] = rbr_variant
  backbone = entry.build(bn_axis_name=bn_axis_name, dtype=dtype, **backbone_kwargs)
  head = heads.EmbeddingHead(bn_axis_name=bn_axis_name, dtype=dtype, **head_kwargs)
  return Embedder(backbone=backbone, head=head, frozen_backbone_bn=bool(frozen_backbone_bn))
