"""`glyphs`: generated compositional images where metric learning has something to learn.

A class is a (shape, colour, texture) triple: 8 shapes x 8 colours x 3 textures = 192 possible
classes, of which the default config draws 100 at random; classes 0-63 train and 64-99 are
held out. Every shape, colour and texture value of a held-out class also appears among the
training classes, so an embedding that learnt the factors transfers to classes it never saw.
Half of the classes (drawn at random) have two visual modes: one large object (mode 0) or a
pair of smaller copies side by side (mode 1); the rest always show one object (mode 0). The
pairing is the same kind of variation in every two-mode class, training or held out.

Nuisance factors, drawn independently for every image, that defeat matching raw pixels:
the object's centre (+-5 px), size (half-extent 0.27 x 32 x U(0.75, 1.2) px), rotation
(+-30 degrees), a background of a random grey-tinted gradient with 2-4 clutter strokes in
random palette colours, colour jitter (+-20 per channel) and Gaussian pixel noise (sigma 10).
Images are drawn at 64x64 and averaged down to 32x32x3 uint8 (anti-aliasing).

Generator version 1 (`GENERATOR_VERSION`): every random draw derives from the config's `seed`
through `numpy.random.default_rng([seed, stream])` (stream 0: the classes and which classes
have two modes; 1 + class: that class's images), so two builds are byte-identical and
changing one class's size leaves the others' images unchanged.

Default config (`glyphs/default`): 100 classes x 48 images = 4,800 images. tfds splits `train`
(32 a class) and `test` (16 a class), by position within the class; the protocols in
`dmlax.data.registry` pool or select them (retrieval: classes 0-63 / 64-99, both splits).

Example:
  builder = Glyphs(data_dir="/tmp/tfds", file_format="array_record")
  builder.download_and_prepare()
"""
import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from dmlax.data.builders import multicenter

GENERATOR_VERSION = 1
SHAPES = ("disk", "ring", "square", "triangle", "cross", "star", "crescent", "bar")
COLOURS = np.array([
    [220, 40, 40], [240, 140, 20], [230, 220, 40], [40, 180, 60], [40, 200, 210],
    [40, 80, 220], [150, 50, 200], [240, 120, 180]], dtype=np.float64)
TEXTURES = ("solid", "stripes", "checker")
_SUPER = 2  # Drawn at _SUPER x the stored size, then averaged down.


@dataclasses.dataclass
class GlyphsConfig(tfds.core.BuilderConfig):
  num_classes: int = 100
  num_train_classes: int = 64
  images_per_class: int = 48
  size: int = 32
  seed: int = 0


