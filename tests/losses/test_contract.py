"""The loss contract, checked for every public loss of `dmlax.losses` (its ``__all__``).

Arguments are built from each loss's signature (the name of its third positional argument says
which parameter it owns; keyword-only float defaults are its continuous hyperparameters), so a
loss added to ``__all__`` is checked without editing this file, and a public name that is neither
a loss nor listed in `NOT_LOSSES` fails `test_every_public_name_is_classified`.

"mean" is the mean of the (B,) "none" output unless `MEAN_REDUCERS` declares the loss's own
reducer (the pair losses': pytorch-metric-learning's reducer for that loss, as its docstring says).
"""

from __future__ import annotations

import inspect
import re
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
# (D, C, K) sub-centers; every other `weights` argument is a (D, C) classifier.
SUBCENTER_LOSSES = {"subcenter_arcface_loss"}
# Positional arguments after the first two are parameters a trainer owns (learns or keeps):
# classifier weights, proxies, centres, margin_loss's boundary beta, and an optional bias.
OWNED = {"weights", "proxies", "centers", "beta", "bias"}
# Owned parameters that may be left out: no bias, or a fixed (not learned) beta.
OPTIONAL_OWNED = {"bias", "beta"}

B, D, C, K = 6, 4, 3, 2
# Classes of sizes 3, 2 and 1 (one anchor without positives), so that a mean over positive pairs,
# over non-zero anchors and over anchors differ.
UNEVEN_LABELS = np.array([0, 0, 0, 1, 1, 2])


class Terms:
  """What a pair loss's reducer counts, in float64 from the definitions at the default
  hyperparameters: Euclidean distances of L2-normalised features `d`, masks `pos` (same label,
  not self) and `neg`; the loss's own "none" and "sum" outputs; its owned `beta`, if any."""

  def __init__(self, x, y, none, total, beta=None):
    x = np.asarray(x, np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    self.d = np.sqrt(np.maximum(((x[:, None] - x[None]) ** 2).sum(-1), 0.0))
    same = y[:, None] == y[None]
    self.pos, self.neg = same & ~np.eye(len(y), dtype=bool), ~same
    self.none, self.total = np.asarray(none, np.float64), float(total)
    self.beta = None if beta is None else np.asarray(beta, np.float64)[y]


def _nonzero_triplets(t, margin=0.2):
  valid = t.pos[:, :, None] & t.neg[:, None, :]
  return np.sum(valid & (t.d[:, :, None] - t.d[:, None, :] + margin > 0))


def _margin_loss_nonzero_terms(t, margin=0.2):
  """Each (a, p, n) has a positive and a negative term; pml counts the non-zero ones."""
  pos_terms = t.pos & (t.d - t.beta[:, None] + margin > 0)
  neg_terms = t.neg & (t.beta[:, None] - t.d + margin > 0)
  return (np.sum(pos_terms * t.neg.sum(1, keepdims=True))
          + np.sum(neg_terms * t.pos.sum(1, keepdims=True)))


def _contrastive_mean(t, pos_margin=0.0, neg_margin=1.0):
  """pml's AvgNonZeroReducer on each side: mean of the non-zero positive-pair terms plus mean of
  the non-zero negative-pair terms; the negative side is "sum" minus the positive side."""
  pos_terms = np.maximum(t.d - pos_margin, 0)[t.pos]
  neg_count = np.sum(np.maximum(neg_margin - t.d, 0)[t.neg] > 0)
  return (pos_terms.sum() / max(np.sum(pos_terms > 0), 1)
          + (t.total - pos_terms.sum()) / max(neg_count, 1))


# The documented "mean" of the losses whose reducer is not the mean over the batch: a function of
# `Terms`. Every other loss's "mean" is the mean of its (B,) "none", or (batch-coupled, with a
# "none" of another shape) "sum" is the sum of "none".
MEAN_REDUCERS = {
    "ntxent_loss": lambda t: t.total / t.pos.sum(),  # MeanReducer over positive pairs
    "lifted_structure_loss": lambda t: t.total / t.pos.sum(),
    "supcon_loss": lambda t: t.total / np.sum(t.none > 0),  # AvgNonZeroReducer over anchors
    "circle_loss": lambda t: t.total / np.sum(t.none > 0),
    "triplet_margin_loss": lambda t: t.total / _nonzero_triplets(t),  # over non-zero triplets
    "margin_loss": lambda t: t.total / _margin_loss_nonzero_terms(t),  # nu = 0
    "contrastive_loss": _contrastive_mean,
}


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
    self.param = pos[2].name if len(pos) > 2 else None
    self.has_labels = self.second == "labels"
    if self.first == "logits":
      self.num_classes = D
    elif self.param in ("weights", "proxies", "centers", "beta"):  # beta: one per class (C,)
      self.num_classes = C
    else:
      self.num_classes = None  # pair losses: labels are ids without a range
    self.kwargs = {}
    kw = _keyword_only(self.fn)
    if "key" in kw and kw["key"].default is inspect.Parameter.empty:
      self.kwargs["key"] = jax.random.PRNGKey(0)

  def labels(self, batch=B):
    return jnp.asarray(np.arange(batch) % C, jnp.int32)

  def args(self, dtype=jnp.float32, batch=B, labels=None):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(batch, D)), dtype)
    out = [x]
    if self.second == "labels":
      out.append(self.labels(batch) if labels is None else jnp.asarray(labels, jnp.int32))
    elif self.second == "radius":
      out.append(jnp.asarray(1.5, dtype))
    if self.param == "weights":
      shape = (D, C, K) if self.name in SUBCENTER_LOSSES else (D, C)
      out.append(jnp.asarray(rng.normal(size=shape), dtype))
    elif self.param == "proxies":
      shape = (C, D) if self.name in SINGLE_PROXY_LOSSES else (C, K, D)
      out.append(jnp.asarray(rng.normal(size=shape), dtype))
    elif self.param == "centers":
      out.append(jnp.asarray(rng.normal(size=(C, D)), dtype))
    elif self.param == "beta":  # per-class boundaries near pml's 1.2
      out.append(jnp.asarray(1.2 + 0.1 * rng.normal(size=(C,)), dtype))
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
  positional = _positional(case.fn)
  assert {p.name for p in positional[2:]} <= OWNED, "hyperparameters are keyword-only"
  positional_defaults = [p.name for p in positional if p.default is not inspect._empty]
  assert set(positional_defaults) <= OPTIONAL_OWNED, "hyperparameters are keyword-only"


