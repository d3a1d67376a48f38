"""CPU analogue of GSL's headline claim: group softmax type II beats softmax on scarce data.

Paper: T. Kobayashi, "Group Softmax Loss with Discriminative Feature Grouping", WACV 2021:
"the type-II loss is quite effective on the smaller number of training samples" (Table 4,
supplementary Table B.2b). Here: the embedded `digits` (8x8 handwritten digits, 10 classes)
with only N = 10 random training images per class (dmlax.data task `per_class10`; `per_class30`
also exists), the whole 450-image test split; small_cnn with a 64-d feature (D = 64) and no
bias in the classifier; SGD (momentum 0.9, weight decay 1e-4, lr 0.1 / 10 at 50% and 75% of
training: the paper's recipe shape), batch 20, 60 epochs. Top-1 error (%).

    python -m experiments.reproduce --table gsl/cpu_scarce --seeds 3
    python -m experiments.reproduce --suite cpu          # with the other papers' analogues

Rows: softmax; type1 (G = {1, 2}); type2 (G = {1, 2, 4}). The paper prints no numbers for this
setting; docs/results_cpu.md holds our measured ones. Hardware: 2 CPU cores, ~10 s a run.
"""

import ml_collections

from configs import common
from configs import paper_tables
from configs.gsl import recipes


def _base():
  c = common.get_config()
  c.parallel = "single"
  c.dataset.name = "digits"
  c.dataset.task = "per_class10"
  c.model.name = "small_cnn"
  c.model.kwargs = ml_collections.ConfigDict({"pooling": "avg", "embedding_dim": 64})
  c.batch_size = 20
  c.num_epochs = 60.0
  c.optimizer.name = "sgd"
  c.optimizer.lr = 0.1
  c.optimizer.momentum = 0.9
  c.optimizer.weight_decay = 1e-4
  c.schedule.name = "step"
  c.schedule.boundaries = (30.0, 45.0)
  c.schedule.factor = 0.1
  c.eval.ks = (1,)
  c.log_every_steps = 100
  c.checkpoint.every_steps = 10000
  return c


ERROR = paper_tables.Metric("Error (%)", "top1_error", higher_is_better=False)

TABLE = paper_tables.Table(
    name="gsl/cpu_scarce",
    base=_base,
    metrics=(ERROR, paper_tables.Metric("R@1", "recall@1")),
    rows={k: recipes.LOSS_ROWS[k] for k in ("softmax", "type1", "type2")},
    cols={"per_class10": {"dataset.task": "per_class10"}},
    claims=(
        paper_tables.Claim("type-II has a lower test error than softmax (10 images a class)",
                           "Error (%)", (("type2", "per_class10"), ("softmax", "per_class10")),
                           "<"),
        paper_tables.Claim("type-II has a lower test error than type-I (10 images a class)",
                           "Error (%)", (("type2", "per_class10"), ("type1", "per_class10")),
                           "<"),
    ),
    hardware="2 CPU cores",
    default_row="type2",
)


def get_config(arg=None):
  """`arg`: "row=<softmax|type1|type2>,seed=<n>[,smoke]"."""
  return TABLE.config(arg)
