"""CPU analogue of SGSL's headline claim: softmax + SGSL beats softmax on held-out classes.

Paper: L. Yang, P. Wang, Y. Zhang, "Stop-Gradient Softmax Loss for Deep Metric Learning",
AAAI 2023, Tables 3-4: adding SGSL to a label-smoothed softmax raises Recall@1 on classes never
seen in training; Fig. 3: more compact classes (3-d features). Here: train on digits 0-4 and
retrieve among the held-out digits 5-9 (`digits` task `retrieval`); small_cnn with GeM and a BN neck (no scale and bias) on a 64-d
(or, column digits_d3, 3-d) embedding; batch 20 = 5 classes x 4 images; AdamW lr 1e-3 (1e-2 for
the classifier), cosine; gamma 30, beta 1, label smoothing 0.1, SGSL gated below softmax 3.
Recall@K, MAP@R (x100) and the class separability criterion CSC (eq. 9) of the test features.

    python -m experiments.reproduce --table sgsl/cpu_heldout --seeds 3

The paper prints no numbers for this setting. Hardware: 2 CPU cores, ~15 s a run.
"""

import ml_collections

from configs import common
from configs import paper_tables
from configs.sgsl import recipes


def _base():
  c = common.get_config()
  c.parallel = "single"
  c.dataset.name = "digits"
  c.dataset.task = "retrieval"
  c.dataset.sampler = "m_per_class"
  c.dataset.m_per_class = 4
  c.model.name = "small_cnn"
  c.model.kwargs = ml_collections.ConfigDict(
      {"pooling": "gem", "gem_p": 3.0, "bn_neck": True, "embedding_dim": 64})
  c.loss.name = "softmax_sgsl"
  c.loss.kwargs = ml_collections.ConfigDict(
      {"gamma": 30.0, "beta": 1.0, "label_smoothing": 0.1, "start_below": 3.0})
  c.batch_size = 20
  c.num_epochs = 0.0
  c.num_train_steps = 400
  c.optimizer.name = "adamw"
  c.optimizer.lr = 1e-3
  c.optimizer.head_lr = 1e-2
  c.optimizer.weight_decay = 1e-4
  c.schedule.name = "cosine"
  c.eval.ks = (1, 2, 4, 8)
  c.log_every_steps = 200
  c.checkpoint.every_steps = 10000
  return c


def _cells(col):
  return (("softmax_sgsl", col), ("softmax", col))


TABLE = paper_tables.Table(
    name="sgsl/cpu_heldout",
    base=_base,
    metrics=(paper_tables.Metric("R@1", "recall@1"), paper_tables.Metric("R@2", "recall@2"),
             paper_tables.Metric("R@4", "recall@4"), paper_tables.Metric("MAP@R", "map@r"),
             paper_tables.Metric("CSC", "csc", scale=1.0)),
    rows={"softmax": recipes.SOFTMAX, "softmax_sgsl": recipes.SGSL},
    cols={"digits": {}, "digits_d3": {"model.kwargs.embedding_dim": 3}},
    claims=(
        paper_tables.Claim("softmax + SGSL has a higher Recall@1 on held-out digits than softmax",
                           "R@1", _cells("digits"), ">"),
        paper_tables.Claim("softmax + SGSL has a higher MAP@R on held-out digits than softmax",
                           "MAP@R", _cells("digits"), ">"),
        paper_tables.Claim("softmax + SGSL has a higher CSC on held-out digits than softmax "
                           "(SGSL Table 5)", "CSC", _cells("digits"), ">"),
        paper_tables.Claim("softmax + SGSL has a higher Recall@1 with a 3-d embedding",
                           "R@1", _cells("digits_d3"), ">"),
    ),
    hardware="2 CPU cores",
    default_row="softmax_sgsl",
)


def get_config(arg=None):
  """`arg`: "row=<softmax|softmax_sgsl>,col=<digits|digits_d3>,seed=<n>[,smoke]"."""
  return TABLE.config(arg)
