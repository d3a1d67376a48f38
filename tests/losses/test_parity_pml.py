"""Parity with pytorch-metric-learning 2.9.0: same inputs, same loss value and gradients.

Run with ``DMLAX_PARITY=1 bash tests/run.sh tests/losses/test_parity_pml.py`` (installs
torch==2.13.0 CPU and pytorch-metric-learning==2.9.0); skipped when either is missing.
pml runs in float64 on the float32 inputs; ours in float32; agreement to 1e-5.
Layouts: pml's margin-loss ``W`` is (D, C) like ours; its ProxyAnchor / ProxyNCA ``proxies`` are
(C, D) like ours; its SoftTriple ``fc`` is (D, C K) with column ``c K + k`` = our ``[c, k]``.
"""

import functools

import jax
import numpy as np
import pytest

from dmlax import losses

torch = pytest.importorskip("torch", reason="parity needs torch==2.13.0 (DMLAX_PARITY=1)")
pml_losses = pytest.importorskip(
    "pytorch_metric_learning.losses",
    reason="parity needs pytorch-metric-learning==2.9.0 (DMLAX_PARITY=1)")
from pytorch_metric_learning import miners as pml_miners  # noqa: E402
from pytorch_metric_learning import reducers as pml_reducers  # noqa: E402
from pytorch_metric_learning import regularizers as pml_regularizers  # noqa: E402

pytestmark = pytest.mark.parity

B, D, C, K = 24, 16, 6, 3
TOL = dict(rtol=1e-5, atol=1e-5)


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(B, D)).astype(np.float32)
  y = rng.integers(0, C - 1, size=B).astype(np.int64)  # class C-1 absent
  return x, y, rng


def _torch_value_and_grads(loss_fn, x, y, params=(), miner=None):
  """pml forward+backward in float64; returns (value, d/dx, d/dparams...)."""
  loss_fn = loss_fn.double()
  xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
  yt = torch.tensor(y)
  indices = miner(xt, yt) if miner is not None else None
  value = loss_fn(xt, yt, indices) if indices is not None else loss_fn(xt, yt)
  value.backward()
  grads = [xt.grad.numpy()] + [getattr(loss_fn, p).grad.numpy() for p in params]
  return float(value.detach()), grads


def _set(loss_fn, name, array):
  getattr(loss_fn, name).data = torch.tensor(np.asarray(array, np.float64))
  return loss_fn


def _check(ours, theirs):
  value, grads = ours
  np.testing.assert_allclose(float(value), theirs[0], **TOL)
  for g, t in zip(grads, theirs[1]):
    np.testing.assert_allclose(np.asarray(g, np.float64), t, **TOL)


def test_proxy_losses():
  x, y, rng = _inputs(0)
  w = rng.normal(size=(C, K, D)).astype(np.float32)
  w1 = w[:, 0]

  @jax.jit
  def ours(x, y, w):
    vg = functools.partial(jax.value_and_grad, argnums=(0, 1))
    return {
        "anchor": vg(lambda a, p: losses.proxy_anchor_loss(a, y, p))(x, w[:, 0]),
        "triple": vg(lambda a, p: losses.soft_triple_loss(a, y, p))(x, w),
        "nca": vg(lambda a, p: losses.proxy_nca_loss(a, y, p, softmax_scale=3.0))(x, w[:, 0]),
    }

  got = ours(x, y, w)
  anchor = _set(pml_losses.ProxyAnchorLoss(C, D, margin=0.1, alpha=32), "proxies", w1)
  _check(got["anchor"], _torch_value_and_grads(anchor, x, y, ["proxies"]))
  triple = pml_losses.SoftTripleLoss(
      C, D, centers_per_class=K, la=20, gamma=0.1, margin=0.01,
      weight_regularizer=pml_regularizers.SparseCentersRegularizer(C, K), weight_reg_weight=0.2)
  _set(triple, "fc", w.reshape(C * K, D).T)
  value, (gx, gfc) = _torch_value_and_grads(triple, x, y, ["fc"])
  # The regularisers differ by design (1e-5 vs finfo.tiny under the sqrt): ~1e-6 here.
  _check(got["triple"], (value, [gx, gfc.T.reshape(C, K, D)]))
  nca = _set(pml_losses.ProxyNCALoss(C, D, softmax_scale=3.0), "proxies", w1)
  _check(got["nca"], _torch_value_and_grads(nca, x, y, ["proxies"]))


