"""The loss contract, checked for every public loss of `dmlax.losses` (its ``__all__``).

Arguments are built from each loss's signature (the name of its third positional argument says
which parameter it owns; keyword-only float defaults are its continuous hyperparameters), so a
loss added to ``__all__`` is checked without editing this file, and a public name that is neither
a loss nor listed in `NOT_LOSSES` fails `test_every_public_name_is_classified`.
"""

from __future__ import annotations

import inspect
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmlax import losses

NOT_LOSSES = {
    "annealed_lambda", "discriminative_grouping", "min_feature_dim", "multi_proxy_similarity",
    "proxy_anchor_init", "proxy_regularizer", "simplex_classifier", "soft_triple_init",
    "XBMState", "xbm_init", "xbm_references", "xbm_update",
}
LOSS_NAMES = sorted(n for n in losses.__all__ if n not in NOT_LOSSES)
# (C, D) proxies; every other `proxies` argument is (C, K, D).
SINGLE_PROXY_LOSSES = {"proxy_anchor_loss", "proxy_nca_loss"}

B, D, C, K = 6, 4, 3, 2


def _params(names=LOSS_NAMES):
  return [pytest.param(n, id=n) for n in names]


def _positional(fn):
  return [p for p in inspect.signature(fn).parameters.values()
          if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]


def _keyword_only(fn):
  return {p.name: p for p in inspect.signature(fn).parameters.values()
          if p.kind is inspect.Parameter.KEYWORD_ONLY}


def _hyperparameters(fn) -> dict[str, float]:
  """Keyword-only arguments with a float default: the continuous hyperparameters."""
  return {name: p.default for name, p in _keyword_only(fn).items()
          if isinstance(p.default, float)}


class Case:
  """Arguments of one loss: `args(dtype, batch)` -> positional arrays, `num_classes` or None."""

  def __init__(self, name):
    self.name = name
    self.fn = getattr(losses, name)
    pos = _positional(self.fn)
    self.first = pos[0].name
    self.second = pos[1].name if len(pos) > 1 else None
    self.param = pos[2].name if len(pos) > 2 and pos[2].default is inspect.Parameter.empty else None
    self.has_labels = self.second == "labels"
    if self.first == "logits":
      self.num_classes = D
    elif self.param in ("weights", "proxies", "centers"):
      self.num_classes = C
    else:
      self.num_classes = None  # pair losses: labels are ids without a range
    self.kwargs = {}
    kw = _keyword_only(self.fn)
    if "key" in kw and kw["key"].default is inspect.Parameter.empty:
      self.kwargs["key"] = jax.random.PRNGKey(0)

  def labels(self, batch=B):
    return jnp.asarray(np.arange(batch) % C, jnp.int32)

  def args(self, dtype=jnp.float32, batch=B):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(batch, D)), dtype)
    out = [x]
    if self.second == "labels":
      out.append(self.labels(batch))
    elif self.second == "radius":
      out.append(jnp.asarray(1.5, dtype))
    if self.param == "weights":
      out.append(jnp.asarray(rng.normal(size=(D, C)), dtype))
    elif self.param == "proxies":
      shape = (C, D) if self.name in SINGLE_PROXY_LOSSES else (C, K, D)
      out.append(jnp.asarray(rng.normal(size=shape), dtype))
    elif self.param == "centers":
      out.append(jnp.asarray(rng.normal(size=(C, D)), dtype))
    elif self.param is not None:
      raise AssertionError(f"{self.name}: no argument builder for parameter {self.param!r}")
    return out

  def value(self, *args, **kwargs):
    out = self.fn(*args, **self.kwargs, **kwargs)
    return out[0] if isinstance(out, tuple) else out  # softmax_sgsl_loss: (total, aux)


def test_every_public_name_is_classified():
  for name in losses.__all__:
    fn = getattr(losses, name)
    assert callable(fn), name
    if name not in NOT_LOSSES:
      assert name.endswith("_loss") or name == "softmax_cross_entropy", (
          f"{name} is public: a loss (name it *_loss) or add it to NOT_LOSSES")