@pytest.mark.parametrize("name", _params())
def test_reductions(name):
  case = Case(name)
  args = case.args(labels=UNEVEN_LABELS)
  mean, total, none = jax.jit(lambda *a: [case.value(*a, reduction=r)
                                          for r in ("mean", "sum", "none")])(*args)
  chex.assert_shape([mean, total], ())
  assert none.ndim == 1 and np.all(np.isfinite(none))
  if name in MEAN_REDUCERS:  # per anchor: each anchor's sum of its terms
    chex.assert_shape(none, (B,))
    chex.assert_trees_all_close(total, jnp.sum(none), rtol=1e-5, atol=1e-6)
    beta = args[2] if case.param == "beta" else None
    expected = MEAN_REDUCERS[name](Terms(args[0], UNEVEN_LABELS, none, total, beta))
    chex.assert_trees_all_close(mean, np.float32(expected), rtol=1e-5, atol=1e-6)
    assert not np.isclose(mean, jnp.mean(none), rtol=1e-3), "the inputs must tell them apart"
  elif none.shape == (B,):
    chex.assert_trees_all_close(mean, jnp.mean(none), rtol=1e-5, atol=1e-6)
  else:  # batch-coupled: the docstring says what "none" returns, and it sums to the loss
    assert '"none"' in case.fn.__doc__
    chex.assert_trees_all_close(total, jnp.sum(none), rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="reduction"):
    case.value(*args, reduction="avg")


def _reduction_doc(fn) -> str | None:
  """The docstring's Args entry that documents `reduction` (possibly shared with other names)."""
  m = re.search(r"^( *)[\w, ]*\breduction\b[\w, ]*:(.*(?:\n\1 +\S.*)*)",
                inspect.getdoc(fn) or "", re.M)
  return None if m is None else " ".join(m.group(2).split())


@pytest.mark.parametrize("name", _params())
def test_docstring_says_what_none_returns(name):
  fn = getattr(losses, name)
  for _ in range(3):  # "reduction: as in `other_loss`." refers to that loss's entry
    entry = _reduction_doc(fn)
    assert entry is not None, f"{fn.__name__}'s docstring documents no reduction argument"
    refers = re.fullmatch(r"as in `(?:dmlax\.losses\.)?(\w+)`\.", entry)
    if refers is None:
      break
    fn = getattr(losses, refers.group(1))
  assert re.search(r'"none"(?: \(| returns |: )', entry), (
      f"{name}: the reduction entry must say what \"none\" returns, got {entry!r}")


@pytest.mark.parametrize("name", _params())
def test_dtypes(name):
  case = Case(name)
  out = jax.jit(case.value)(*case.args(jnp.bfloat16))
  assert out.dtype == jnp.float32, "bfloat16 inputs accumulate in float32"
  with jax.enable_x64(True):
    args = case.args(jnp.float64)
    value, grad = jax.jit(jax.value_and_grad(case.value))(*args)
    assert value.dtype == jnp.float64 and grad.dtype == jnp.float64


def _with_default_owned(names=LOSS_NAMES):
  return [n for n in names
          if any(p.name in OPTIONAL_OWNED and p.default is not None
                 and p.default is not inspect.Parameter.empty
                 for p in _positional(getattr(losses, n)))]


@pytest.mark.parametrize("name", _params(_with_default_owned()))
def test_dtypes_with_default_owned_parameter(name):
  """An owned parameter left at its Python-number default (margin_loss's fixed beta) is weakly
  typed: it must not turn a bfloat16/float32 loss into float64 under jax_enable_x64."""
  case = Case(name)
  args = case.args(jnp.bfloat16)[:2]
  with jax.enable_x64(True):
    assert jax.jit(case.value)(*args).dtype == jnp.float32
    value, grad = jax.jit(jax.value_and_grad(case.value))(*case.args(jnp.float64)[:2])
    assert value.dtype == jnp.float64 and grad.dtype == jnp.float64
  assert jax.jit(case.value)(*args).dtype == jnp.float32


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
