"""W-Softmax against a naive per-sample-weights float64 reference; the simplex classifier."""

import chex
import hypothesis
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st

from dmlax import losses


def np_w_softmax(x, y, w, alpha):
  """Eq. 13 literally: build every sample's (C, D) weights W' (eq. 1) and take softmax CE."""
  x, w = np.float64(x), np.float64(w)
  w = w / np.linalg.norm(w, axis=0, keepdims=True)
  out = []
  for xi, yi in zip(x, y):
    per_sample = alpha * w[:, yi][None, :] + w.T  # (C, D): alpha w_y + w_j
    per_sample /= np.linalg.norm(per_sample, axis=1, keepdims=True)
    per_sample[yi] = w[:, yi]
    logits = per_sample @ xi
    m = logits.max()
    out.append(m + np.log(np.exp(logits - m).sum()) - logits[yi])
  return np.array(out)


def naive_jax_w_softmax(x, y, w, alpha):
  """The same per-sample-weights form in JAX (a (B, C, D) array), for gradients."""
  w = w / jnp.linalg.norm(w, axis=0, keepdims=True)
  per_sample = alpha * w.T[y][:, None, :] + w.T[None]  # (B, C, D)
  per_sample = per_sample / jnp.linalg.norm(per_sample, axis=2, keepdims=True)
  logits = jnp.einsum("bcd,bd->bc", per_sample, x)
  target = jnp.sum(x * w.T[y], axis=1)
  logits = jnp.where(jax.nn.one_hot(y, w.shape[1]) > 0, target[:, None], logits)
  return losses.softmax_cross_entropy(logits, y, reduction="sum")


def draw(seed, batch=6, dim=5, num_classes=4, scale=2.0):
  rng = np.random.default_rng(seed)
  x = (rng.normal(size=(batch, dim)) * scale).astype(np.float32)
  w = rng.normal(size=(dim, num_classes)).astype(np.float32)
  y = rng.integers(0, num_classes, size=batch).astype(np.int32)
  return x, y, w


_ALPHAS = (0.0, 0.5, 1.0, 1.5)
_values = jax.jit(lambda x, y, w: [
    losses.weights_biased_softmax_loss(x, y, w, alpha=a, reduction="none") for a in _ALPHAS])


@pytest.mark.parametrize("batch,num_classes", [(6, 4), (12, 3)])  # (12, 3): B > C, Gram rows
def test_matches_per_sample_weights_reference(batch, num_classes):
  x, y, w = draw(batch, batch=batch, num_classes=num_classes)
  for alpha, got in zip(_ALPHAS, _values(x, y, w)):
    chex.assert_trees_all_close(got, np_w_softmax(x, y, w, alpha), rtol=2e-5, atol=2e-5)


def test_gradients_match_naive_form_and_reductions():
  x, y, w = draw(1)
  fn = jax.jit(lambda x, w: (
      jax.grad(lambda x, w: losses.weights_biased_softmax_loss(x, y, w, alpha=1.2,
                                                               reduction="sum"), (0, 1))(x, w),
      jax.grad(lambda x, w: naive_jax_w_softmax(x, y, w, 1.2), (0, 1))(x, w),
      losses.weights_biased_softmax_loss(x, y, w, alpha=1.2),
      losses.weights_biased_softmax_loss(x, y, w, alpha=1.2, reduction="sum")))
  got, want, mean, total = fn(x, w)
  chex.assert_trees_all_close(got, want, rtol=1e-4, atol=1e-5)
  ref = np_w_softmax(x, y, w, 1.2)
  chex.assert_trees_all_close((mean, total), (ref.mean(), ref.sum()), rtol=1e-5)


def test_alpha_zero_is_softmax_with_normalised_columns():
  x, y, w = draw(2, scale=5.0)
  w_hat = w / np.linalg.norm(w, axis=0, keepdims=True)
  want = losses.softmax_cross_entropy(x @ w_hat, y, reduction="none")
  chex.assert_trees_all_close(_values(x, y, w)[0], want, rtol=1e-5, atol=1e-6)


def test_alpha_increases_the_loss():
  """alpha > 0 moves every negative weight towards w_y, so each negative logit grows whenever
  the feature is closer to w_y than to w_j: on well-classified samples the loss increases."""
  x, y, w = draw(3)
  x = 5.0 * np.float32(w.T[y] / np.linalg.norm(w.T[y], axis=1, keepdims=True))
  values = np.stack([np.asarray(v) for v in _values(x, y, w)])
  assert (np.diff(values, axis=0) > 0).all()


def test_opposite_columns_stay_finite():
  """w_j = -w_y and alpha = 1 make alpha w_y + w_j = 0: the guarded norm keeps it finite."""
  x, y, w = draw(4, num_classes=3)
  w[:, 1] = -w[:, 0]
  y[:] = 0
  loss, grads = jax.jit(jax.value_and_grad(
      lambda x, w: losses.weights_biased_softmax_loss(x, y, w, alpha=1.0), (0, 1)))(x, w)
  chex.assert_tree_all_finite((loss, grads))


def test_jit_vmap_and_bf16():
  x, y, w = draw(5, batch=12)
  fn = jax.jit(jax.vmap(lambda x, y: losses.weights_biased_softmax_loss(x, y, w)))
  got = fn(x.reshape(3, 4, 5), y.reshape(3, 4))
  want = [np_w_softmax(xi, yi, w, 1.0).mean() for xi, yi in zip(x.reshape(3, 4, 5),
                                                                 y.reshape(3, 4))]
  chex.assert_trees_all_close(got, np.array(want), rtol=2e-5)
  xb, wb = jnp.asarray(x * 20, jnp.bfloat16), jnp.asarray(w, jnp.bfloat16)
  loss, grads = jax.jit(jax.value_and_grad(
      lambda x, w: losses.weights_biased_softmax_loss(x, y, w), (0, 1)))(xb, wb)
  chex.assert_tree_all_finite((loss, grads))
  assert loss.dtype == jnp.float32 and grads[0].dtype == jnp.bfloat16


