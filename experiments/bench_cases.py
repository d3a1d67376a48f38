"""The benchmark cases of the losses: shapes, cases and their groups, and the pml pairs.

`experiments/bench_losses.py` times the `CASE_GROUPS` (each case against softmax CE of its
shape); `experiments/bench_proxy_losses.py` times the `pml_pairs` against
pytorch-metric-learning (pml). Extending: a case group is a function `() -> list[Case]`
registered in `CASE_GROUPS`; a shape is an entry of `SHAPES`. Each case names its shape; the
baseline is measured once per shape.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from dmlax import losses


@dataclasses.dataclass(frozen=True)
class Shape:
  batch: int
  dim: int
  num_classes: int


# Shape sets; cases refer to them by name. "imagenet" is ResNet-50 on ImageNet (the reference
# shape of the softmax family's targets); "mpa_cub" and "sop" the MPA paper's CUB setting and
# SOP's (K = 10 / 2 proxies per class).
SHAPES: dict[str, Shape] = {
    "imagenet": Shape(batch=256, dim=2048, num_classes=1000),
    "small": Shape(batch=32, dim=256, num_classes=100),
    "mpa_cub": Shape(batch=180, dim=512, num_classes=100),
    "sop": Shape(batch=32, dim=512, num_classes=11318),
}


@dataclasses.dataclass(frozen=True)
class Case:
  """One benchmarked loss.

  loss: (features, labels, params) -> scalar; differentiated w.r.t. features and params.
  init_params: (key, shape) -> params pytree (classifier weights, proxies, ...).
  target: the ratio to softmax CE this case must stay under (None: no target).
  """
  name: str
  shape: str
  loss: Callable[[jax.Array, jax.Array, Any], jax.Array]
  init_params: Callable[[jax.Array, Shape], Any]
  target: float | None = None


def classifier_init(key: jax.Array, shape: Shape) -> jax.Array:
  return jax.random.normal(key, (shape.dim, shape.num_classes), jnp.float32) / np.sqrt(shape.dim)


def softmax_ce(features, labels, weights):
  return losses.softmax_cross_entropy(features @ weights, labels)


def baseline_case(shape: str) -> Case:
  return Case("softmax CE (baseline)", shape, softmax_ce, classifier_init, None)


def softmax_family_cases() -> list[Case]:
  """Classifier losses: normalised softmax, group softmax, W-Softmax, SGSL."""
  cases = [
      Case("normalized softmax", "imagenet",
           lambda x, y, w: losses.normalized_softmax_loss(x, y, w), classifier_init),
      Case("group softmax II (1,2,4)", "imagenet",
           lambda x, y, w: losses.group_softmax_loss(x, y, w, groups=(1, 2, 4), loss_type="II"),
           classifier_init, 1.25),
      Case("group softmax I (1,2)", "imagenet",
           lambda x, y, w: losses.group_softmax_loss(x, y, w, groups=(1, 2), loss_type="I"),
           classifier_init),
      Case("group softmax II (1,2,4) prefixed", "imagenet",
           lambda x, y, w: losses.group_softmax_loss(
               x, y, w, groups=(1, 2, 4), grouping="prefixed"), classifier_init),
      Case("group softmax II (1,3) (padded, D % 3 != 0)", "imagenet",
           lambda x, y, w: losses.group_softmax_loss(x, y, w, groups=(1, 3)), classifier_init),
      Case("W-Softmax alpha=1", "imagenet",
           lambda x, y, w: losses.weights_biased_softmax_loss(x, y, w, alpha=1.0),
           classifier_init, 2.0),
      Case("SGSL alone", "imagenet",
           lambda x, y, w: losses.stop_gradient_softmax_loss(x, y, w), classifier_init),
      # start_below=inf: SGSL always joins, so both parts are timed.
      Case("softmax + SGSL", "imagenet",
           lambda x, y, w: losses.softmax_sgsl_loss(x, y, w, start_below=float("inf"))[0],
           classifier_init, 1.3),
      Case("softmax + SGSL, plain lax.stop_gradient", "imagenet", softmax_sgsl_plain,
           classifier_init),
      Case("group softmax II (1,2,4)", "small",
           lambda x, y, w: losses.group_softmax_loss(x, y, w, groups=(1, 2, 4)), classifier_init),
      Case("group softmax II (1,2,4), naive (B, D, C)", "small",
           lambda x, y, w: naive_group_softmax(x, y, w, (1, 2, 4)), classifier_init),
  ]
  return cases


def naive_group_softmax(features, labels, weights, groups):
  """Type-II group softmax that materialises the (B, D, C) ingredient logits (eq. 3) and sums
  them with group masks: the form the efficient implementation avoids. Same grouping rule."""
  dim = features.shape[1]
  z = features[:, :, None] * weights[None, :, :]  # (B, D, C)
  group_index = {g: losses.discriminative_grouping(features, labels, weights, g) for g in groups}
  total = 0.0
  for g in groups:
    masks = jax.nn.one_hot(group_index[g], g, dtype=z.dtype)  # (D, G)
    zbar = jnp.einsum("bdc,dg->bgc", z, masks)
    lse = jax.nn.logsumexp(zbar, axis=-1)
    target = jnp.take_along_axis(zbar, labels[:, None, None], axis=-1)[..., 0]
    total = total + jnp.sum(lse - target, axis=1)
  del dim
  return jnp.mean(total / len(groups))


def softmax_sgsl_plain(features, labels, weights):
  """softmax + SGSL with a second cosine matmul under lax.stop_gradient (no custom_vjp)."""
  logits = features @ weights
  ce = losses.softmax_cross_entropy(logits, labels, label_smoothing=0.1)
  x_hat = features / jnp.linalg.norm(features, axis=1, keepdims=True)
  w = jax.lax.stop_gradient(weights)
  cos = x_hat @ (w / jnp.linalg.norm(w, axis=0, keepdims=True))
  mask = jax.nn.one_hot(labels, weights.shape[1]) > 0
  lse = jax.nn.logsumexp(jnp.where(mask, -jnp.inf, 30.0 * cos), axis=1) / 30.0
  sgsl = jax.nn.softplus(lse - jnp.sum(jnp.where(mask, cos, 0.0), axis=1))
  return ce + jnp.mean(sgsl)


def _proxies(k: int, init=losses.soft_triple_init):
  def make(key, shape):
    return init(key, (shape.num_classes, k, shape.dim))
  return make


def _single_proxies(key, shape):
  return losses.proxy_anchor_init(key, (shape.num_classes, shape.dim))


def _no_params(key, shape):
  del key, shape
  return jnp.zeros(())


def proxy_pair_margin_cases() -> list[Case]:
  """Proxy, margin and pair losses at the MPA paper's CUB shape and SOP's."""
  rows = []
  for shape, k in (("mpa_cub", 10), ("sop", 2)):
    rows += [
        Case(f"MPA K={k}", shape, losses.mpa_loss, _proxies(k)),
        Case(f"MPA-DW K={k}", shape, losses.mpa_dw_loss, _proxies(k)),
        Case(f"MPA-AP K={k}", shape, losses.mpa_ap_loss, _proxies(k)),
        Case(f"SoftTriple K={k}", shape, losses.soft_triple_loss, _proxies(k)),
        Case("ProxyAnchor", shape, losses.proxy_anchor_loss, _single_proxies),
        Case("ProxyNCA", shape, losses.proxy_nca_loss, _single_proxies),
        Case("ArcFace", shape, losses.arcface_loss, classifier_init),
        Case("L-Softmax m=4", shape, losses.large_margin_softmax_loss, classifier_init),
    ]
  pair = lambda f: (lambda x, y, _: f(x, y))
  rows += [
      Case("CosFace", "mpa_cub", losses.cosface_loss, classifier_init),
      Case("SphereFace m=4", "mpa_cub", losses.sphereface_loss, classifier_init),
      Case("SigSoftmax", "mpa_cub", losses.sigsoftmax_loss, classifier_init),
      Case("Virtual Softmax", "mpa_cub", losses.virtual_softmax_loss, classifier_init),
      Case("multi-similarity", "mpa_cub", pair(losses.multi_similarity_loss), _no_params),
      Case("triplet batch-all", "mpa_cub", pair(losses.triplet_margin_loss), _no_params),
      Case("triplet batch-hard", "mpa_cub",
           pair(functools.partial(losses.triplet_margin_loss, mining="hard")), _no_params),
      Case("contrastive", "mpa_cub", pair(losses.contrastive_loss), _no_params),
  ]
  return rows


# The registry: name -> case group. Groups are measured in this order.
CASE_GROUPS: dict[str, Callable[[], list[Case]]] = {
    "softmax_family": softmax_family_cases,
    "proxy_pair_margin": proxy_pair_margin_cases,
}


# ---------------------------------------------------------------------------------------------
# Against pytorch-metric-learning: name -> (batch, dim, num_classes, proxies per class).
PML_SHAPES = {"mpa_cub": (180, 512, 100, 10), "sop": (32, 512, 11318, 2)}


def pml_pairs(pml, batch, dim, num_classes, k, rng):
  """The losses pml also has at one shape, with the same parameters on both sides.

  Returns:
    (name, our loss (x, y, params) -> scalar, our params, the pml loss object, {name of the pml
    object's parameter: its value}) for each loss.
  """
  pl, reg = pml.losses, pml.regularizers
  w_multi = (rng.normal(size=(num_classes, k, dim)) / np.sqrt(num_classes * k)).astype(np.float32)
  w_single = w_multi[:, 0].copy()
  w_cls = (rng.normal(size=(dim, num_classes)) / np.sqrt(dim)).astype(np.float32)
  out = [
      ("ProxyAnchor", losses.proxy_anchor_loss, w_single, pl.ProxyAnchorLoss(num_classes, dim),
       {"proxies": w_single}),
      ("ProxyNCA", losses.proxy_nca_loss, w_single, pl.ProxyNCALoss(num_classes, dim),
       {"proxies": w_single}),
  ]
  fc = {"fc": w_multi.reshape(num_classes * k, dim).T}
  if num_classes * k <= 5000:
    out.append((f"SoftTriple K={k} + regulariser", losses.soft_triple_loss, w_multi,
                pl.SoftTripleLoss(num_classes, dim, centers_per_class=k,
                                  weight_regularizer=reg.SparseCentersRegularizer(num_classes, k),
                                  weight_reg_weight=0.2), fc))
  else:
    # pml's SparseCentersRegularizer builds (C K)^2 masks and similarities (22636^2 at SOP:
    # minutes and GBs), so at this size both sides run without the regulariser.
    out.append((f"SoftTriple K={k}, no regulariser",
                functools.partial(losses.soft_triple_loss, tau=0.0), w_multi,
                pl.SoftTripleLoss(num_classes, dim, centers_per_class=k), fc))
  out += [
      ("L-Softmax m=4", losses.large_margin_softmax_loss, w_cls,
       pl.LargeMarginSoftmaxLoss(num_classes, dim), {"W": w_cls}),
      ("SphereFace m=4", losses.sphereface_loss, w_cls, pl.SphereFaceLoss(num_classes, dim),
       {"W": w_cls}),
      ("CosFace", losses.cosface_loss, w_cls, pl.CosFaceLoss(num_classes, dim), {"W": w_cls}),
      ("ArcFace", losses.arcface_loss, w_cls,
       pl.ArcFaceLoss(num_classes, dim, margin=np.degrees(0.5)), {"W": w_cls}),
  ]
  out.append(("NormalizedSoftmax", losses.normalized_softmax_loss, w_cls,
              pl.NormalizedSoftmaxLoss(num_classes, dim), {"W": w_cls}))
  if k == 10:  # pair losses do not depend on C; once, at the larger batch
    zero = np.zeros((), np.float32)
    pair = lambda f: (lambda x, y, _: f(x, y))
    out += [
        ("multi-similarity", pair(losses.multi_similarity_loss), zero,
         pl.MultiSimilarityLoss(), {}),
        ("triplet batch-all", pair(losses.triplet_margin_loss), zero,
         pl.TripletMarginLoss(margin=0.2), {}),
        ("contrastive", pair(losses.contrastive_loss), zero, pl.ContrastiveLoss(), {}),
    ]
  return out
