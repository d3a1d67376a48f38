"""Image decoding, augmentation and normalisation in NumPy/PIL (no TensorFlow).

Train augmentations (`augment=`):
  - "none": resize to `image_size` if given; values in [0, 1].
  - "flip": as "none" plus a random horizontal flip.
  - "cifar": zero-pad 4 pixels, random crop back, random flip (the usual CIFAR recipe).
  - "imagenet": random resized crop (area 0.08-1, aspect 3/4-4/3, torchvision's
    `RandomResizedCrop` algorithm), random flip, ImageNet mean/std normalisation (the "standard
    preprocessing ... applied to ImageNet classification" of GSL supp. B.1; MPA 4.2; SGSL).
  - "bninception": the same crop and flip, then BGR channel order, 0-255 scale, minus the mean
    (104, 117, 128) per B, G, R channel: the input of the Caffe-trained BN-Inception used by MPA
    (as ProxyAnchor's reference code prepares it).
  - "face": resize to `image_size` if given, random flip, `(x - 127.5) / 128` (W-Softmax 5.5,
    aligned LFW/CASIA faces).
Evaluation uses the same normalisation with no randomness: "imagenet"/"bninception" resize the
shorter side to `round(image_size * 256 / 224)` and take the centre `image_size` square (MPA:
resize 256, centre crop 224); the others resize to `image_size` if given.

Example:
  >>> fn = train_transform("imagenet", image_size=224, channels=3)
  >>> x = fn(jpeg_bytes, np.random.default_rng(0))   # float32 (224, 224, 3)
"""
import io
import math

import numpy as np

AUGMENTS = ("none", "flip", "cifar", "imagenet", "bninception", "face")
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
BNINCEPTION_MEAN_BGR = np.array([104.0, 117.0, 128.0], dtype=np.float32)
_EVAL_RESIZE_RATIO = 256 / 224


def check_augment(augment: str) -> None:
  if augment not in AUGMENTS:
    raise ValueError(f"augment={augment!r}; expected one of {AUGMENTS}")


