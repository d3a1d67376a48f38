"""Augmentation geometry and normalisation against values written in the test."""
import io

import numpy as np
import pytest
from PIL import Image

from dmlax.data import transforms


def _png(array):
  buf = io.BytesIO()
  Image.fromarray(array).save(buf, format="PNG")
  return buf.getvalue()


def test_random_resized_crop_box_respects_scale_and_ratio():
  rng = np.random.default_rng(0)
  for _ in range(500):
    left, top, w, h = transforms.random_resized_crop_box(rng, 300, 200)
    assert 0 <= left and left + w <= 300 and 0 <= top and top + h <= 200
    area = w * h / (300 * 200)
    # Rounding w and h to integers moves area and aspect a little past the drawn range.
    assert 0.07 <= area <= 1.0
    assert 3 / 4 - 0.05 <= w / h <= 4 / 3 + 0.05


def test_crop_box_falls_back_to_centre_for_extreme_aspect():
  left, top, w, h = transforms.random_resized_crop_box(np.random.default_rng(0), 1000, 10,
                                                      scale=(0.99, 1.0))
  assert (w, h) == (round(10 * 4 / 3), 10) and left == (1000 - w) // 2


def test_normalisations():
  x = np.zeros((2, 2, 3), np.uint8)
  x[..., 0] = 255  # Pure red.
  np.testing.assert_allclose(transforms.normalize(x, "imagenet")[0, 0],
                             (np.array([1.0, 0, 0]) - [0.485, 0.456, 0.406])
                             / [0.229, 0.224, 0.225], rtol=1e-5)
  # BGR order: red lands in the last channel, minus the R mean 128.
  np.testing.assert_allclose(transforms.normalize(x, "bninception")[0, 0], [-104, -117, 127])
  np.testing.assert_allclose(transforms.normalize(x, "face")[0, 0],
                             [127.5 / 128, -127.5 / 128, -127.5 / 128])
  np.testing.assert_allclose(transforms.normalize(x, "none")[0, 0], [1, 0, 0])


def test_eval_resizes_short_side_and_takes_the_centre():
  # 64 x 128 image: left quarter red, middle half green, right quarter blue. Short side 64 ->
  # round(32 * 256 / 224) = 37, so the centre 32 square covers the middle 32/37 of the height
  # and a central band of the width that lies inside the green half.
  img = np.zeros((64, 128, 3), np.uint8)
  img[:, :32, 0] = 255
  img[:, 32:96, 1] = 255
  img[:, 96:, 2] = 255
  out = transforms.eval_transform("imagenet", image_size=32,
                                    channels=3)(_png(img))
  assert out.shape == (32, 32, 3)
  green = (np.array([0.0, 1.0, 0.0]) - transforms.IMAGENET_MEAN) / transforms.IMAGENET_STD
  np.testing.assert_allclose(out.reshape(-1, 3), np.broadcast_to(green, (32 * 32, 3)),
                             atol=1e-4)


def test_train_flip_is_seeded_and_happens_about_half_the_time():
  img = np.zeros((4, 4, 1), np.uint8)
  img[:, 0] = 255
  fn = transforms.train_transform("flip", image_size=None, channels=1)
  flips = [fn(_png(img[..., 0]), np.random.default_rng(s))[0, -1, 0] == 1 for s in range(200)]
  assert 70 < sum(flips) < 130
  a = fn(_png(img[..., 0]), np.random.default_rng(5))
  np.testing.assert_array_equal(a, fn(_png(img[..., 0]), np.random.default_rng(5)))


def test_unknown_augment():
  with pytest.raises(ValueError, match="augment='jitter'"):
    transforms.train_transform("jitter", image_size=8, channels=3)


def _colour_image(seed=0, shape=(40, 60, 3)):
  return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def test_colour_adjustments_match_their_float64_formulas():
  """PIL's blends (torchvision's PIL path) against the formulas in float64: brightness blends
  with black, saturation with the image's luma, contrast with the mean luma; hue shifts H."""
  x = _colour_image()
  img = Image.fromarray(x)
  f = 1.3
  xf = x.astype(np.float64)
  luma = Image.fromarray(x).convert("L")
  l = np.asarray(luma, np.float64)[..., None]
  expect = {
      "brightness": xf * f,
      "saturation": l + f * (xf - l),
      "contrast": int(l.mean() + 0.5) + f * (xf - int(l.mean() + 0.5)),
  }
  for name, ref in expect.items():
    out = np.asarray(transforms.adjust_colour(img, name, f), np.float64)
    np.testing.assert_allclose(out, np.clip(ref, 0, 255), atol=1.0, err_msg=name)
  hsv = np.asarray(img.convert("HSV"), np.int64)
  shifted = np.asarray(transforms.adjust_colour(img, "hue", -0.1).convert("HSV"), np.int64)
  # RGB round trips move H by a few units; the shift itself is int(-25.5) = -25.
  diff = (shifted[..., 0] - hsv[..., 0] + 25 + 128) % 256 - 128
  assert np.median(np.abs(diff)) <= 2


