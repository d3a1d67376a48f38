"""`multicenter`: generated images whose every class has several distinct visual modes.

The situation the multi-proxy anchor paper targets (MPA, section 1: "each class could have
several local centers"): one proxy per class cannot sit near every image of a class, several
can. Each class `c` owns `modes` prototypes; a prototype is a (shape, foreground colour,
background colour) triple drawn so that no two prototypes in the dataset are equal, and modes
of one class share no shape and no colour, so a class is a union of far-apart clusters. An
image is its prototype rendered with a random centre shift (+-4 px), size (+-25%), colour
jitter (+-24 per channel) and Gaussian pixel noise (sigma 8). Everything derives from `seed`
through `numpy.random.default_rng`, so two builds are byte-identical.

Default config (`multicenter/default`): 20 classes x 3 modes x 20 images = 1,200 RGB images of
32x32. Splits: `train` / `test` hold 2/3 and 1/3 of every (class, mode) cell (classification);
the retrieval protocol (classes 0-9 train, 10-19 test) lives in `dmlax.data.protocols`.

Example:
  builder = Multicenter(data_dir="/tmp/tfds", file_format="array_record")
  builder.download_and_prepare()
"""
import dataclasses

import numpy as np
import tensorflow_datasets as tfds

SHAPES = ("disk", "square", "ring", "cross", "hstripes", "vstripes", "checker", "triangle",
          "diamond", "frame")
PALETTE = np.array([
    [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
    [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212],
    [0, 128, 128], [170, 110, 40], [255, 250, 200], [128, 0, 0], [170, 255, 195],
    [0, 0, 128], [255, 255, 255], [40, 40, 40]], dtype=np.float64)


@dataclasses.dataclass
class MulticenterConfig(tfds.core.BuilderConfig):
  num_classes: int = 20
  modes: int = 3
  images_per_mode: int = 20
  size: int = 32
  seed: int = 0


def _mask(shape: str, size: int, cy: float, cx: float, r: float) -> np.ndarray:
  """Boolean (size, size) mask of `shape` centred at (cy, cx) with half-extent r."""
  y, x = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
  dy, dx = y - cy, x - cx
  inside = (np.abs(dy) <= r) & (np.abs(dx) <= r)
  if shape == "disk":
    return dy**2 + dx**2 <= r**2
  if shape == "square":
    return inside
  if shape == "ring":
    d2 = dy**2 + dx**2
    return (d2 <= r**2) & (d2 >= (0.55 * r)**2)
  if shape == "cross":
    return inside & ((np.abs(dy) <= 0.3 * r) | (np.abs(dx) <= 0.3 * r))
  if shape == "hstripes":
    return inside & (np.floor((dy + r) / max(r / 3, 1.0)) % 2 == 0)
  if shape == "vstripes":
    return inside & (np.floor((dx + r) / max(r / 3, 1.0)) % 2 == 0)
  if shape == "checker":
    cell = max(r / 2, 1.0)
    return inside & ((np.floor((dy + r) / cell) + np.floor((dx + r) / cell)) % 2 == 0)
  if shape == "triangle":
    return inside & (np.abs(dx) <= (dy + r) / 2)
  if shape == "diamond":
    return np.abs(dy) + np.abs(dx) <= r
  if shape == "frame":
    return inside & ((np.abs(dy) >= 0.6 * r) | (np.abs(dx) >= 0.6 * r))
  raise ValueError(f"unknown shape {shape!r}")


def multicenter_prototypes(config: MulticenterConfig) -> np.ndarray:
  """Int array (classes, modes, 3): shape, foreground and background palette indices.

  Drawn without repetition of a triple; within a class the modes differ in shape and colours.
  """
  rng = np.random.default_rng([config.seed, 0])
  if config.modes > min(len(SHAPES), len(PALETTE) // 2):
    raise ValueError(f"modes={config.modes} exceeds the {len(SHAPES)} shapes available")
  used = set()
  protos = np.zeros((config.num_classes, config.modes, 3), dtype=np.int64)
  for c in range(config.num_classes):
    while True:
      shapes = rng.choice(len(SHAPES), size=config.modes, replace=False)
      colours = rng.choice(len(PALETTE), size=2 * config.modes, replace=False)
      triples = [(int(shapes[k]), int(colours[2 * k]), int(colours[2 * k + 1]))
                 for k in range(config.modes)]
      if not used.intersection(triples):
        break
    used.update(triples)
    protos[c] = np.array(triples)
  return protos


def render_multicenter(config: MulticenterConfig):
  """All images (N, size, size, 3) uint8, labels (N,), modes (N,), in generation order."""
  protos = multicenter_prototypes(config)
  rng = np.random.default_rng([config.seed, 1])
  s = config.size
  images, labels, modes = [], [], []
  for c in range(config.num_classes):
    for k in range(config.modes):
      shape, fg, bg = protos[c, k]
      for _ in range(config.images_per_mode):
        cy, cx = s / 2 + rng.uniform(-4, 4, size=2) * s / 32
        r = s * 0.3 * rng.uniform(0.75, 1.25)
        fg_rgb = PALETTE[fg] + rng.uniform(-24, 24, size=3)
        bg_rgb = PALETTE[bg] + rng.uniform(-24, 24, size=3)
        m = _mask(SHAPES[shape], s, cy, cx, r)[..., None]
        img = np.where(m, fg_rgb, bg_rgb) + rng.normal(0, 8, size=(s, s, 3))
        images.append(np.clip(np.rint(img), 0, 255).astype(np.uint8))
        labels.append(c)
        modes.append(k)
  return np.stack(images), np.array(labels), np.array(modes)


def generated_features(size: int, num_classes: int) -> tfds.features.FeaturesDict:
  """The features of a generated image dataset (multicenter, glyphs): a PNG-encoded
  (size, size, 3) image, its class, which visual mode of the class drew it, and its index."""
  return tfds.features.FeaturesDict({
      "image": tfds.features.Image(shape=(size, size, 3), encoding_format="png"),
      "label": tfds.features.ClassLabel(num_classes=num_classes),
      "mode": tfds.features.Scalar(dtype=np.int64),
      "id": tfds.features.Scalar(dtype=np.int64),
  })


class Multicenter(tfds.core.GeneratorBasedBuilder):
  """Generated multi-modal classes: several distinct visual modes per class."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  BUILDER_CONFIGS = [MulticenterConfig(name="default", description="20 classes x 3 modes x 20 images, 32x32x3.")]

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    return self.dataset_info_from_configs(
        description="Generated images; every class is a union of distinct visual modes.",
        features=generated_features(cfg.size, cfg.num_classes),
        supervised_keys=("image", "label"),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Generated.
    images, labels, modes = render_multicenter(self.builder_config)
    # Generation order is cell-major, so position within a cell decides the split.
    within = np.arange(len(labels)) % self.builder_config.images_per_mode
    test = within % 3 == 2
    return {
        "train": self._generate_examples(images, labels, modes, np.flatnonzero(~test)),
        "test": self._generate_examples(images, labels, modes, np.flatnonzero(test)),
    }

  def _generate_examples(self, images, labels, modes, index):
    for i in index:
      yield int(i), {"image": images[i], "label": int(labels[i]), "mode": int(modes[i]),
                     "id": int(i)}
