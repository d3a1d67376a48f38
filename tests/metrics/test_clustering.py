"""NMI/AMI: planted clusters and parity with scikit-learn's own pipeline."""

import numpy as np
import pytest

from dmlax import metrics


def test_planted_clusters_score_one():
  rng = np.random.default_rng(0)
  centres = np.eye(6, 16) * 10
  y = np.repeat(np.arange(6) * 2 + 1, 10)
  x = (centres[y // 2] + rng.normal(size=(60, 16)) * 0.05).astype(np.float32)
  assert metrics.nmi(x, y) == pytest.approx(1.0)
  assert metrics.ami(x, y) == pytest.approx(1.0)


def test_matches_sklearn_pipeline_and_seed():
  cluster = pytest.importorskip("sklearn.cluster", reason="scikit-learn is not installed")
  skm = pytest.importorskip("sklearn.metrics", reason="scikit-learn is not installed")
  rng = np.random.default_rng(1)
  y = rng.integers(0, 8, size=200)
  x = (rng.normal(size=(8, 10))[y] + rng.normal(size=(200, 10))).astype(np.float32)
  xn = x / np.linalg.norm(x, axis=1, keepdims=True)
  clusters = cluster.KMeans(n_clusters=8, n_init=1, random_state=3).fit_predict(xn)
  assert metrics.nmi(x, y, seed=3) == pytest.approx(skm.normalized_mutual_info_score(y, clusters))
  assert metrics.ami(x, y, seed=3) == pytest.approx(skm.adjusted_mutual_info_score(y, clusters))
  # An independent NMI from the contingency table (arithmetic-mean normalisation).
  table = np.histogram2d(y, clusters, bins=(8, 8))[0] / len(y)
  py, pk = table.sum(1), table.sum(0)
  nz = table > 0
  mi = np.sum(table[nz] * np.log(table[nz] / np.outer(py, pk)[nz]))
  h = lambda p: -np.sum(p[p > 0] * np.log(p[p > 0]))
  assert metrics.nmi(x, y, seed=3) == pytest.approx(mi / ((h(py) + h(pk)) / 2))
  assert 0 < metrics.nmi(x, y) < 1


def test_bad_input():
  with pytest.raises(ValueError, match="labels has 2 entries"):
    metrics.nmi(np.ones((3, 2), np.float32), np.zeros(2, int))
  with pytest.raises(ValueError, match="NaN"):
    metrics.ami(np.array([[np.nan, 0.0], [1.0, 0.0]]), np.zeros(2, int))
