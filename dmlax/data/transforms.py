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
  - "bninception_square": training as "bninception"; evaluation resizes both sides to
    `round(image_size * 256 / 224)` before the centre crop (MPA section 4.2: "test images are
    resized to 256x256 and cropped to 224x224 at the image center").
  - "face": resize to `image_size` if given, random flip, `(x - 127.5) / 128` (W-Softmax 5.5,
    aligned LFW/CASIA faces).
  - "fastretri_cub", "fastretri_cars", "fastretri_sop", "fastretri_inshop": what SGSL's
    authors ran (luyang-NWPU/SGSL `projects/FastRetri/fastretri/trainer.py` with the settings of
    `projects/FastRetri/logs/r50-base_<dataset>/config.yaml`, see `FASTRETRI`): bicubic resize
    (CUB: shorter side 256; Cars196, SOP: 256 x 256; In-shop: none), colour jitter (CUB: 0.25
    brightness/contrast/saturation; Cars196: 0.3/0.3/0.3 and hue 0.1; SOP, In-shop: none)
    applied to every image, bicubic random resized crop to `image_size` (224) at area 0.16-1
    and aspect 3/4-4/3 (Cars196: 1), random flip, ImageNet mean/std. That trainer does not read
    the config's padding (`DO_PAD`, `PADDING: 10`) or jitter probability (`CJ.PROB: 0.5`):
    neither is applied here either.
Evaluation uses the same normalisation with no randomness: "imagenet"/"bninception" resize the
shorter side to `round(image_size * 256 / 224)` and take the centre `image_size` square (MPA:
resize 256, centre crop 224); "fastretri_*" resize as in training and take the centre
`image_size` square (torchvision's `CenterCrop`, as that trainer's test loader); the others
resize to `image_size` if given.

Example:
  >>> import io, PIL.Image
  >>> buf = io.BytesIO()
  >>> PIL.Image.new("RGB", (500, 375), (120, 30, 200)).save(buf, format="JPEG")
  >>> fn = train_transform("imagenet", image_size=224, channels=3)
  >>> x = fn(buf.getvalue(), np.random.default_rng(0))
  >>> x.dtype, x.shape
  (dtype('float32'), (224, 224, 3))
"""
import dataclasses
import io
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class FastRetri:
  """One dataset's input pipeline in SGSL's authors' FastRetri trainer.

  Attributes:
    resize: (height, width) for both sides, an int for the shorter side (torchvision's
      `Resize(int)`), or None for no resize (`SIZE_TRAIN`/`SIZE_TEST`; bicubic).
    jitter: torchvision `ColorJitter(brightness, contrast, saturation, hue)` or None (`CJ`).
    scale, ratio: the random resized crop's area and aspect ranges (`SCALE`, `RATIO`).
  """
  resize: tuple[int, int] | int | None
  jitter: tuple[float, float, float, float] | None
  scale: tuple[float, float] = (0.16, 1.0)
  ratio: tuple[float, float] = (0.75, 1.33333)


# luyang-NWPU/SGSL projects/FastRetri/logs/r50-base_{cub,cars,sop,inshop}/config.yaml (INPUT).
FASTRETRI = {
    "fastretri_cub": FastRetri(resize=256, jitter=(0.25, 0.25, 0.25, 0.0)),
    "fastretri_cars": FastRetri(resize=(256, 256), jitter=(0.3, 0.3, 0.3, 0.1),
                                ratio=(1.0, 1.0)),
    "fastretri_sop": FastRetri(resize=(256, 256), jitter=None),
    "fastretri_inshop": FastRetri(resize=None, jitter=None),
}
AUGMENTS = ("none", "flip", "cifar", "imagenet", "bninception", "bninception_square", "face",
            *FASTRETRI)
_BNINCEPTION = ("bninception", "bninception_square")
_CROPPED = ("imagenet", *_BNINCEPTION, *FASTRETRI)
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
  if augment == "imagenet" or augment in FASTRETRI:
    # (x / 255 - mean) / std as one subtract and one multiply.
    x -= IMAGENET_MEAN * 255.0
    x *= 1.0 / (IMAGENET_STD * 255.0)
    return x
  if augment in _BNINCEPTION:
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


def fastretri_resize(image, resize):
  """torchvision `Resize(resize, interpolation=BICUBIC)` on a PIL image (None: unchanged)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  if resize is None:
    return image
  width, height = image.size
  if isinstance(resize, int):
    # Shorter side to `resize`, the longer one truncated as torchvision computes it.
    if width <= height:
      size = (resize, int(resize * height / width))
    else:
      size = (int(resize * width / height), resize)
  else:
    size = (resize[1], resize[0])
  return image if image.size == size else image.resize(size, Image.BICUBIC)


def jitter_factors(rng: np.random.Generator, jitter) -> list[tuple[str, float]]:
  """torchvision `ColorJitter.get_params`: the four adjustments in a random order, each factor
  uniform in [max(0, 1 - j), 1 + j] (hue: [-j, j]); a zero strength is skipped."""
  names = ("brightness", "contrast", "saturation", "hue")
  out = []
  for i in rng.permutation(4):
    strength = jitter[i]
    if strength <= 0:
      continue
    lo, hi = (-strength, strength) if names[i] == "hue" else (max(0.0, 1 - strength),
                                                              1 + strength)
    out.append((names[i], float(rng.uniform(lo, hi))))
  return out


def adjust_colour(image, name: str, factor: float):
  """torchvision's PIL colour adjustments (`torchvision.transforms._functional_pil`):
  brightness, contrast, saturation by `PIL.ImageEnhance` blends, hue by shifting the HSV hue
  channel by `factor * 255` (mod 256)."""
  from PIL import Image, ImageEnhance  # pylint: disable=g-import-not-at-top
  if name == "brightness":
    return ImageEnhance.Brightness(image).enhance(factor)
  if name == "contrast":
    return ImageEnhance.Contrast(image).enhance(factor)
  if name == "saturation":
    return ImageEnhance.Color(image).enhance(factor)
  if name == "hue":
    if image.mode in ("L", "1", "I", "F"):
      return image
    mode = image.mode
    h, s, v = image.convert("HSV").split()
    # torchvision adds np.uint8(factor * 255) to the uint8 hue: a shift truncated to an integer,
    # wrapping modulo 256.
    shifted = np.asarray(h, np.uint8).astype(np.int64) + int(factor * 255)
    h = Image.fromarray((shifted % 256).astype(np.uint8), "L")
    return Image.merge("HSV", (h, s, v)).convert(mode)
  raise ValueError(f"adjust_colour: unknown adjustment {name!r}")


class TrainTransform:
  """`fn(encoded, rng) -> float32 (H, W, C)`; a class (not a closure) so worker processes can
  receive it by pickling."""

  def __init__(self, augment: str, *, image_size: int | None, channels: int,
               jpeg_draft: bool = True):
    check_augment(augment)
    if augment in _CROPPED and image_size is None:
      image_size = 224
    self.augment, self.image_size, self.channels = augment, image_size, channels
    self.jpeg_draft = jpeg_draft

  def __call__(self, encoded, rng: np.random.Generator) -> np.ndarray:
    augment, image_size = self.augment, self.image_size
    image, mode = open_image(encoded, self.channels)
    if augment in FASTRETRI:
      from PIL import Image  # pylint: disable=g-import-not-at-top
      spec = FASTRETRI[augment]
      image = fastretri_resize(image.convert(mode), spec.resize)
      if spec.jitter is not None:
        for name, factor in jitter_factors(rng, spec.jitter):
          image = adjust_colour(image, name, factor)
      left, top, w, h = random_resized_crop_box(rng, *image.size, scale=spec.scale,
                                                ratio=spec.ratio)
      image = image.resize((image_size, image_size), Image.BICUBIC,
                           box=(left, top, left + w, top + h))
      x = _to_array(image, mode)
    elif augment in ("imagenet", *_BNINCEPTION):
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
    if augment in _CROPPED and image_size is None:
      image_size = 224
    self.augment, self.image_size, self.channels = augment, image_size, channels

  def __call__(self, encoded) -> np.ndarray:
    augment, image_size = self.augment, self.image_size
    image, mode = open_image(encoded, self.channels)
    if augment in FASTRETRI:
      image = fastretri_resize(image.convert(mode), FASTRETRI[augment].resize)
      width, height = image.size
      if width < image_size or height < image_size:
        raise ValueError(f"augment={augment!r}: a {width}x{height} image is smaller than the "
                         f"{image_size} centre crop")
      # torchvision CenterCrop: offsets int(round((size - crop) / 2)).
      left = int(round((width - image_size) / 2.0))
      top = int(round((height - image_size) / 2.0))
      x = _to_array(image.crop((left, top, left + image_size, top + image_size)), mode)
    elif augment == "bninception_square":
      # torchvision Resize((side, side)) then CenterCrop(image_size), as two steps.
      side = round(image_size * _EVAL_RESIZE_RATIO)
      image = _resize_crop(image.convert(mode), (0, 0, *image.size), (side, side))
      offset = int(round((side - image_size) / 2.0))
      x = _to_array(image.crop((offset, offset, offset + image_size, offset + image_size)), mode)
    elif augment in ("imagenet", "bninception"):
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