def open_image(encoded, channels: int):
  """A PIL image (mode RGB or L per `channels`) from encoded bytes or a uint8 array."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  if isinstance(encoded, np.ndarray):
    image = Image.fromarray(encoded.squeeze(-1) if encoded.ndim == 3 and
                            encoded.shape[-1] == 1 else encoded)
  else:
    image = Image.open(io.BytesIO(encoded))
  return image, ("RGB" if channels == 3 else "L")


def _to_array(image, mode: str) -> np.ndarray:
  if image.mode != mode:
    image = image.convert(mode)
  x = np.asarray(image, dtype=np.uint8)
  return x[..., None] if x.ndim == 2 else x


def normalize(x: np.ndarray, augment: str) -> np.ndarray:
  """uint8 (H, W, C) -> float32 in the input convention of `augment`."""
  x = x.astype(np.float32)
  if augment == "imagenet":
    # (x / 255 - mean) / std as one subtract and one multiply.
    x -= IMAGENET_MEAN * 255.0
    x *= 1.0 / (IMAGENET_STD * 255.0)
    return x
  if augment == "bninception":
    return x[..., ::-1] - BNINCEPTION_MEAN_BGR
  if augment == "face":
    x -= 127.5
    x *= 1.0 / 128.0
    return x
  x *= 1.0 / 255.0
  return x


def random_resized_crop_box(rng: np.random.Generator, width: int, height: int,
                            scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
  """(left, top, w, h) as torchvision's `RandomResizedCrop.get_params` draws it.

  Ten tries of area ~ U(scale) * W * H and log-aspect ~ U(log ratio); else the centre crop
  clamped to the ratio range.
  """
  area = width * height
  log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
  for _ in range(10):
    target = area * rng.uniform(scale[0], scale[1])
    aspect = math.exp(rng.uniform(*log_ratio))
    w = int(round(math.sqrt(target * aspect)))
    h = int(round(math.sqrt(target / aspect)))
    if 0 < w <= width and 0 < h <= height:
      return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
  in_ratio = width / height
  if in_ratio < ratio[0]:
    w, h = width, int(round(width / ratio[0]))
  elif in_ratio > ratio[1]:
    w, h = int(round(height * ratio[1])), height
  else:
    w, h = width, height
  return (width - w) // 2, (height - h) // 2, w, h


def _draft(image, want_w: int, want_h: int, box):
  """Lets libjpeg decode at 1/2, 1/4 or 1/8 scale when the result is downsampled anyway.

  Returns the (possibly smaller) image and `box` scaled to it. Not a JPEG: unchanged.
  """
  if getattr(image, "format", None) != "JPEG":
    return image, box
  full = image.size
  image.draft("RGB" if image.mode != "L" else "L",
              (max(1, math.ceil(want_w)), max(1, math.ceil(want_h))))
  sx, sy = image.size[0] / full[0], image.size[1] / full[1]
  left, top, w, h = box
  return image, (left * sx, top * sy, w * sx, h * sy)


def _resize_crop(image, box, size: tuple[int, int]):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  left, top, w, h = box
  return image.resize(size, Image.BILINEAR, box=(left, top, left + w, top + h))


class TrainTransform:
  """`fn(encoded, rng) -> float32 (H, W, C)`; a class (not a closure) so worker processes can
  receive it by pickling."""

  def __init__(self, augment: str, *, image_size: int | None, channels: int,
               jpeg_draft: bool = True):
    check_augment(augment)
    if augment in ("imagenet", "bninception") and image_size is None:
      image_size = 224
    self.augment, self.image_size, self.channels = augment, image_size, channels
    self.jpeg_draft = jpeg_draft

  def __call__(self, encoded, rng: np.random.Generator) -> np.ndarray:
    augment, image_size = self.augment, self.image_size
    image, mode = open_image(encoded, self.channels)
    if augment in ("imagenet", "bninception"):
      box = random_resized_crop_box(rng, *image.size)
      ratio_w, ratio_h = image_size / box[2], image_size / box[3]
      if self.jpeg_draft:
        image, box = _draft(image, image.size[0] * ratio_w, image.size[1] * ratio_h, box)
      x = _to_array(_resize_crop(image.convert(mode), box, (image_size, image_size)), mode)
    else:
      if image_size is not None and image.size != (image_size, image_size):
        image = _resize_crop(image.convert(mode), (0, 0, *image.size), (image_size, image_size))
      x = _to_array(image, mode)
      if augment == "cifar":
        padded = np.pad(x, ((4, 4), (4, 4), (0, 0)))
        top, left = rng.integers(0, 9, size=2)
        x = padded[top:top + x.shape[0], left:left + x.shape[1]]
    if augment != "none" and rng.random() < 0.5:
      x = x[:, ::-1]
    return normalize(x, augment)


class EvalTransform:
  """`fn(encoded) -> float32 (H, W, C)`: the deterministic counterpart of `TrainTransform`."""

  def __init__(self, augment: str, *, image_size: int | None, channels: int):
    check_augment(augment)
    if augment in ("imagenet", "bninception") and image_size is None:
      image_size = 224
    self.augment, self.image_size, self.channels = augment, image_size, channels

  def __call__(self, encoded) -> np.ndarray:
    augment, image_size = self.augment, self.image_size
    image, mode = open_image(encoded, self.channels)
    if augment in ("imagenet", "bninception"):
      short = round(image_size * _EVAL_RESIZE_RATIO)
      width, height = image.size
      scale = short / min(width, height)
      crop = image_size / scale  # The centre square, in original pixels.
      box = ((width - crop) / 2, (height - crop) / 2, crop, crop)
      image, box = _draft(image, width * scale, height * scale, box)
      x = _to_array(_resize_crop(image.convert(mode), box, (image_size, image_size)), mode)
    else:
      if image_size is not None and image.size != (image_size, image_size):
        image = _resize_crop(image.convert(mode), (0, 0, *image.size), (image_size, image_size))
      x = _to_array(image, mode)
    return normalize(x, augment)


def train_transform(augment: str, *, image_size: int | None, channels: int,
                    jpeg_draft: bool = True) -> TrainTransform:
  """`fn(encoded, rng) -> float32 (H, W, C)` for training with augmentation `augment`.

  `jpeg_draft` lets libjpeg decode large JPEGs at a reduced scale when the crop is
  downsampled anyway (PIL `Image.draft`); False decodes at full size (the benchmark's
  baseline, `experiments/bench_input.py`).
  """
  return TrainTransform(augment, image_size=image_size, channels=channels,
                        jpeg_draft=jpeg_draft)


def eval_transform(augment: str, *, image_size: int | None, channels: int) -> EvalTransform:
  """`fn(encoded) -> float32 (H, W, C)`: the deterministic counterpart of `train_transform`."""
  return EvalTransform(augment, image_size=image_size, channels=channels)
