"""SGSL Fig. 3: 3-d features of softmax vs softmax + SGSL on Fashion-MNIST (a plot).

Paper: L. Yang, P. Wang, Y. Zhang, "Stop-Gradient Softmax Loss for Deep Metric Learning",
AAAI 2023, Fig. 3 ("Feature Distribution Visualization"): a five-layer CNN whose last hidden
layer has 3 outputs, trained on Fashion-MNIST; softmax + SGSL gives more compact classes. No
numbers are printed; the table reports retrieval on the test split for reference.

    python -m experiments.reproduce --table sgsl/fig3
    python -m experiments.plots features3d --workdir workdirs/reproduce/sgsl/fig3/softmax/fashion_mnist/seed0 \
        --workdir workdirs/reproduce/sgsl/fig3/softmax_sgsl/fashion_mnist/seed0 \
        --label softmax --label "softmax + SGSL" --out docs/sgsl_fig3.png

Training details are not given: Adam lr 1e-3, batch 128, 20 epochs, no augmentation (assumed);
classification protocol (all 10 classes train and test). Hardware: a CPU suffices (~9k steps).
"""

import ml_collections

from configs import common
from configs import paper_tables


def _base():
  c = common.get_config()
  c.dataset.name = "fashion_mnist"   # Fig. 3 "Fashion MNIST"
  c.dataset.task = "classification"  # assumption: all 10 classes train and test
  c.model.name = "five_layer_cnn"    # Fig. 3 "a five-layer CNN model"
  # Fig. 3 "set the output number of the last hidden layer to 3".
  c.model.kwargs = ml_collections.ConfigDict({"embedding_dim": 3})
  c.batch_size = 128                 # assumption: not given
  c.num_epochs = 20.0                # assumption: not given
  c.optimizer.name = "adam"          # assumption: not given
  c.optimizer.lr = 1e-3              # assumption: Adam's usual rate
  c.optimizer.weight_decay = 0.0     # assumption: not given
  c.schedule.name = "cosine"         # assumption: as the paper's main recipe ("cosine")
  c.eval.ks = (1, 2, 4, 8)           # the table's R@1 column, for reference
  return c


TABLE = paper_tables.Table(
    name="sgsl/fig3",
    base=_base,
    metrics=(paper_tables.Metric("R@1", "recall@1"),
             paper_tables.Metric("Error (%)", "top1_error", higher_is_better=False)),
    # assumption: label smoothing 0.1 (Boudiaf et al.'s), the value of the paper is not given.
    rows={"softmax": {"loss.name": "softmax", "loss.kwargs": {"label_smoothing": 0.1}},
          "softmax_sgsl": {"loss.name": "softmax_sgsl"}},
    cols={"fashion_mnist": {}},
    hardware="CPU or any GPU (a 3-d five-layer CNN on 28x28 images)",
)


def get_config(arg=None):
  """`arg`: "row=<softmax|softmax_sgsl>,seed=<n>[,smoke]"."""
  return TABLE.config(arg)
