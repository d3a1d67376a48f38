"""topk_error and verification_accuracy against direct NumPy references."""

import chex
import numpy as np
import pytest

from dmlax import metrics


def test_topk_error_with_ties():
  rng = np.random.default_rng(0)
  z = rng.integers(0, 4, size=(300, 10)).astype(np.float32)  # many ties
  y = rng.integers(0, 10, size=300)
  for k in (1, 3, 10):
    order = np.argsort(-z, axis=1, kind="stable")[:, :k]  # ties to the lower class index
    want = 1 - np.mean([y[i] in order[i] for i in range(300)])
    chex.assert_trees_all_close(metrics.topk_error(z, y, k), want, atol=1e-7)
  assert metrics.topk_error(z, y, 10) == 0.0


def test_topk_error_bad_input():
  with pytest.raises(ValueError, match="k must be an integer in"):
    metrics.topk_error(np.ones((2, 3)), np.zeros(2, int), 4)
  with pytest.raises(ValueError, match="labels must lie in"):
    metrics.topk_error(np.ones((2, 3)), np.array([0, 3]), 1)
  with pytest.raises(ValueError, match="labels has 1 entries"):
    metrics.topk_error(np.ones((2, 3)), np.array([0]), 1)


def np_verification(a, b, same, folds):
  cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
  accs = []
  for test in np.array_split(np.arange(len(cos)), folds):
    train = np.setdiff1d(np.arange(len(cos)), test)
    # Brute force over every cut: below the smallest value, the midpoints between
    # neighbouring distinct values, and at the largest.
    v = np.unique(cos[train])
    candidates = np.concatenate([[v[0] - 1], (v[1:] + v[:-1]) / 2, [v[-1]]])
    train_acc = [np.mean((cos[train] > t) == same[train]) for t in candidates]
    best = np.max(train_acc)
    # Among optimal cuts, the reference keeps the lowest one (argmax order).
    t = candidates[[i for i, acc in enumerate(train_acc) if acc == best]].min()
    accs.append(np.mean((cos[test] > t) == same[test]))
  return np.mean(accs)


def test_verification_accuracy_matches_brute_force():
  rng = np.random.default_rng(1)
  a = rng.normal(size=(240, 8))
  same = rng.random(240) < 0.5
  b = np.where(same[:, None], a + rng.normal(size=(240, 8)) * 1.2, rng.normal(size=(240, 8)))
  got = metrics.verification_accuracy(a.astype(np.float32), b.astype(np.float32), same)
  assert len(got["thresholds"]) == 10
  chex.assert_trees_all_close(got["accuracy"], np_verification(a, b, same, 10), atol=1e-12)
  assert 0.6 < got["accuracy"] < 1.0


def test_verification_separable_pairs_score_one():
  rng = np.random.default_rng(2)
  a = rng.normal(size=(40, 5))
  same = np.arange(40) % 2 == 0
  b = np.where(same[:, None], a, -a)
  assert metrics.verification_accuracy(a, b, same, folds=4)["accuracy"] == 1.0


def test_verification_bad_input():
  with pytest.raises(ValueError, match="same shape"):
    metrics.verification_accuracy(np.ones((4, 2)), np.ones((3, 2)), np.ones(4, bool))
  with pytest.raises(ValueError, match="one flag per pair"):
    metrics.verification_accuracy(np.ones((4, 2)), np.ones((4, 2)), np.ones(3, bool))
  with pytest.raises(ValueError, match="folds must be"):
    metrics.verification_accuracy(np.ones((4, 2)), np.ones((4, 2)), np.ones(4, bool), folds=5)
