"""The epoch plans' guarantees, checked by counting (no data needed)."""
import numpy as np
import pytest

from dmlax.data import samplers


def test_random_plan_is_a_seeded_permutation():
  a = samplers.random_plan(100, seed=3, epoch=0)
  np.testing.assert_array_equal(np.sort(a), np.arange(100))
  np.testing.assert_array_equal(a, samplers.random_plan(100, seed=3, epoch=0))
  assert not np.array_equal(a, samplers.random_plan(100, seed=3, epoch=1))
  assert not np.array_equal(a, samplers.random_plan(100, seed=4, epoch=0))


def _batches(labels, classes_per_batch, m, seed=0, epoch=0):
  plan = samplers.m_per_class_plan(labels, classes_per_batch=classes_per_batch, m=m,
                                   seed=seed, epoch=epoch)
  return plan.reshape(-1, classes_per_batch, m)


@pytest.mark.parametrize("sizes", [[8] * 12, [4, 12, 20, 8, 16, 4, 24, 8, 12]])
def test_m_per_class_exact_when_m_divides_class_sizes(sizes):
  labels = np.repeat(np.arange(len(sizes)), sizes)
  batches = _batches(labels, classes_per_batch=3, m=4)
  groups = labels[batches]  # (num_batches, classes, m)
  assert (groups == groups[..., :1]).all()  # m images of one class per group.
  for b in groups[..., 0]:
    assert len(set(b.tolist())) == 3  # Distinct classes within a batch.
  assert len(batches) == sum(sizes) // 12
  counts = np.bincount(batches.ravel(), minlength=len(labels))
  # The fixed epoch length may leave one batch's worth of chunks unvisited, and top-ups may
  # revisit a class; otherwise every image exactly once.
  assert counts.max() <= 2
  assert (counts == 1).sum() >= len(labels) - 12


def test_m_per_class_visits_about_once_with_ragged_classes():
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(100), rng.integers(2, 12, size=100))
  batches = _batches(labels, classes_per_batch=8, m=4)
  counts = np.bincount(batches.ravel(), minlength=len(labels))
  assert abs(counts.sum() / len(labels) - 1) < 0.1
  assert (counts >= 1).mean() > 0.8
  groups = labels[batches]
  assert (groups == groups[..., :1]).all()


def test_m_per_class_is_deterministic_and_epochs_differ():
  labels = np.repeat(np.arange(10), 8)
  a = _batches(labels, 4, 2, seed=1, epoch=5)
  np.testing.assert_array_equal(a, _batches(labels, 4, 2, seed=1, epoch=5))
  assert not np.array_equal(a, _batches(labels, 4, 2, seed=1, epoch=6))
  assert not np.array_equal(a, _batches(labels, 4, 2, seed=2, epoch=5))


def test_m_per_class_checks():
  labels = np.repeat(np.arange(3), 5)
  with pytest.raises(ValueError, match="needs 4 classes; the split has 3"):
    samplers.check_m_per_class(labels, global_batch=16, batch_size=16, m=4)
  with pytest.raises(ValueError, match="multiple of m_per_class"):
    samplers.check_m_per_class(labels, global_batch=12, batch_size=6, m=4)


def test_stream_concatenates_epochs_and_pickles():
  stream = samplers.Stream(samplers.RandomPlan(7, seed=0))
  got = [stream[i] for i in range(21)]
  import pickle
  again = pickle.loads(pickle.dumps(stream))
  assert [again[i] for i in range(21)] == got
  for e in range(3):
    np.testing.assert_array_equal(got[7 * e:7 * e + 7],
                                  samplers.random_plan(7, seed=0, epoch=e))