@pytest.mark.parametrize("name", _params())
def test_argument_names(name):
  case = Case(name)
  # softmax_cross_entropy's per-example vectors are class scores.
  assert case.first == ("logits" if name == "softmax_cross_entropy" else "features")
  assert case.second in ("labels", "radius")  # ring_loss pulls norms to R: no labels
  kw = _keyword_only(case.fn)
  assert "reduction" in kw and kw["reduction"].default == "mean"
  positional_defaults = [p.name for p in _positional(case.fn) if p.default is not inspect._empty]
  assert set(positional_defaults) <= {"bias"}, "hyperparameters are keyword-only"


@pytest.mark.parametrize("name", _params())
def test_reductions(name):
  case = Case(name)
  args = case.args()
  mean, total, none = jax.jit(lambda *a: [case.value(*a, reduction=r)
                                          for r in ("mean", "sum", "none")])(*args)
  chex.assert_shape([mean, total], ())
  assert none.ndim == 1 and np.all(np.isfinite(none))
  if none.shape == (B,):
    chex.assert_trees_all_close(mean, jnp.mean(none), rtol=1e-5, atol=1e-6)
  else:  # batch-coupled: the docstring says what "none" returns, and it sums to the loss
    assert '"none"' in case.fn.__doc__
    chex.assert_trees_all_close(total, jnp.sum(none), rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="reduction"):
    case.value(*args, reduction="avg")


@pytest.mark.parametrize("name", _params())
def test_dtypes(name):
  case = Case(name)
  out = jax.jit(case.value)(*case.args(jnp.bfloat16))
  assert out.dtype == jnp.float32, "bfloat16 inputs accumulate in float32"
  with jax.enable_x64(True):
    args = case.args(jnp.float64)
    value, grad = jax.jit(jax.value_and_grad(case.value))(*args)
    assert value.dtype == jnp.float64 and grad.dtype == jnp.float64


@pytest.mark.parametrize("name", _params())
def test_empty_batch_raises(name):
  case = Case(name)
  with pytest.raises(ValueError, match=r"empty batch"):
    case.value(*case.args(batch=0))


@pytest.mark.parametrize("name", _params())
def test_traced_hyperparameters(name):
  case = Case(name)
  hps = _hyperparameters(case.fn)
  if not hps:
    pytest.skip(f"{name} has no continuous hyperparameter")
  args = case.args()
  second = {k: v * 0.8 + 0.05 for k, v in hps.items()}
  stacked = {k: jnp.array([hps[k], second[k]], jnp.float32) for k in hps}
  swept = jax.jit(jax.vmap(lambda h: case.value(*args, **h)))(stacked)
  jitted = jax.jit(lambda h: case.value(*args, **h))
  # One compilation serves both points: the hyperparameters are arguments, not constants.
  chex.assert_trees_all_close(swept, jnp.stack([jitted(hps), jitted(second)]), rtol=1e-5,
                              atol=1e-6)
  assert not np.allclose(swept[0], swept[1]), "the hyperparameters must change the value"


@pytest.mark.parametrize("name", _params())
def test_traced_bad_label_gives_nan_value_and_gradient(name):
  case = Case(name)
  if case.num_classes is None or not case.has_labels:
    pytest.skip(f"{name}: labels have no class range")
  args = case.args()
  bad = case.labels().at[1].set(case.num_classes)
  with pytest.raises(ValueError, match="labels must lie in"):
    case.value(args[0], bad, *args[2:])  # concrete: a clear error
  value, grads = jax.jit(jax.value_and_grad(
      lambda x, y, *p: case.value(x, y, *p), argnums=0))(args[0], bad, *args[2:])
  assert np.isnan(value)
  assert np.isnan(np.asarray(grads)).any(), "the gradient must carry the NaN too"


@pytest.mark.parametrize("name", _params())
def test_forward_mode_works_or_is_documented(name):
  case = Case(name)
  args = case.args()
  direction = jnp.asarray(np.random.default_rng(1).normal(size=args[0].shape), args[0].dtype)
  # Along one direction: forward mode (jacfwd) and forward-over-reverse (hessian) at small cost.
  f = lambda t: case.value(args[0] + t * direction, *args[1:])  # noqa: E731
  doc = (case.fn.__doc__ or "") + (sys.modules[case.fn.__module__].__doc__ or "")
  for transform, word in ((jax.jacfwd, "jacfwd"), (jax.hessian, "hessian")):
    try:
      out = jax.jit(transform(f))(0.0)
    except (TypeError, NotImplementedError) as e:
      assert word in doc, f"{name}: {word} fails ({e}) and the docstring does not say so"
    else:
      assert np.isfinite(out)
