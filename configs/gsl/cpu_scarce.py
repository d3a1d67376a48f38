"""CPU analogue of GSL's scarce-data claim: group softmax type II beats softmax and type I.

Paper: T. Kobayashi, "Group Softmax Loss with Discriminative Feature Grouping", WACV 2021,
Table B.2b (and Table 4): with few training images a class, the group softmax loss lowers the
test error of softmax, type II more than type I. Here: `glyphs` task `per_class10`, 10 random
training images of each of the 100 classes (1,000 images), tested on all 1,600 test images;
small_cnn (average pooling, 64-d penultimate features) at 16x16; SGD lr 0.1, momentum 0.9,
weight decay 1e-4, divided by 10 at 50% and 75% of training (the paper's step schedule, B.1);
batch 50, 200 steps (10 epochs).

    python -m experiments.reproduce --table gsl/cpu_scarce --seeds 5

Rows: softmax; type1 (G = {1, 2}); type2 (G = {1, 2, 4}). The paper prints no numbers for this
setting; docs/results_cpu.md holds our measured ones. Hardware: 2 CPU cores, ~20 s a run.
"""

from configs import cpu_glyphs
from configs import paper_tables
from configs.gsl import recipes

STEPS = 200


def _base():
  c = cpu_glyphs.base("per_class10", steps=STEPS, batch_size=50)
  c.steps_per_epoch = 1000 // 50
  c.optimizer.name = "sgd"
  c.optimizer.lr = 0.1
  c.optimizer.momentum = 0.9
  c.optimizer.weight_decay = 1e-4
  c.schedule.name = "step"
  c.schedule.boundaries = (5.0, 7.5)   # epochs: 50% and 75% of the 10 epochs
  c.schedule.factor = 0.1
  c.eval.ks = (1,)
  return c


ERROR = paper_tables.Metric("Error (%)", "top1_error", higher_is_better=False)
_COL = "per_class10"

TABLE = paper_tables.Table(
    name="gsl/cpu_scarce",
    base=_base,
    metrics=(ERROR, paper_tables.Metric("R@1", "recall@1")),
    rows={k: recipes.LOSS_ROWS[k] for k in ("softmax", "type1", "type2")},
    cols={_COL: {}},
    claims=(
        paper_tables.Claim("type-II has a lower test error than softmax (10 images a class)",
                           "Error (%)", (("type2", _COL), ("softmax", _COL)), "<"),
        paper_tables.Claim("type-II has a lower test error than type-I (10 images a class)",
                           "Error (%)", (("type2", _COL), ("type1", _COL)), "<"),
        paper_tables.Claim("type-I has a lower test error than softmax (10 images a class)",
                           "Error (%)", (("type1", _COL), ("softmax", _COL)), "<"),
    ),
    hardware="2 CPU cores",
    default_row="type2",
)


def get_config(arg=None):
  """`arg`: "row=<softmax|type1|type2>,seed=<n>[,smoke]"."""
  return TABLE.config(arg)
