"""Heads that turn a backbone's output into the embedding a loss sees.

Order of operations in `EmbeddingHead` (each step optional, set by keyword):

  feature map (B, H, W, C) --pooling--> (B, C)
    --extra_bn_relu x n--> --linear embedding (width M)--> --BN neck--> --L2-->
    --feature DropOut--> features (B, D)

Extra BN-ReLU blocks sit right before the neck, which is where SGSL Fig. 4 adds them ("added
before the last BN layer which on top of the backbone"); with an embedding layer they act on the
embedding. Feature DropOut acts on the returned features, the classifier's input, which is the
penultimate layer of the GSL paper (section 3.2: DropOut applied only at the penultimate layer).
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

POOLINGS = ("avg", "max", "avg+max", "gem", "none")
_GEM_EPS = 1e-6


def gem_pool(x: ArrayLike, p: ArrayLike = 3.0, *, eps: float = _GEM_EPS) -> jax.Array:
  """Generalised-mean (GeM) pooling over the spatial axes of an NHWC map.

  `gem(x) = (mean_{h,w} max(x, eps)^p)^(1/p)`; `p = 1` is average pooling (of the clamped map),
  `p -> inf` tends to max pooling. Radenovic et al., "Fine-tuning CNN image retrieval with no
  human annotation", TPAMI 2018; matches `cirtorch.layers.functional.gem` (clamp at 1e-6).

  Example:
    >>> x = jnp.ones((2, 7, 7, 2048))
    >>> gem_pool(x, 3.0).shape
    (2, 2048)
  """
  x = jnp.asarray(x)
  if x.ndim != 4:
    raise ValueError(f"gem_pool: x must be (B, H, W, C), got shape {x.shape}")
  # The power is computed in float32 even under bfloat16 compute: x^3 overflows bf16 precision.
  xf = jnp.maximum(x.astype(jnp.float32), eps)
  p = jnp.asarray(p, jnp.float32)
  pooled = jnp.mean(xf ** p, axis=(1, 2)) ** (1.0 / p)
  return pooled.astype(x.dtype)


def global_pool(x: ArrayLike, pooling: str, p: ArrayLike = 3.0) -> jax.Array:
  """Global pooling of an NHWC map to (B, C).

  `avg`: spatial mean; `max`: spatial max; `avg+max`: their sum, as ProxyAnchor's reference
  code (tjddus9597/Proxy-Anchor-CVPR2020, `net/bn_inception.py`: `avg_x + max_x`);
  `gem`: `gem_pool(x, p)`.

  Example:
    >>> global_pool(jnp.ones((2, 4, 4, 8)), "avg+max")[0, 0]
    Array(2., dtype=float32)
  """
  x = jnp.asarray(x)
  if pooling == "avg":
    return jnp.mean(x, axis=(1, 2))
  if pooling == "max":
    return jnp.max(x, axis=(1, 2))
  if pooling == "avg+max":
    return jnp.mean(x, axis=(1, 2)) + jnp.max(x, axis=(1, 2))
  if pooling == "gem":
    return gem_pool(x, p)
  raise ValueError(f"pooling must be one of {POOLINGS[:-1]} for a feature map, got {pooling!r}")


def l2_normalize(x: ArrayLike, *, eps: float = 1e-12) -> jax.Array:
  """`x / max(||x||_2, eps)` along the last axis (torch.nn.functional.normalize's convention)."""
  x = jnp.asarray(x)
  norm = jnp.sqrt(jnp.sum(jnp.square(x.astype(jnp.float32)), axis=-1, keepdims=True))
  return (x / jnp.maximum(norm, eps).astype(x.dtype)).astype(x.dtype)


def adversarial_dropout_mask(
    features: ArrayLike, feature_grads: ArrayLike, *, rate: float,
    base_mask: ArrayLike | None = None) -> jax.Array:
  """Adversarial DropOut mask on the penultimate features (Park et al., AAAI 2018, Alg. 1).

  With features `h`, the loss gradient `g = dL/d(h * m)` taken at the base mask `m`, the
  gradient with respect to the mask is `J = g * h`. Flipping component `i` changes the loss by
  about `J_i (1 - 2 m_i)` (first order). Per example, the `ceil(rate * D)` components with the
  largest positive gain are flipped; with the default all-ones base mask this drops the most
  prominent components, as GSL (WACV 2021, section 3.2, p = 0.005) describes. The mask carries no
  gradient. Apply it as `features * mask` and compute the loss again.

  Example (two passes, the second one trains):
    >>> # g = jax.grad(lambda f: loss(f, labels, W))(features)
    >>> # m = adversarial_dropout_mask(features, g, rate=0.005)
    >>> # loss(features * m, labels, W)
  """
  h = jnp.asarray(features)
  g = jnp.asarray(feature_grads)
  if h.ndim != 2 or g.shape != h.shape:
    raise ValueError(
        f"features and feature_grads must both be (B, D); got {h.shape} and {g.shape}")
  if not 0.0 <= rate < 1.0:
    raise ValueError(f"rate must be in [0, 1), got {rate}")
  m = jnp.ones_like(h) if base_mask is None else jnp.asarray(base_mask, h.dtype)
  gain = jax.lax.stop_gradient(g * h * (1.0 - 2.0 * m))
  # 1e-9 keeps a product like 0.1 * 30 = 3.0000000000000004 from rounding up to 4.
  num_flip = math.ceil(rate * h.shape[-1] - 1e-9)
  if num_flip == 0:
    return jax.lax.stop_gradient(m)
  threshold = jax.lax.top_k(gain, num_flip)[0][:, -1:]
  # Ties at the threshold may flip a few more; only components with a positive gain flip.
  flip = (gain >= threshold) & (gain > 0)
  return jax.lax.stop_gradient(jnp.where(flip, 1.0 - m, m))


class EmbeddingHead(nn.Module):
  """Pooling, optional BN-ReLU blocks, linear embedding, BN neck, L2 norm and feature DropOut.

  Attributes:
    pooling: one of `POOLINGS`; "none" for backbones that already return vectors.
    gem_p: GeM exponent (3 = "cubic GeM" of the MPA paper); `learn_gem_p` makes it a parameter
      initialised to `gem_p` (cirtorch's `GeM` layer).
    extra_bn_relu: number of BatchNorm-ReLU blocks before the neck (SGSL Fig. 4).
    embedding_dim: width `M` of a linear layer (with bias; kaiming-normal fan-out weights and
      zero bias, as ProxyAnchor's reference code initialises its embedding), or None.
    embedding_bias: False drops that layer's bias (SGSL's authors' 1x1 convolution embedding,
      luyang-NWPU/SGSL `fastreid/modeling/heads/embedding_head.py`: `bias=False`).
    bn_neck: BatchNorm without scale and bias on top (BNNeck; SGSL Fig. 2 and "Implementation
      Details": "Batch Normalization (BN), without scaling and bias").
    bn_neck_scale: give the BN neck a learned scale (initialised to 1) and still no bias: the
      neck SGSL's authors ran (luyang-NWPU/SGSL `fastreid/modeling/heads/embedding_head.py`,
      `get_norm(..., bias_freeze=True)`: the weight trains, the bias stays at its initial 0).
    l2_normalize: L2-normalise the features.
    feature_dropout: DropOut rate on the returned features (rng stream "dropout").
  """
  pooling: str = "avg"
  gem_p: float = 3.0
  learn_gem_p: bool = False
  extra_bn_relu: int = 0
  embedding_dim: int | None = None
  embedding_bias: bool = True
  bn_neck: bool = False
  bn_neck_scale: bool = False
  l2_normalize: bool = False
  feature_dropout: float = 0.0
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  def _batch_norm(self, train: bool, name: str, affine: bool = True,
                  scale: bool | None = None) -> nn.BatchNorm:
    return nn.BatchNorm(
        use_running_average=not train, momentum=0.9, epsilon=1e-5,
        use_scale=affine if scale is None else scale, use_bias=affine,
        axis_name=self.bn_axis_name, dtype=self.dtype, param_dtype=jnp.float32, name=name)

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    if x.ndim == 4:
      if self.pooling == "none":
        raise ValueError("pooling='none' needs a backbone that returns vectors; this one returns "
                         f"a feature map of shape {x.shape}")
      p = self.gem_p
      if self.learn_gem_p:
        p = self.param("gem_p", nn.initializers.constant(self.gem_p), (), jnp.float32)
      x = global_pool(x, self.pooling, p)
    elif x.ndim != 2:
      raise ValueError(f"head input must be (B, H, W, C) or (B, D), got {x.shape}")
    elif self.pooling != "none":
      raise ValueError(f"pooling={self.pooling!r} given, but this backbone returns vectors "
                       f"{x.shape}; use pooling='none'")
    if self.embedding_dim is not None:
      x = nn.Dense(
          self.embedding_dim, use_bias=self.embedding_bias, dtype=self.dtype,
          param_dtype=jnp.float32,
          kernel_init=nn.initializers.variance_scaling(2.0, "fan_out", "normal"),
          name="embedding")(x)
    for i in range(self.extra_bn_relu):
      x = nn.relu(self._batch_norm(train, f"extra_bn_{i}")(x))
    if self.bn_neck:
      x = self._batch_norm(train, "bn_neck", affine=False, scale=self.bn_neck_scale)(x)
    if self.l2_normalize:
      x = l2_normalize(x)
    if self.feature_dropout > 0.0:
      x = nn.Dropout(self.feature_dropout, deterministic=not train)(x)
    return x