def test_classifier_losses():
  x, y, rng = _inputs(1)
  w = (0.5 * rng.normal(size=(D, C))).astype(np.float32)

  cases = {
      "lsoftmax": (losses.large_margin_softmax_loss,
                   pml_losses.LargeMarginSoftmaxLoss(C, D, margin=4)),
      "sphereface": (losses.sphereface_loss, pml_losses.SphereFaceLoss(C, D, margin=4)),
      "cosface": (losses.cosface_loss, pml_losses.CosFaceLoss(C, D, margin=0.35, scale=64)),
      "arcface": (losses.arcface_loss,
                  pml_losses.ArcFaceLoss(C, D, margin=np.degrees(0.5), scale=64)),
  }
  if hasattr(losses, "normalized_softmax_loss"):  # the normalised-softmax baseline as well
    cases["normsoftmax"] = (losses.normalized_softmax_loss,
                            pml_losses.NormalizedSoftmaxLoss(C, D, temperature=0.05))

  @jax.jit
  def ours(x, y, w):
    return {name: jax.value_and_grad(lambda a, p, f=f: f(a, y, p), argnums=(0, 1))(x, w)
            for name, (f, _) in cases.items()}

  got = ours(x, y, w)
  for name, (_, theirs) in cases.items():
    _check(got[name], _torch_value_and_grads(_set(theirs, "W", w), x, y, ["W"]))


def test_pair_losses():
  x, y, _ = _inputs(2)

  @jax.jit
  def ours(x, y):
    vg = jax.value_and_grad
    return {
        "ms": vg(lambda a: losses.multi_similarity_loss(a, y))(x),
        "triplet_all": vg(lambda a: losses.triplet_margin_loss(a, y, margin=0.2))(x),
        "triplet_soft": vg(lambda a: losses.triplet_margin_loss(a, y, margin=0.0, soft=True))(x),
        "triplet_hard": vg(lambda a: losses.triplet_margin_loss(a, y, margin=0.2,
                                                                mining="hard"))(x),
        "contrastive": vg(lambda a: losses.contrastive_loss(a, y))(x),
    }

  got = {k: (v, [g]) for k, v, g in ((k, *vg) for k, vg in ours(x, y).items())}
  theirs = {
      "ms": (pml_losses.MultiSimilarityLoss(alpha=2, beta=50, base=0.5), None),
      "triplet_all": (pml_losses.TripletMarginLoss(margin=0.2), None),
      "triplet_soft": (pml_losses.TripletMarginLoss(margin=0.0, smooth_loss=True), None),
      "triplet_hard": (pml_losses.TripletMarginLoss(margin=0.2, reducer=pml_reducers.MeanReducer()),
                       pml_miners.BatchHardMiner()),
      "contrastive": (pml_losses.ContrastiveLoss(pos_margin=0, neg_margin=1), None),
  }
  for name, (loss_fn, miner) in theirs.items():
    _check(got[name], _torch_value_and_grads(loss_fn, x, y, miner=miner))


def test_arcface_past_pi_minus_margin():
  """pml >= 2.0 continues ArcFace as cos(theta) - m sin(m) past pi - m; so does dmlax."""
  rng = np.random.default_rng(5)
  w = rng.normal(size=(D, C)).astype(np.float32)
  y = np.arange(B) % C
  w_y = w[:, y].T / np.linalg.norm(w[:, y].T, axis=1, keepdims=True)
  other = rng.normal(size=(B, D))
  other -= np.sum(other * w_y, axis=1, keepdims=True) * w_y
  other /= np.linalg.norm(other, axis=1, keepdims=True)
  theta = np.radians(np.linspace(120.0, 179.5, B))  # from below pi - m to nearly pi
  x = (np.cos(theta)[:, None] * w_y + np.sin(theta)[:, None] * other).astype(np.float32)
  ours = jax.jit(jax.value_and_grad(
      lambda a, p: losses.arcface_loss(a, y, p), argnums=(0, 1)))(x, w)
  theirs = pml_losses.ArcFaceLoss(C, D, margin=np.degrees(0.5), scale=64)
  _check(ours, _torch_value_and_grads(_set(theirs, "W", w), x, y.astype(np.int64), ["W"]))