_finite_grad = jax.jit(jax.value_and_grad(
    lambda x, y, w: losses.weights_biased_softmax_loss(x, y, w, alpha=1.0), (0, 2)))


@hypothesis.settings(max_examples=8)
@hypothesis.given(
    x=hnp.arrays(np.float32, (4, 5), elements=st.floats(-1e4, 1e4, width=32)),
    w=hnp.arrays(np.float32, (5, 3), elements=st.floats(-1e3, 1e3, width=32)),
    y=hnp.arrays(np.int32, (4,), elements=st.integers(0, 2)))
def test_finite_inputs_never_give_nan_or_inf(x, w, y):
  chex.assert_tree_all_finite(_finite_grad(x, y, w))


@pytest.mark.parametrize("num_classes", [2, 3, 10, 257])
def test_simplex_classifier_gram_matrix(num_classes):
  w = np.asarray(losses.simplex_classifier(num_classes), np.float64)
  assert w.shape == (losses.min_feature_dim(num_classes), num_classes)
  assert losses.min_feature_dim(num_classes) == num_classes - 1
  gram = w.T @ w
  want = np.full((num_classes, num_classes), -1.0 / (num_classes - 1))
  np.fill_diagonal(want, 1.0)
  np.testing.assert_allclose(gram, want, atol=1e-6)


def test_simplex_classifier_follows_eq3():
  np.testing.assert_allclose(losses.simplex_classifier(2), [[1.0, -1.0]])
  s = np.sqrt(3.0) / 2.0  # sqrt(((C-1)^2 - 1) / (C-1)^2) at C = 3
  np.testing.assert_allclose(losses.simplex_classifier(3),
                             [[s, -s, 0.0], [-0.5, -0.5, 1.0]], atol=1e-7)


def test_bad_input_raises_naming_the_argument():
  x, y, w = draw(0)
  with pytest.raises(ValueError, match="alpha"):
    losses.weights_biased_softmax_loss(x, y, w, alpha=-0.5)
  with pytest.raises(ValueError, match="weights"):
    losses.weights_biased_softmax_loss(x, y, w[:3])
  with pytest.raises(ValueError, match="labels"):
    losses.weights_biased_softmax_loss(x, y.astype(np.float32), w)
  with pytest.raises(ValueError, match="features"):
    losses.weights_biased_softmax_loss(x[0], y, w)
  with pytest.raises(ValueError, match="num_classes"):
    losses.simplex_classifier(1)
  with pytest.raises(ValueError, match="num_classes"):
    losses.min_feature_dim(2.5)


def np_stop_gradient_biased_grads(x, y, w, alpha):
  """Float64 analytic gradients of the ablation (sum reduction): the biased negatives
  w'_j = (alpha w_y + w_j) / ||.|| are constants, so W gets gradient only via w_y . x."""
  x, w = np.float64(x), np.float64(w)
  norms = np.linalg.norm(w, axis=0)
  w_hat = w / norms
  gx, gw = np.zeros_like(x), np.zeros_like(w)
  for i, (xi, yi) in enumerate(zip(x, y)):
    u = alpha * w_hat[:, yi][None, :] + w_hat.T  # (C, D)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    u[yi] = w_hat[:, yi]
    z = u @ xi
    p = np.exp(z - z.max())
    p /= p.sum()
    gx[i] = p @ u - w_hat[:, yi]
    c = w_hat[:, yi]
    gw[:, yi] += (p[yi] - 1.0) * (xi - (c @ xi) * c) / norms[yi]
  return gx, gw


@pytest.mark.parametrize("batch,num_classes", [(6, 4), (12, 3)])
def test_stop_gradient_biased_gradient_matches_reference(batch, num_classes):
  x, y, w = draw(batch + 20, batch=batch, num_classes=num_classes)
  alpha = 1.0

  @jax.jit
  def grads(x, w):
    f = lambda sg: jax.value_and_grad(  # noqa: E731
        lambda a, p: losses.weights_biased_softmax_loss(
            a, y, p, alpha=alpha, stop_gradient_biased=sg, reduction="sum"),
        argnums=(0, 1))(x, w)
    return f(True), f(False)

  (value, (gx, gw)), (value_default, (_, gw_default)) = grads(x, w)
  want_x, want_w = np_stop_gradient_biased_grads(x, y, w, alpha)
  chex.assert_trees_all_close((gx, gw), (want_x, want_w), rtol=2e-5, atol=2e-5)
  # Same value as the paper's loss; only the classifier's gradient differs.
  chex.assert_trees_all_close(value, value_default, rtol=1e-6)
  chex.assert_trees_all_close(value, np_w_softmax(x, y, w, alpha).sum(), rtol=2e-5)
  assert not np.allclose(gw, gw_default, atol=1e-3)


@pytest.mark.parametrize("batch,num_classes", [(6, 4), (12, 3)])  # both computation paths
def test_float64_kept(batch, num_classes):
  x, y, w = draw(batch + 40, batch=batch, num_classes=num_classes)
  with jax.enable_x64(True):
    value, grads = jax.jit(jax.value_and_grad(
        lambda a, p: losses.weights_biased_softmax_loss(a, y, p, reduction="sum"),
        argnums=(0, 1)))(np.float64(x), np.float64(w))
    assert value.dtype == jnp.float64 and all(g.dtype == jnp.float64 for g in grads)
    chex.assert_trees_all_close(value, np_w_softmax(x, y, w, 1.0).sum(), rtol=1e-12)
