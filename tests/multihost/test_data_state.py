"""The training iterator's state in a multi-process run: orbax writes process 0's copy of it,
and every process restores that one, so the state must not depend on the process."""
import numpy as np
import pytest

from dmlax import data


@pytest.fixture(scope="module")
def kw(digits_dir):
  return dict(task="retrieval", seed=5, sampler="m_per_class", m_per_class=4,
              data_dir=digits_dir)


def _take(it, n):
  return [next(it) for _ in range(n)]


def test_process_zero_state_resumes_every_process_and_other_layouts(kw):
  parts = [data.train_iterator("digits", batch_size=8, process_index=p, process_count=2, **kw)
           for p in range(2)]
  for it in parts:
    _take(it, 2)
  saved = parts[0].get_state()
  assert parts[1].get_state() == saved
  expected = [np.concatenate([b["image"] for b in step])
              for step in zip(*[_take(it, 2) for it in parts])]

  for p in range(2):  # both processes restart from process 0's saved state
    it = data.train_iterator("digits", batch_size=8, process_index=p, process_count=2, **kw)
    it.set_state(saved)
    for want, got in zip(expected, _take(it, 2)):
      np.testing.assert_array_equal(got["image"], want[8 * p:8 * (p + 1)])
  # The same global batch on one process (or four) continues the same stream.
  for count in (1, 4):
    per = 16 // count
    its = [data.train_iterator("digits", batch_size=per, process_index=p, process_count=count,
                               **kw) for p in range(count)]
    for it in its:
      it.set_state(saved)
    for want, got in zip(expected, zip(*[_take(it, 2) for it in its])):
      np.testing.assert_array_equal(np.concatenate([b["image"] for b in got]), want)


def test_state_of_another_global_batch_is_refused(kw):
  state = data.train_iterator("digits", batch_size=8, process_count=2, **kw).get_state()
  other = data.train_iterator("digits", batch_size=8, **kw)
  with pytest.raises(ValueError, match="global batch size"):
    other.set_state(state)
