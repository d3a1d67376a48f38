"""Bad configs and bad batches: an error before the first step naming the problem and the field;
a non-finite loss stops the run naming the step and leaves the last good checkpoint."""

import os

import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

from configs import paper_tables
from configs import quickstart
import dmlax.data
from dmlax.train import loop

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config(**overrides):
  config = quickstart.get_config("softmax,smoke")
  paper_tables.apply_overrides(config, overrides, "test")
  return config


@pytest.mark.parametrize("field,value,pattern", [
    ("loss.name", "softmaxx", r"config\.loss\.name must be one of .*'mpa'.*got 'softmaxx'"),
    ("loss.aux_name", "centre", r"config\.loss\.aux_name must be one of .*'center'.*"),
    ("model.name", "resnet51", r"config\.model\.name must be one of .*'resnet50'.*'resnet51'"),
    ("optimizer.name", "adamm", r"config\.optimizer\.name must be one of \('sgd', 'adam', "
     r"'adamw'\), got 'adamm'"),
    ("schedule.name", "linear", r"config\.schedule\.name must be one of"),
    ("parallel", "pjit", r"config\.parallel must be one of"),
    ("dataset.name", "digitz", r"config\.dataset\.name='digitz'.*unknown dataset.*digits"),
    ("batch_size", 12, r"config\.batch_size=12 must be a positive multiple of the number of "
     r"devices \(8"),
])
def test_bad_config_names_the_field(tmp_path, field, value, pattern):
  with pytest.raises(ValueError, match=pattern):
    loop.train_and_evaluate(_config(**{field: value}), str(tmp_path))
  assert not os.path.exists(tmp_path / "checkpoints" / "1")


def test_misspelt_override_is_an_error_naming_the_field():
  path = os.path.join(REPO, "configs", "quickstart.py")

  def parse(override):
    # As experiments/train.py defines its flag, with this argv instead of sys.argv.
    argv = ["prog", f"--config={path}:softmax", override]
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "", flag_values=fv, lock_config=True,
                                    sys_argv=argv)
    fv(argv)
    return fv.config

  assert parse("--config.optimizer.lr=0.5").optimizer.lr == 0.5
  with pytest.raises(Exception, match="lrr"):
    parse("--config.optimizer.lrr=0.5")
  with pytest.raises(AttributeError, match="lrr"):
    locked = quickstart.get_config("softmax")
    locked.lock()
    locked.optimizer.lrr = 0.5


def test_unknown_loss_hyperparameter_names_the_field(tmp_path):
  config = _config()
  config.loss.kwargs.temperature = 0.1   # softmax_cross_entropy takes no temperature
  with pytest.raises(ValueError, match=r"config\.loss\.kwargs"):
    loop.train_and_evaluate(config, str(tmp_path))


def test_check_batch():
  good = {"image": np.zeros((4, 8, 8, 1), np.float32), "label": np.array([0, 1, 2, 4], np.int32)}
  kw = dict(image_shape=(8, 8, 1), num_classes=5, batch_size=4, dataset="digits")
  loop.check_batch(good, **kw)
  with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\).*found \[-1, 5\]"):
    loop.check_batch({**good, "label": np.array([0, 5, -1, 2], np.int32)}, **kw)
  with pytest.raises(ValueError, match=r"images have shape \(4, 9, 9, 1\), expected "
                     r"\(4, 8, 8, 1\).*config\.dataset\.image_size"):
    loop.check_batch({**good, "image": np.zeros((4, 9, 9, 1), np.float32)}, **kw)
  with pytest.raises(ValueError, match="integers"):
    loop.check_batch({**good, "label": good["label"].astype(np.float32)}, **kw)


class _Tampered:
  """The real training iterator with batch `at` changed by `change`."""

  def __init__(self, inner, at, change):
    self.inner, self.at, self.change, self.count = inner, at, change, 0

  def __iter__(self):
    return self

  def __next__(self):
    batch = dict(next(self.inner))
    if self.count == self.at:
      batch = self.change(batch)
    self.count += 1
    return batch

  def get_state(self):
    return self.inner.get_state()

  def set_state(self, state):
    self.inner.set_state(state)


def _tamper(monkeypatch, at, change):
  real = dmlax.data.train_iterator
  monkeypatch.setattr(dmlax.data, "train_iterator",
                      lambda *a, **k: _Tampered(real(*a, **k), at, change))


@pytest.mark.parametrize("change,pattern", [
    (lambda b: {**b, "label": np.where(np.arange(len(b["label"])) == 3, 7, b["label"])},
     r"training labels must lie in \[0, 5\) .*config\.dataset\.name='digits'.*found \[7\]"),
    (lambda b: {**b, "image": b["image"][:, :7]},
     r"training images have shape \(16, 7, 8, 1\), expected \(16, 8, 8, 1\)"),
])
def test_bad_first_batch_fails_before_the_first_step(tmp_path, monkeypatch, change, pattern):
  _tamper(monkeypatch, 0, change)
  with pytest.raises(ValueError, match=pattern):
    loop.train_and_evaluate(_config(parallel="single"), str(tmp_path))
  assert not [d for d in os.listdir(tmp_path / "checkpoints") if d.isdigit()]


def test_non_finite_loss_stops_at_that_step_keeping_the_last_good_checkpoint(
    tmp_path, monkeypatch):
  _tamper(monkeypatch, 2, lambda b: {**b, "image": np.full_like(b["image"], np.nan)})
  with pytest.raises(loop.NonFiniteError, match=r"training step 2 .*Last good checkpoint: step 2"):
    loop.train_and_evaluate(_config(parallel="single"), str(tmp_path))
  saved = sorted(int(d) for d in os.listdir(tmp_path / "checkpoints") if d.isdigit())
  assert saved == [2]
  assert not os.path.exists(tmp_path / "results.json")