def test_jitter_factors_follow_torchvision_ranges():
  rng = np.random.default_rng(0)
  seen = set()
  for _ in range(200):
    draws = transforms.jitter_factors(rng, (0.3, 0.3, 0.3, 0.1))
    assert sorted(n for n, _ in draws) == ["brightness", "contrast", "hue", "saturation"]
    seen.add(tuple(n for n, _ in draws))
    for name, value in draws:
      lo, hi = (-0.1, 0.1) if name == "hue" else (0.7, 1.3)
      assert lo <= value <= hi
  assert len(seen) > 10  # the order is drawn, as torchvision's randperm
  # A zero strength is skipped (CUB: no hue).
  assert all(n != "hue" for n, _ in transforms.jitter_factors(rng, (0.25, 0.25, 0.25, 0.0)))


def test_fastretri_resize_follows_torchvision():
  img = Image.fromarray(_colour_image(shape=(300, 450, 3)))
  assert transforms.fastretri_resize(img, 256).size == (384, 256)  # int(256 * 450 / 300)
  assert transforms.fastretri_resize(img, (256, 256)).size == (256, 256)
  assert transforms.fastretri_resize(img, None) is img


@pytest.mark.parametrize("augment", sorted(transforms.FASTRETRI))
def test_fastretri_pipelines_shapes_and_eval_centre(augment):
  x = _colour_image(shape=(300, 450, 3))
  out = transforms.train_transform(augment, image_size=224, channels=3)(
      _png(x), np.random.default_rng(0))
  assert out.shape == (224, 224, 3) and out.dtype == np.float32
  ev = transforms.eval_transform(augment, image_size=224, channels=3)(_png(x))
  spec = transforms.FASTRETRI[augment]
  resized = np.asarray(transforms.fastretri_resize(Image.fromarray(x), spec.resize))
  h, w = resized.shape[:2]
  top, left = int(round((h - 224) / 2)), int(round((w - 224) / 2))
  np.testing.assert_allclose(ev, transforms.normalize(resized[top:top + 224, left:left + 224],
                                                      "imagenet"), atol=1e-5)


def test_fastretri_cars_crop_is_square_and_eval_rejects_small_images():
  x = _colour_image(shape=(64, 64, 3))
  with pytest.raises(ValueError, match="smaller than the 224 centre crop"):
    transforms.eval_transform("fastretri_inshop", image_size=224, channels=3)(_png(x))
  rng = np.random.default_rng(1)
  for _ in range(50):
    left, top, w, h = transforms.random_resized_crop_box(
        rng, 256, 256, scale=transforms.FASTRETRI["fastretri_cars"].scale,
        ratio=transforms.FASTRETRI["fastretri_cars"].ratio)
    assert w == h and 0.16 * 256 * 256 - 600 <= w * h


def test_bninception_square_eval_resizes_both_sides_then_takes_the_centre():
  """MPA 4.2: test images resized to 256 x 256, centre 224 (here 37 x 37, centre 32)."""
  img = np.zeros((64, 128, 3), np.uint8)
  img[:, :32, 0] = 255
  img[:, 32:96, 1] = 255
  img[:, 96:, 2] = 255
  out = transforms.eval_transform("bninception_square", image_size=32, channels=3)(_png(img))
  ref = np.asarray(Image.fromarray(img).resize((37, 37), Image.BILINEAR))[2:34, 2:34]
  np.testing.assert_allclose(out, transforms.normalize(ref, "bninception"), atol=1e-4)
  # The squashed image keeps the red and blue quarters inside the crop; the shorter-side resize
  # of "bninception" sees only the green half.
  assert out[16, 0, 2] > 0 and out[16, -1, 0] > 0
  short = transforms.eval_transform("bninception", image_size=32, channels=3)(_png(img))
  assert short[16, 0, 2] < 0 and short[16, -1, 0] < 0
  train = transforms.train_transform("bninception_square", image_size=32, channels=3)
  np.testing.assert_array_equal(
      train(_png(img), np.random.default_rng(3)),
      transforms.train_transform("bninception", image_size=32, channels=3)(
          _png(img), np.random.default_rng(3)))
