"""Reading the image files of manually downloaded folders for our tfds builders."""
import os

import numpy as np


def rgb_image(path: str, dataset: str):
  """`path` itself if it is an RGB JPEG (stored as is), else its pixels as uint8 RGB.

  Folder datasets hold some grey-scale or CMYK JPEGs (Caltech-256 does); converting here keeps
  every stored image 3-channel. A missing or unreadable file raises FileNotFoundError naming
  the dataset and the file, instead of an error deep inside the tfds writer.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{dataset}: image file {path} is missing; is the download complete?")
  try:
    with Image.open(path) as image:
      if image.format == "JPEG" and image.mode == "RGB":
        return path
      return np.asarray(image.convert("RGB"))
  except OSError as e:
    raise FileNotFoundError(f"{dataset}: cannot read image {path} ({e}); is the download "
                            "complete?") from None


def require(path: str, dataset: str, what: str) -> str:
  """`path` if it exists, else FileNotFoundError saying what to put where."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"{dataset}: {path} not found; {what}")
  return path
