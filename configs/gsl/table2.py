"""GSL Table 2: comparison of losses and regularisers on Food-101 (error rate %).

Paper: T. Kobayashi, "Group Softmax Loss with Discriminative Feature Grouping", WACV 2021,
Table 2. From-scratch columns: mean ± std over three runs; fine-tune columns: one number.

    python -m experiments.reproduce --table gsl/table2 --cols resnet50_scratch --seeds 3
    python -m experiments.train --config configs/gsl/table2.py:row=center,col=vgg16_finetune \
        --workdir W       # fine-tuning reads weights/vgg16_bn_flax.npz (or pretrained=PATH)

| row | ResNet50 scratch | ResNet50 fine-tune | VGG16 scratch | VGG16 fine-tune |
|---|---|---|---|---|
| softmax | 19.67 ± 0.48 | 12.55 | 17.86 ± 0.22 | 13.09 |
| lsoftmax (L-Softmax) | 18.81 ± 0.83 | 12.48 | 17.14 ± 0.26 | 12.01 |
| sigsoftmax | 21.12 ± 0.60 | 13.09 | 18.15 ± 0.14 | 13.78 |
| noisy_softmax | 18.64 ± 0.21 | 12.61 | 17.49 ± 0.53 | 12.96 |
| virtual_softmax | 18.25 ± 0.32 | 15.49 | 20.78 ± 2.44 | 16.80 |
| center (CenterLoss) | 17.98 ± 0.09 | 12.95 | 16.26 ± 0.41 | 13.35 |
| dropout02 (p = 0.2) | 18.77 ± 0.68 | 12.49 | 17.84 ± 0.35 | 13.28 |
| dropout05 (p = 0.5) | 18.96 ± 0.42 | 12.53 | 19.15 ± 0.96 | 12.92 |
| adv_dropout | 19.31 ± 0.94 | 12.30 | 18.39 ± 0.45 | 12.41 |
| type1 (ours, G = {1, 2}) | 18.23 ± 0.27 | 12.28 | 16.62 ± 0.12 | 12.16 |
| type2 (ours, G = {1, 2, 4}) | 16.10 ± 0.29 | 11.88 | 15.33 ± 0.22 | 11.78 |

DropOut acts only on the penultimate features (section 4.1). Hyperparameters the paper leaves to
the methods' papers: L-Softmax margin 4 with the original layer's lambda annealing; Noisy
Softmax noise scale 0.1; CenterLoss weight 0.003 (Wen et al.'s face setting); Adversarial
DropOut p = 0.005 (section 3.2, `loss.adversarial_dropout`). Scratch: Table B.1 Food-101 schedule;
fine-tune: ImageNet-pretrained backbone, lr 0.0045, lr / 10 at 30, 60, 90, 120 epochs.
Hardware: NVIDIA V100s (paper); ResNet-50 scratch is ~53k steps of batch 256 at 224 px.
"""

from configs import paper_tables
from configs.gsl import recipes

_COLS = ("resnet50_scratch", "resnet50_finetune", "vgg16_scratch", "vgg16_finetune")
_REPORTED = {
    "softmax": ("19.67 ± 0.48", "12.55", "17.86 ± 0.22", "13.09"),
    "lsoftmax": ("18.81 ± 0.83", "12.48", "17.14 ± 0.26", "12.01"),
    "sigsoftmax": ("21.12 ± 0.60", "13.09", "18.15 ± 0.14", "13.78"),
    "noisy_softmax": ("18.64 ± 0.21", "12.61", "17.49 ± 0.53", "12.96"),
    "virtual_softmax": ("18.25 ± 0.32", "15.49", "20.78 ± 2.44", "16.80"),
    "center": ("17.98 ± 0.09", "12.95", "16.26 ± 0.41", "13.35"),
    "dropout02": ("18.77 ± 0.68", "12.49", "17.84 ± 0.35", "13.28"),
    "dropout05": ("18.96 ± 0.42", "12.53", "19.15 ± 0.96", "12.92"),
    "adv_dropout": ("19.31 ± 0.94", "12.30", "18.39 ± 0.45", "12.41"),
    "type1": ("18.23 ± 0.27", "12.28", "16.62 ± 0.12", "12.16"),
    "type2": ("16.10 ± 0.29", "11.88", "15.33 ± 0.22", "11.78"),
}

TABLE = paper_tables.Table(
    name="gsl/table2",
    base=lambda: recipes.classification("food101", None, "food101"),
    metrics=(paper_tables.Metric("Error (%)", "top1_error", higher_is_better=False),),
    rows=recipes.LOSS_ROWS,
    cols={
        "resnet50_scratch": recipes.MODELS["resnet50"],
        "resnet50_finetune": {**recipes.MODELS["resnet50"], **recipes.finetune("resnet50")},
        "vgg16_scratch": recipes.MODELS["vgg16"],
        "vgg16_finetune": {**recipes.MODELS["vgg16"], **recipes.finetune("vgg16")},
    },
    reported={(row, col): (v,) for row, vals in _REPORTED.items() for col, v in zip(_COLS, vals)},
    hardware="NVIDIA V100 GPUs (paper); ~53k steps of batch 256 at 224 px per scratch run",
    default_row="type2",
)


def get_config(arg=None):
  """`arg`: "row=<row>,col=<column>,seed=<n>[,pretrained=PATH][,smoke]"."""
  return TABLE.config(arg)
