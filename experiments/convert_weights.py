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

import argparse
import math
import os
import sys

import jax

from dmlax.models import pretrained


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", required=True, choices=pretrained.PRETRAINED_NAMES)
  parser.add_argument("--input", required=True, help=".pth, .pt, .safetensors or .npz")
  parser.add_argument("--output", required=True, help="output .npz")
  parser.add_argument("--rbr", action="store_true",
                      help="drop the final block's last BatchNorm (for an RBR model)")
  parser.add_argument("--no_fc", action="store_true",
                      help="vgg16_bn only: convert the conv trunk without fc6/fc7")
  args = parser.parse_args(argv)
  variables = pretrained.load_pretrained(args.model, args.input, rbr=args.rbr,
                                         include_fc=not args.no_fc)
  os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
  pretrained.save_converted(variables, args.output)
  count = sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(variables["params"]))
  print(f"{args.model}: {count:,} backbone parameters written to {args.output}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
