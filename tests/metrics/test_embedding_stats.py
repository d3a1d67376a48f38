"""Embedding statistics against float64 NumPy written from the papers' formulas."""

import chex
import numpy as np
import pytest

from dmlax import metrics


def data(seed=0, n=120, d=6, c=5):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, c, size=n) * 3 + 7  # labels need not be 0..C-1
  x = rng.normal(size=(n, d)) + rng.normal(size=(c * 3 + 8, d))[y] * 2
  return x.astype(np.float32), y


def np_scatter(x, y):
  x = np.asarray(x, np.float64)
  mu0 = x.mean(0)
  sb = np.zeros((x.shape[1],) * 2)
  sw = np.zeros_like(sb)
  for c in np.unique(y):
    xc = x[y == c]
    p = len(xc) / len(x)
    mu = xc.mean(0)
    sb += p * np.outer(mu - mu0, mu - mu0)
    sw += p * (xc - mu).T @ (xc - mu) / len(xc)
  return sb, sw


def test_class_separability_matches_scatter_matrices():
  x, y = data()
  sb, sw = np_scatter(x, y)
  csc, tb, tw = metrics.class_separability(x, y)
  chex.assert_trees_all_close((csc, tb, tw), (np.trace(sb) / np.trace(sw), np.trace(sb),
                                              np.trace(sw)), rtol=1e-5)


def test_fisher_scores_in_unit_interval_and_match_reference():
  x, y = data(1)
  x[:, 2] = 3.0  # constant component: score 0
  x[:, 3] = (y == 7) * 5.0  # constant within every class: score 1
  sb, sw = np_scatter(x, y)
  total = np.diag(sb) + np.diag(sw)
  want = np.where(total > 0, np.diag(sb) / np.where(total > 0, total, 1), 0)
  got = np.asarray(metrics.fisher_scores(x, y))
  chex.assert_trees_all_close(got, want, atol=1e-5)
  assert got[2] == 0 and abs(got[3] - 1) < 1e-6 and ((got >= 0) & (got <= 1)).all()


def test_feature_correlations_match_corrcoef():
  x, _ = data(2)
  chex.assert_trees_all_close(np.asarray(metrics.feature_correlations(x)),
                              np.corrcoef(x.astype(np.float64), rowvar=False), atol=1e-5)


def test_mean_class_angles():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(60, 4)).astype(np.float32)
  y = rng.integers(0, 3, size=60)  # class 3 of 4 has no sample
  w = rng.normal(size=(4, 4)).astype(np.float32)
  got = np.asarray(metrics.mean_class_angles(x, y, w))
  for c in range(3):
    xc = x[y == c].astype(np.float64)
    cos = xc @ w[:, c] / np.linalg.norm(xc, axis=1) / np.linalg.norm(w[:, c])
    chex.assert_trees_all_close(got[c], np.arccos(cos).mean(), atol=1e-5)
  assert np.isnan(got[3])
  with pytest.raises(ValueError, match="labels must lie in"):
    metrics.mean_class_angles(x, np.full(60, 4), w)
  with pytest.raises(ValueError, match="weights must have shape"):
    metrics.mean_class_angles(x, y, w.T[:, :3].T)


def test_bad_input():
  with pytest.raises(ValueError, match="labels has 3 entries"):
    metrics.class_separability(np.ones((4, 2)), np.zeros(3, int))
  with pytest.raises(ValueError, match="NaN"):
    metrics.fisher_scores(np.array([[np.nan, 1.0]]), np.zeros(1, int))
  with pytest.raises(ValueError, match="features must have 2 dim"):
    metrics.feature_correlations(np.ones(4))
