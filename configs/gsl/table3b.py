"""GSL Table 3b: softmax, type-I and type-II on full ImageNet with three CNNs (error rate %).

Paper: T. Kobayashi, "Group Softmax Loss with Discriminative Feature Grouping", WACV 2021,
Table 3(b) ("Various CNNs (ImageNet full-set)"): ResNet-50, ResNeXt-50 and VGG16 trained from
scratch on the 1000 classes (dmlax.data `imagenet2012`, task `full`), one run each. Rows softmax,
type1 (G = {1, 2}), type2 (G = {1, 2, 4}); the paper's numbers: `_REPORTED`.

    python -m experiments.reproduce --table gsl/table3b --cols resnext50
    python -m experiments.train --config configs/gsl/table3b.py:row=type1,col=vgg16 --workdir W

Recipe (configs/gsl/recipes.py): SGD batch 256, momentum 0.9, weight decay 1e-4, lr 0.1 / 10 at
epochs 30, 60, 90 of 120 (supplementary Table B.1 (i-1), ImageNet); ImageNet augmentation at
224 px. ResNeXt-50 is the 32x4d model (Xie et al.; the paper does not name the cardinality,
assumed torchvision's); VGG16 with BatchNorm and its two fc layers, no DropOut (section 4.1
"backbone CNNs contain no DropOut"). ImageNet is placed by hand
(`python -m experiments.prepare_data --dataset imagenet2012 --manual_dir DIR`).
Hardware: NVIDIA V100s (paper); each run is ~600k steps of batch 256.
"""

from configs import paper_tables
from configs.gsl import recipes

_COLS = ("resnet50", "resnext50", "vgg16")
_REPORTED = {"softmax": ("23.45", "22.42", "25.04"),
             "type1": ("23.31", "22.09", "24.26"),
             "type2": ("24.13", "22.16", "24.65")}

TABLE = paper_tables.Table(
    name="gsl/table3b",
    base=lambda: recipes.classification("imagenet2012", "full", "imagenet"),
    metrics=(recipes.ERROR,),
    rows={k: recipes.LOSS_ROWS[k] for k in ("softmax", "type1", "type2")},
    cols={m: recipes.MODELS[m] for m in _COLS},
    reported={(r, c): (v,) for r, vals in _REPORTED.items() for c, v in zip(_COLS, vals)},
    hardware=recipes.IMAGENET_HARDWARE,
    default_row="type1",
)


def get_config(arg=None):
  """`arg`: "row=<softmax|type1|type2>,col=<resnet50|resnext50|vgg16>,seed=<n>[,smoke]"."""
  return TABLE.config(arg)
