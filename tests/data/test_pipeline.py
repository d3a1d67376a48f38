"""The grain pipeline on the prepared embedded datasets: determinism, resume, shards, padding."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dmlax import data


def _take(it, n):
  return [next(it) for _ in range(n)]


def test_digits_content_matches_scikit_learn(prepared_dir):
  from sklearn import datasets
  raw = datasets.load_digits()
  # sklearn's values are integers 0..16; stored /16*255 rounded, read back /255, so *16 and
  # rounding recovers them exactly (the rounding error is at most 16 * 0.5 / 255).
  by_pixels = {}
  for image, label in zip(raw.images.astype(np.int64), raw.target):
    by_pixels.setdefault(image.tobytes(), set()).add(int(label))
  seen = 0
  for batch in data.eval_batches("digits", split="test", batch_size=100, data_dir=prepared_dir):
    for image, label in zip(batch["image"][batch["mask"]], batch["label"][batch["mask"]]):
      key = np.rint(image[..., 0] * 16).astype(np.int64).tobytes()
      assert int(label) in by_pixels[key]
      seen += 1
  assert seen == 450
  train = data.info("digits", data_dir=prepared_dir).num_examples["train"]
  assert train + seen == len(raw.target)


def test_train_batches_shapes_and_labels(prepared_dir):
  it = data.train_iterator("multicenter", batch_size=24, seed=0, data_dir=prepared_dir)
  batch = next(it)
  assert batch["image"].shape == (24, 32, 32, 3) and batch["image"].dtype == np.float32
  assert batch["label"].dtype == np.int32
  assert 0 <= batch["label"].min() and batch["label"].max() < data.info("multicenter").num_classes
  assert 0 <= batch["image"].min() and batch["image"].max() <= 1


def test_random_sampler_visits_every_image_once_per_epoch(prepared_dir):
  # multicenter retrieval train split: 600 images; 600 = 25 batches of 24.
  it = data.train_iterator("multicenter", batch_size=24, seed=0, data_dir=prepared_dir,
                           image_size=4)
  labels = np.concatenate([b["label"] for b in _take(it, 25)])
  np.testing.assert_array_equal(np.bincount(labels), [60] * 10)


def test_determinism_and_exact_resume(prepared_dir):
  kw = dict(batch_size=16, seed=7, data_dir=prepared_dir, augment="cifar")
  a = data.train_iterator("multicenter", **kw)
  first = _take(a, 3)
  state = json.loads(json.dumps(a.get_state()))
  rest = _take(a, 3)
  b = data.train_iterator("multicenter", **kw)
  for x, y in zip(first, _take(b, 3)):
    np.testing.assert_array_equal(x["image"], y["image"])
    np.testing.assert_array_equal(x["label"], y["label"])
  c = data.train_iterator("multicenter", **kw)
  c.set_state(state)
  for x, y in zip(rest, _take(c, 3)):
    np.testing.assert_array_equal(x["image"], y["image"])
    np.testing.assert_array_equal(x["label"], y["label"])
  other = next(data.train_iterator("multicenter", **{**kw, "seed": 8}))
  assert not np.array_equal(other["image"], first[0]["image"])
  with pytest.raises(ValueError, match="different dataset"):
    data.train_iterator("multicenter", **{**kw, "seed": 8}).set_state(state)


@pytest.mark.parametrize("sampler", ["random", "m_per_class"])
def test_process_shards_are_disjoint_and_make_the_global_batch(prepared_dir, sampler):
  kw = dict(seed=3, data_dir=prepared_dir, sampler=sampler, m_per_class=4, augment="flip")
  whole = _take(data.train_iterator("multicenter", batch_size=24, **kw), 3)
  parts = [_take(data.train_iterator("multicenter", batch_size=8, process_index=p,
                                     process_count=3, **kw), 3) for p in range(3)]
  for step in range(3):
    joined = np.concatenate([parts[p][step]["image"] for p in range(3)])
    np.testing.assert_array_equal(joined, whole[step]["image"])
    np.testing.assert_array_equal(
        np.concatenate([parts[p][step]["label"] for p in range(3)]), whole[step]["label"])
  if sampler == "m_per_class":
    for batch in whole:
      groups = batch["label"].reshape(6, 4)
      assert (groups == groups[:, :1]).all() and len(set(groups[:, 0])) == 6


def test_m_per_class_covers_an_epoch(prepared_dir):
  # 600 images, 10 classes of 60 = 15 chunks of 4 each; 150 chunks -> 25 batches of 6 x 4.
  it = data.train_iterator("multicenter", batch_size=24, seed=0, data_dir=prepared_dir,
                           sampler="m_per_class", image_size=4)
  labels = np.concatenate([b["label"] for b in _take(it, 25)])
  counts = np.bincount(labels, minlength=10)
  assert counts.sum() == 600 and abs(counts - 60).max() <= 24


@pytest.mark.parametrize("process_count", [1, 3])
def test_eval_every_item_exactly_once_across_processes(prepared_dir, process_count):
  seen, steps = [], set()
  for p in range(process_count):
    batches = list(data.eval_batches("digits", split="test", batch_size=64,
                                     data_dir=prepared_dir, process_index=p,
                                     process_count=process_count))
    steps.add(len(batches))
    for b in batches:
      assert b["image"].shape == (64, 8, 8, 1)
      assert (b["label"][~b["mask"]] == -1).all() and (b["image"][~b["mask"]] == 0).all()
      seen.append(b["index"][b["mask"]])
  assert len(steps) == 1  # Every process runs the same number of steps.
  np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.arange(450))


def test_eval_imagenet_style_resize_and_normalisation(prepared_dir):
  batch = next(iter(data.eval_batches("multicenter", split="test", batch_size=4,
                                      data_dir=prepared_dir, image_size=24,
                                      augment="bninception")))
  assert batch["image"].shape == (4, 24, 24, 3)
  assert batch["image"].min() >= -128 and batch["image"].max() <= 255 - 104


def test_reading_does_not_import_tensorflow(prepared_dir):
  code = (
      "import sys\n"
      "from dmlax import data\n"
      f"it = data.train_iterator('digits', batch_size=8, seed=0, data_dir={prepared_dir!r})\n"
      "next(it)\n"
      f"next(iter(data.eval_batches('digits', split='test', batch_size=8, "
      f"data_dir={prepared_dir!r})))\n"
      "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
      "print('ok')\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"})
  assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def test_missing_data_gives_a_clear_error(tmp_path):
  with pytest.raises(data.DataNotFoundError, match="prepare_data.py --dataset cub200"):
    data.train_iterator("cub200", batch_size=8, seed=0, data_dir=os.fspath(tmp_path),
                        image_size=32)
  with pytest.raises(data.DataNotFoundError, match="256_ObjectCategories"):
    data.prepare("caltech256", data_dir=os.fspath(tmp_path))
  assert data.info("cub200", data_dir=os.fspath(tmp_path)).num_examples is None


def test_partly_prepared_data_gives_a_clear_error(prepared_dir, tmp_path):
  import shutil
  copy = tmp_path / "tfds"
  shutil.copytree(os.path.join(prepared_dir, "digits"), copy / "digits")
  for f in (copy / "digits" / "1.0.0").glob("digits-train.array_record*"):
    f.unlink()
  with pytest.raises(data.DataNotFoundError, match="only partly prepared"):
    data.train_iterator("digits", batch_size=8, seed=0, data_dir=os.fspath(copy))


def test_argument_errors(prepared_dir):
  with pytest.raises(ValueError, match="augment="):
    data.train_iterator("digits", batch_size=8, seed=0, data_dir=prepared_dir, augment="x")
  with pytest.raises(ValueError, match="sampler="):
    data.train_iterator("digits", batch_size=8, seed=0, data_dir=prepared_dir, sampler="x")
  with pytest.raises(ValueError, match="process_index"):
    data.train_iterator("digits", batch_size=8, seed=0, data_dir=prepared_dir,
                        process_index=2, process_count=2)
  with pytest.raises(ValueError, match="pass image_size"):
    data.train_iterator("cub200", batch_size=8, seed=0, data_dir=prepared_dir)
  with pytest.raises(ValueError, match="split='val'"):
    data.eval_batches("digits", split="val", batch_size=8, data_dir=prepared_dir)
