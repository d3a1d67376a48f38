"""Converts PyTorch ImageNet weights into a Flax-layout `.npz` checkpoint of a dmlax backbone.

    python -m experiments.convert_weights --model resnet50 \
        --input resnet50-11ad3fa6.pth --output weights/resnet50_flax.npz
    python -m experiments.convert_weights --model bn_inception \
        --input bn_inception-52deb4733.pth --output weights/bn_inception_flax.npz

The input is a torchvision (or Cadene, for bn_inception) state dict as .pth (needs PyTorch),
.safetensors or .npz. The output is an `.npz` with one array per Flax path
(`params/conv1/kernel`, `batch_stats/bn1/mean`, ...); `dmlax.models.load_pretrained` reads it
back without PyTorch and checks it against the model like any other source. Every key is
checked on the way in: missing, unexpected or mis-shaped keys stop the conversion with a list.
"""

from __future__ import annotations

import math
import os

from absl import app
from absl import flags
import jax

from dmlax.models import pretrained

_MODEL = flags.DEFINE_enum("model", None, list(pretrained.PRETRAINED_NAMES), "the backbone",
                           required=True)
_INPUT = flags.DEFINE_string("input", None, ".pth, .pt, .safetensors or .npz", required=True)
_OUTPUT = flags.DEFINE_string("output", None, "output .npz", required=True)
_RBR = flags.DEFINE_bool("rbr", False, "drop the final block's last BatchNorm (for an RBR model)")
_NO_FC = flags.DEFINE_bool("no_fc", False, "vgg16_bn only: convert the conv trunk without fc6/fc7")


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  variables = pretrained.load_pretrained(_MODEL.value, _INPUT.value, rbr=_RBR.value,
                                         include_fc=not _NO_FC.value)
  os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
  pretrained.save_converted(variables, _OUTPUT.value)
  count = sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(variables["params"]))
  print(f"{_MODEL.value}: {count:,} backbone parameters written to {_OUTPUT.value}")
  return 0


if __name__ == "__main__":
  app.run(main)
