"""Images/s per CPU core of the 224x224 training augmentation from JPEG.

  python experiments/bench_input.py [--num_images 48] [--rounds 5]

Writes `--num_images` synthetic photographs (smooth colour fields plus texture, 500x375, JPEG
quality 90: about the size and entropy of an ImageNet/CUB training image) to a temporary
directory, then times, in one thread (one core), `dmlax.data.transforms.train_transform(
"imagenet", image_size=224)` over them: decode + random resized crop + flip + normalisation.
Rates use the process's CPU time (single thread, so images per CPU-second = images/s per
core), which other jobs on a shared machine do not inflate; the median of `--rounds` rounds,
the candidates interleaved. The baseline timed in the same process is the same transform
decoding every JPEG at full size (`jpeg_draft=False`); `decode only` is PIL's full decode
alone. It then prints
how many cores keep a GPU fed at a given training throughput (`--gpu_images_per_s`, default
2,800: our assumption for ResNet-50 mixed-precision training on one H100, not a measurement).
"""
import io
import math
import statistics
import time

from absl import app
from absl import flags
import numpy as np

from dmlax.data import transforms

_NUM_IMAGES = flags.DEFINE_integer("num_images", 48, "synthetic JPEGs to transform")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "interleaved rounds (median)")
_GPU_IMAGES_PER_S = flags.DEFINE_float(
    "gpu_images_per_s", 2800.0, "the training throughput to feed (an assumption, not measured)")


def cpu_medians(fns, *, rounds: int) -> dict[str, float]:
  """Median CPU seconds per call of each function, measured round-robin after one warm-up."""
  for fn in fns.values():
    fn()
  samples = {name: [] for name in fns}
  for _ in range(rounds):
    for name, fn in fns.items():
      start = time.process_time()
      fn()
      samples[name].append(time.process_time() - start)
  return {name: statistics.median(s) for name, s in samples.items()}


def synthetic_jpegs(n: int, seed: int = 0, size=(500, 375)) -> list[bytes]:
  """JPEG bytes of smooth random colour fields with fine texture (photograph-like entropy)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  w, h = size
  out = []
  for _ in range(n):
    coarse = rng.uniform(0, 255, size=(6, 8, 3)).astype(np.uint8)
    field = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), np.float32)
    texture = rng.normal(0, 18, size=(h, w, 3))
    img = np.clip(field + texture, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=90)
    out.append(buf.getvalue())
  return out


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  num_images, gpu_images_per_s = _NUM_IMAGES.value, _GPU_IMAGES_PER_S.value
  from PIL import Image  # pylint: disable=g-import-not-at-top
  jpegs = synthetic_jpegs(num_images)
  fast = transforms.train_transform("imagenet", image_size=224, channels=3)
  full = transforms.train_transform("imagenet", image_size=224, channels=3, jpeg_draft=False)

  def run(fn):
    def go():
      rng = np.random.default_rng(0)
      for j in jpegs:
        fn(j, rng)
    return go

  def decode_only():
    for j in jpegs:
      Image.open(io.BytesIO(j)).convert("RGB").load()

  med = cpu_medians({"train aug (draft)": run(fast), "train aug (full decode)": run(full),
                     "decode only": decode_only}, rounds=_ROUNDS.value)
  kb = np.mean([len(j) for j in jpegs]) / 1024
  print(f"{num_images} JPEGs 500x375, mean {kb:.0f} KiB; one thread")
  base = med["train aug (full decode)"]
  for name, sec in med.items():
    print(f"  {name:24s} {num_images / sec:8.0f} images/s/core   "
          f"time ratio to full-decode aug {sec / base:.2f}")
  rate = num_images / med["train aug (draft)"]
  print(f"cores for {gpu_images_per_s:.0f} images/s (assumed GPU training rate): "
        f"{math.ceil(gpu_images_per_s / rate)} (draft) / "
        f"{math.ceil(gpu_images_per_s / (num_images / base))} (full decode), "
        "before the pipeline's own overhead")


if __name__ == "__main__":
  app.run(main)