def glyph_classes(config: GlyphsConfig) -> tuple[np.ndarray, np.ndarray]:
  """(factors, two_modes): int (C, 3) shape/colour/texture indices, bool (C,) two-mode classes.

  Raises:
    ValueError: more classes than factor combinations, or a training/held-out split that is
      empty.
  """
  combos = len(SHAPES) * len(COLOURS) * len(TEXTURES)
  if not 0 < config.num_classes <= combos:
    raise ValueError(f"num_classes={config.num_classes} must lie in [1, {combos}]")
  if not 0 < config.num_train_classes < config.num_classes:
    raise ValueError(f"num_train_classes={config.num_train_classes} must lie in "
                     f"[1, num_classes={config.num_classes})")
  rng = np.random.default_rng([config.seed, 0])
  pick = rng.permutation(combos)[:config.num_classes]
  factors = np.stack(np.unravel_index(pick, (len(SHAPES), len(COLOURS), len(TEXTURES))), -1)
  two_modes = np.zeros(config.num_classes, bool)
  two_modes[rng.permutation(config.num_classes)[:config.num_classes // 2]] = True
  return factors.astype(np.int64), two_modes


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
  """Inside-mask of `shape` in its own frame (u, v scaled so the shape spans about [-1, 1])."""
  rho2 = u**2 + v**2
  if shape == "disk":
    return rho2 <= 1.0
  if shape == "ring":
    return (rho2 <= 1.0) & (rho2 >= 0.5**2)
  if shape == "square":
    return (np.abs(u) <= 0.82) & (np.abs(v) <= 0.82)
  if shape == "triangle":
    return (v <= 0.8) & (np.abs(u) <= (v + 0.95) * 0.6)
  if shape == "cross":
    return (((np.abs(u) <= 0.32) & (np.abs(v) <= 1.0)) |
            ((np.abs(v) <= 0.32) & (np.abs(u) <= 1.0)))
  if shape == "star":
    phi = np.arctan2(v, u)
    return np.sqrt(rho2) <= 0.42 + 0.58 * ((1.0 + np.cos(5.0 * phi)) / 2.0)**1.5
  if shape == "crescent":
    return (rho2 <= 1.0) & ((u - 0.45)**2 + (v + 0.1)**2 >= 0.75**2)
  if shape == "bar":
    return (np.abs(u) <= 1.0) & (np.abs(v) <= 0.36)
  raise ValueError(f"unknown shape {shape!r}")


def _texture_dark(texture: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
  """Where the texture shows its dark tone, in the shape's frame (so it turns with it)."""
  if texture == "solid":
    return np.zeros(u.shape, bool)
  if texture == "stripes":
    return np.floor((u + 4.0) / 0.38) % 2 == 1
  if texture == "checker":
    return (np.floor((u + 4.0) / 0.5) + np.floor((v + 4.0) / 0.5)) % 2 == 1
  raise ValueError(f"unknown texture {texture!r}")


def render_glyph(rng: np.random.Generator, factors, mode: int, size: int = 32) -> np.ndarray:
  """One (size, size, 3) uint8 image of a class with `factors` in `mode` (0 one, 1 a pair)."""
  shape, colour, texture = (int(f) for f in factors)
  n = size * _SUPER
  px = n / 32.0  # Drawing units: pixels of a 32x32 image.
  y, x = np.mgrid[0:n, 0:n].astype(np.float64) + 0.5
  # Background: a grey-tinted linear gradient, then clutter strokes in palette colours.
  ends = rng.uniform(60, 190, size=(2, 1)) + rng.uniform(-30, 30, size=(2, 3))
  angle = rng.uniform(0, 2 * np.pi)
  t = ((x - n / 2) * np.cos(angle) + (y - n / 2) * np.sin(angle)) / n + 0.5
  img = ends[0] + np.clip(t, 0, 1)[..., None] * (ends[1] - ends[0])
  for _ in range(rng.integers(2, 5)):
    p0, p1 = rng.uniform(0, n, size=(2, 2))
    width = rng.uniform(0.7, 1.6) * px
    d = p1 - p0
    s = np.clip(((x - p0[0]) * d[0] + (y - p0[1]) * d[1]) / max(d @ d, 1e-9), 0, 1)
    near = (x - p0[0] - s * d[0])**2 + (y - p0[1] - s * d[1])**2 <= width**2
    img[near] = COLOURS[rng.integers(len(COLOURS))] + rng.uniform(-20, 20, size=3)
  # The object(s).
  r = 0.27 * 32 * rng.uniform(0.75, 1.2) * px
  cy, cx = n / 2 + rng.uniform(-5, 5, size=2) * px
  theta = np.deg2rad(rng.uniform(-30, 30))
  fg = COLOURS[colour] + rng.uniform(-20, 20, size=3)
  if mode == 0:
    centres, rr = [(cy, cx)], r
  else:
    rr = 0.6 * r
    phi = rng.uniform(0, np.pi)
    off = 0.85 * r * np.array([np.sin(phi), np.cos(phi)])
    centres = [(cy + off[0], cx + off[1]), (cy - off[0], cx - off[1])]
  for oy, ox in centres:
    dy, dx = (y - oy) / rr, (x - ox) / rr
    u = dx * np.cos(theta) + dy * np.sin(theta)
    v = -dx * np.sin(theta) + dy * np.cos(theta)
    inside = _shape_mask(SHAPES[shape], u, v)
    dark = _texture_dark(TEXTURES[texture], u, v)
    img[inside & ~dark] = fg
    img[inside & dark] = 0.35 * fg
  img = img.reshape(size, _SUPER, size, _SUPER, 3).mean(axis=(1, 3))
  img = img + rng.normal(0, 10, size=img.shape)
  return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def render_class(config: GlyphsConfig, c: int, classes=None) -> tuple[np.ndarray, np.ndarray]:
  """Class `c`'s images (images_per_class, size, size, 3) uint8 and their modes.

  Two-mode classes alternate the modes (even positions one object, odd a pair).
  """
  factors, two_modes = glyph_classes(config) if classes is None else classes
  rng = np.random.default_rng([config.seed, 1 + c])
  modes = (np.arange(config.images_per_class) % 2 if two_modes[c]
           else np.zeros(config.images_per_class, np.int64))
  images = np.stack([render_glyph(rng, factors[c], int(m), config.size) for m in modes])
  return images, modes.astype(np.int64)


def render_glyphs(config: GlyphsConfig):
  """All images (N, size, size, 3) uint8 and their labels, modes (N,), class-major order."""
  classes = glyph_classes(config)
  parts = [render_class(config, c, classes) for c in range(config.num_classes)]
  labels = np.repeat(np.arange(config.num_classes, dtype=np.int64), config.images_per_class)
  return (np.concatenate([p[0] for p in parts]), labels,
          np.concatenate([p[1] for p in parts]))


def in_test_split(config: GlyphsConfig) -> np.ndarray:
  """Boolean (N,): the images of the tfds `test` split (every third position of a class)."""
  within = np.arange(config.num_classes * config.images_per_class) % config.images_per_class
  return within % 3 == 2


class Glyphs(tfds.core.GeneratorBasedBuilder):
  """Generated shape x colour x texture classes with nuisances; some classes have two modes."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release (generator version 1)."}
  BUILDER_CONFIGS = [GlyphsConfig(
      name="default", description="100 classes (64 train / 36 held out) x 48 images, 32x32x3.")]

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    return self.dataset_info_from_configs(
        description=("Generated compositional images: a class is a (shape, colour, texture) "
                     "triple under position, size, rotation, clutter and noise; half the "
                     "classes have two modes (one object or a pair)."),
        features=multicenter.generated_features(cfg.size, cfg.num_classes),
        supervised_keys=("image", "label"),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Generated.
    images, labels, modes = render_glyphs(self.builder_config)
    test = in_test_split(self.builder_config)
    return {
        "train": self._generate_examples(images, labels, modes, np.flatnonzero(~test)),
        "test": self._generate_examples(images, labels, modes, np.flatnonzero(test)),
    }

  def _generate_examples(self, images, labels, modes, index):
    for i in index:
      yield int(i), {"image": images[i], "label": int(labels[i]), "mode": int(modes[i]),
                     "id": int(i)}
