"""Multi-class hinge losses against float64 NumPy loops written from the definitions."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmlax import losses


def np_hinge(x, y, w, b, margin, variant):
  z = np.float64(x) @ np.float64(w) + np.float64(b)
  out = []
  for zi, yi in zip(z, y):
    others = [margin + zi[j] - zi[yi] for j in range(len(zi)) if j != yi]
    if variant == "crammer_singer":  # Crammer & Singer 2001
      out.append(max(0.0, max(others)))
    else:  # Weston & Watkins 1999
      out.append(sum(max(0.0, v) for v in others))
  return np.array(out)


@pytest.mark.parametrize("variant", ["crammer_singer", "weston_watkins"])
def test_matches_float64_reference(variant):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(16, 5))
  w = rng.normal(size=(5, 4))
  b = rng.normal(size=4)
  y = rng.integers(0, 4, size=16).astype(np.int32)
  with jax.enable_x64(True):
    fn = jax.jit(lambda x, w, b, m: losses.multiclass_hinge_loss(
        x, y, w, b, margin=m, variant=variant, reduction="none"))
    for margin in (1.0, 0.3):
      got = fn(jnp.asarray(x), jnp.asarray(w), jnp.asarray(b), margin)
      assert got.dtype == jnp.float64
      want = np_hinge(x, y, w, b, margin, variant)
      chex.assert_trees_all_close(got, want, rtol=1e-12, atol=1e-12)
      assert 0 < np.mean(want > 0) < 1  # both sides of the hinge are exercised


def test_gradient_and_binary_case():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(8, 3)).astype(np.float32)
  w = rng.normal(size=(3, 2)).astype(np.float32)
  y = rng.integers(0, 2, size=8).astype(np.int32)
  cs, ww = (losses.multiclass_hinge_loss(x, y, w, variant=v, reduction="none")
            for v in ("crammer_singer", "weston_watkins"))
  chex.assert_trees_all_close(cs, ww)  # C = 2: both are the binary hinge of z_y - z_other
  gw = jax.grad(lambda p: losses.multiclass_hinge_loss(x, y, p, reduction="sum"))(w)
  # d/dW of max(0, 1 + z_j* - z_y) is x (e_j* - e_y) on each violating row.
  z = np.float64(x) @ w
  want = np.zeros((3, 2))
  for xi, yi, zi in zip(np.float64(x), y, z):
    j = 1 - yi
    if 1 + zi[j] - zi[yi] > 0:
      want[:, j] += xi
      want[:, yi] -= xi
  chex.assert_trees_all_close(gw, want, rtol=1e-5, atol=1e-5)


def test_bad_input_raises():
  x, w, y = jnp.ones((2, 4)), jnp.ones((4, 3)), jnp.array([0, 1])
  with pytest.raises(ValueError, match="variant"):
    losses.multiclass_hinge_loss(x, y, w, variant="one_vs_rest")
  with pytest.raises(ValueError, match="margin"):
    losses.multiclass_hinge_loss(x, y, w, margin=-1.0)
  with pytest.raises(ValueError, match="labels must lie"):
    losses.multiclass_hinge_loss(x, jnp.array([0, 3]), w)
