"""What the trainer's tests share: a tiny BatchNorm network, random batches, a finished run and
copies of its workdir."""

import shutil

import flax.linen as nn
import numpy as np

from dmlax.train import loop


class TinyBNNet(nn.Module):
  """Dense-BN-ReLU-Dense on flattened images: the smallest model with BatchNorm statistics,
  cross-replica over `bn_axis_name`."""
  bn_axis_name: str | None = None
  hidden: int = 16
  dim: int = 12

  @nn.compact
  def __call__(self, images, *, train: bool):
    x = nn.Dense(self.hidden)(images.reshape(images.shape[0], -1))
    x = nn.BatchNorm(use_running_average=not train, axis_name=self.bn_axis_name, momentum=0.9)(x)
    return nn.Dense(self.dim)(nn.relu(x))


def random_batches(steps: int, batch_size: int, image_size: int, num_classes: int) -> list:
  """`steps` batches of standard normal (batch_size, image_size, image_size, 1) float32 images
  and uniform int32 labels in [0, num_classes); the same on every call."""
  rng = np.random.default_rng(0)
  return [{"image": rng.normal(size=(batch_size, image_size, image_size, 1)).astype(np.float32),
           "label": rng.integers(0, num_classes, batch_size).astype(np.int32)}
          for _ in range(steps)]


def finished_run(config, workdir: str) -> tuple[str, dict]:
  """(workdir, results) of `config` trained to its last step in `workdir`."""
  results = loop.train_and_evaluate(config, workdir)
  assert results["status"] == "done" and results["steps"] == config.num_train_steps
  return workdir, results


def copy_workdir(run: tuple[str, dict], tmp_path, name: str = "run") -> str:
  """A copy of the workdir of `run` (from `finished_run`) at `tmp_path / name`."""
  dest = str(tmp_path / name)
  shutil.copytree(run[0], dest)
  return dest
