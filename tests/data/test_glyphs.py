"""The generated `glyphs` data: seeded, compositional, multi-modal, and hard for raw pixels."""
import chex
import numpy as np
import pytest

from dmlax import data
from dmlax.data.builders import glyphs

DEFAULT = glyphs.GlyphsConfig(name="default")


def test_render_is_deterministic_seeded_and_per_class():
  cfg = glyphs.GlyphsConfig(name="t", num_classes=6, num_train_classes=4, images_per_class=4)
  a, la, ma = glyphs.render_glyphs(cfg)
  b, _, _ = glyphs.render_glyphs(cfg)
  np.testing.assert_array_equal(a, b)
  chex.assert_shape(a, (24, 32, 32, 3))
  assert a.dtype == np.uint8
  np.testing.assert_array_equal(np.bincount(la), [4] * 6)
  other = glyphs.GlyphsConfig(name="u", num_classes=6, num_train_classes=4, images_per_class=4,
                              seed=1)
  assert not np.array_equal(a, glyphs.render_glyphs(other)[0])
  # A class's images depend on the seed and the class only, not on how many classes follow.
  more = glyphs.GlyphsConfig(name="v", num_classes=9, num_train_classes=4, images_per_class=4)
  np.testing.assert_array_equal(glyphs.render_class(more, 2)[0],
                                glyphs.render_class(cfg, 2, glyphs.glyph_classes(more))[0])


def test_classes_are_distinct_triples_shared_by_held_out_classes():
  factors, two_modes = glyphs.glyph_classes(DEFAULT)
  chex.assert_shape(factors, (100, 3))
  assert len({tuple(f) for f in factors}) == 100
  train, held = factors[:64], factors[64:]
  for k in range(3):  # shape, colour, texture: every held-out value is also a training value
    assert set(held[:, k]) <= set(train[:, k])
  assert two_modes.sum() == 50
  assert 0 < two_modes[:64].sum() < 64 and 0 < two_modes[64:].sum() < 36


def test_bad_configs_raise():
  with pytest.raises(ValueError, match="num_classes=500"):
    glyphs.glyph_classes(glyphs.GlyphsConfig(name="t", num_classes=500))
  with pytest.raises(ValueError, match="num_train_classes=10"):
    glyphs.glyph_classes(glyphs.GlyphsConfig(name="t", num_classes=10, num_train_classes=10))


def _recall_at_1(x, labels):
  """Cosine Recall@1 in float64 NumPy, each item querying all others."""
  x = x.reshape(len(x), -1).astype(np.float64)
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  s = x @ x.T
  np.fill_diagonal(s, -np.inf)
  return 100.0 * np.mean(labels[s.argmax(1)] == labels)


def test_raw_pixels_cannot_retrieve_held_out_classes_and_modes_are_far_apart():
  classes = glyphs.glyph_classes(DEFAULT)
  held = range(64, 100)
  parts = [glyphs.render_class(DEFAULT, c, classes) for c in held]
  images = np.concatenate([p[0] for p in parts])
  modes = np.concatenate([p[1] for p in parts])
  labels = np.repeat(np.arange(36), DEFAULT.images_per_class)
  r1 = _recall_at_1(images, labels)
  assert r1 < 40.0, r1  # the main job's target is < 60; measured 25.7
  # Two-mode classes: the one-object and pair images of a class are further apart in pixel
  # space than the images within a mode.
  x = images.reshape(len(images), -1).astype(np.float64)
  two = [i for i, c in enumerate(held) if classes[1][c]]
  gaps = []
  for i in two:
    a = x[(labels == i) & (modes == 0)].mean(0)
    b = x[(labels == i) & (modes == 1)].mean(0)
    gaps.append(np.linalg.norm(a - b))
  assert np.mean(gaps) > 0 and len(two) == classes[1][64:].sum()


def test_prepared_dataset_protocols(prepared_dir):
  info = data.info("glyphs", data_dir=prepared_dir)
  assert (info.protocol, info.num_classes, info.image_shape) == ("retrieval", 64, (32, 32, 3))
  assert info.num_examples == {"train": 64 * 48, "test": 36 * 48}
  labels = data.split_labels("glyphs", data_dir=prepared_dir)
  np.testing.assert_array_equal(np.bincount(labels["train"].labels), [48] * 64)
  np.testing.assert_array_equal(np.bincount(labels["test"].labels), [48] * 36)
  scarce = data.info("glyphs", task="per_class10", data_dir=prepared_dir)
  assert scarce.num_examples == {"train": 1000, "test": 1600}
  val = data.info("glyphs", task="validation", data_dir=prepared_dir)
  assert (val.num_classes, val.num_examples) == (40, {"train": 40 * 48, "test": 24 * 48})
  val_labels = data.split_labels("glyphs", task="validation", data_dir=prepared_dir)
  # Both validation splits are records of the retrieval task's training split, never its test.
  for split in ("train", "test"):
    assert set(val_labels[split].positions) <= set(labels["train"].positions)
  np.testing.assert_array_equal(np.bincount(val_labels["test"].labels), [48] * 24)
  # train40: the validation split's training images, the retrieval task's test images.
  t40 = data.split_labels("glyphs", task="train40", data_dir=prepared_dir)
  np.testing.assert_array_equal(t40["train"].positions, val_labels["train"].positions)
  np.testing.assert_array_equal(t40["test"].positions, labels["test"].positions)
  np.testing.assert_array_equal(t40["test"].labels, labels["test"].labels)
  assert data.info("glyphs", task="train40", data_dir=prepared_dir).num_classes == 40
  small = data.info("glyphs", task="classes32", data_dir=prepared_dir)
  assert (small.num_classes, small.num_examples) == (32, {"train": 1024, "test": 512})
  batch = next(iter(data.eval_batches("glyphs", split="test", batch_size=8,
                                      data_dir=prepared_dir)))
  chex.assert_shape(batch["image"], (8, 32, 32, 3))
