"""Class protocols and the registry, on label arrays written in the tests (no data needed)."""
import numpy as np
import pytest

from dmlax import data
from dmlax.data import protocols
from dmlax.data import registry


def _pooled(raw, sel):
  return np.concatenate([raw[p] for p in sel.parts])[sel.positions]


def test_cub_class_split_pools_both_tfds_splits():
  rng = np.random.default_rng(0)
  raw = {"train": rng.integers(0, 200, 300), "test": rng.integers(0, 200, 250)}
  out = registry.REGISTRY["cub200"].tasks["retrieval"].make(raw)
  train, test = _pooled(raw, out["train"]), _pooled(raw, out["test"])
  assert train.max() < 100 and test.min() >= 100
  assert len(out["train"]) + len(out["test"]) == 550  # Every image, once.
  np.testing.assert_array_equal(out["train"].labels, train)
  np.testing.assert_array_equal(out["test"].labels, test - 100)


def test_cars_split_is_98_98():
  raw = {"train": np.arange(196), "test": np.arange(196)}
  out = registry.REGISTRY["cars196"].tasks["retrieval"].make(raw)
  assert len(out["train"]) == 2 * 98 and len(out["test"]) == 2 * 98
  assert out["train"].labels.max() == 97 and out["test"].labels.max() == 97


def test_identity_remaps_per_split_and_shares_query_gallery():
  raw = {"train": np.array([7, 3, 7]), "query": np.array([10, 20]),
         "gallery": np.array([20, 30, 10])}
  out = registry.REGISTRY["inshop"].tasks["retrieval"].make(raw)
  np.testing.assert_array_equal(out["train"].labels, [1, 0, 1])
  np.testing.assert_array_equal(out["query"].labels, [0, 1])
  np.testing.assert_array_equal(out["gallery"].labels, [1, 2, 0])
  np.testing.assert_array_equal(out["test"].labels, [0, 1, 1, 2, 0])


def test_random_classes_is_seeded_and_keeps_all_their_images():
  raw = {"train": np.repeat(np.arange(50), 4), "validation": np.repeat(np.arange(50), 2)}
  a = protocols.random_classes(raw, num_classes=10, seed=0)
  b = protocols.random_classes(raw, num_classes=10, seed=0)
  c = protocols.random_classes(raw, num_classes=10, seed=1)
  np.testing.assert_array_equal(a["train"].positions, b["train"].positions)
  assert not np.array_equal(a["train"].positions, c["train"].positions)
  chosen = np.unique(raw["train"][a["train"].positions])
  assert len(chosen) == 10 and len(a["train"]) == 40 and len(a["test"]) == 20
  np.testing.assert_array_equal(np.unique(raw["validation"][a["test"].positions]), chosen)
  assert set(a["train"].labels) == set(range(10))


def test_per_class_subset_takes_n_per_class():
  raw = {"train": np.repeat(np.arange(5), 30), "validation": np.arange(5)}
  out = protocols.per_class_subset(raw, per_class=7, seed=0)
  np.testing.assert_array_equal(np.bincount(out["train"].labels), [7] * 5)
  assert len(out["test"]) == 5


def test_caltech_trials_60_per_class_rest_test_and_differ():
  raw = {"images": np.repeat(np.arange(4), [80, 81, 95, 100])}
  trials = [registry.REGISTRY["caltech256"].tasks[f"trial{t}"].make(raw) for t in range(3)]
  for out in trials:
    np.testing.assert_array_equal(np.bincount(out["train"].labels), [60] * 4)
    np.testing.assert_array_equal(np.bincount(out["test"].labels), [20, 21, 35, 40])
    assert not np.intersect1d(out["train"].positions, out["test"].positions).size
  assert not np.array_equal(trials[0]["train"].positions, trials[1]["train"].positions)
  again = registry.REGISTRY["caltech256"].tasks["trial0"].make(raw)
  np.testing.assert_array_equal(again["train"].positions, trials[0]["train"].positions)


def test_trial_rejects_classes_too_small():
  with pytest.raises(ValueError, match="no test image"):
    protocols.per_class_trial({"all": np.repeat(np.arange(2), [61, 60])}, part="all",
                              per_class=60, trial=0)


def test_registry_covers_the_papers_datasets():
  expected = {"cub200", "cars196", "sop", "inshop", "food101", "imagenet2012", "caltech256",
              "sun397", "cifar10", "cifar100", "mnist", "fashion_mnist", "lfw", "digits",
              "multicenter", "casia_webface", "glyphs"}
  assert set(data.names()) == expected
  assert data.info("cub200").num_classes == 100
  assert data.info("cars196").num_classes == 98
  assert data.info("sop").num_classes == 11318
  info = data.info("inshop")
  assert (info.eval_query_split, info.eval_gallery_split) == ("query", "gallery")
  assert data.info("imagenet2012", task="classes200").num_classes == 200
  assert data.info("sun397", task="trial2").tfds_config == "standard-part3-120k"
  assert data.info("digits", task="retrieval").protocol == "retrieval"


def test_unknown_names_raise():
  with pytest.raises(ValueError, match="unknown dataset 'cub'; known: cub200"):
    data.info("cub")
  with pytest.raises(ValueError, match="no task 'trial9'"):
    data.info("caltech256", task="trial9")


def test_first_classes_and_digits_per_class_tasks():
  raw = {"train": np.arange(30) % 10, "test": np.arange(20) % 10}
  out = registry.REGISTRY["mnist"].tasks["first7"].make(raw)
  assert data.info("mnist", task="first7").num_classes == 7
  np.testing.assert_array_equal(np.bincount(out["train"].labels), [3] * 7)
  np.testing.assert_array_equal(np.bincount(out["test"].labels), [2] * 7)
  raw = {"train": np.repeat(np.arange(10), 40), "test": np.arange(10)}
  sel = registry.REGISTRY["digits"].tasks["per_class30"].make(raw)
  np.testing.assert_array_equal(np.bincount(sel["train"].labels), [30] * 10)
  assert len(sel["test"]) == 10
