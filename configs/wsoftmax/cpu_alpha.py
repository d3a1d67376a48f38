"""CPU analogue of W-Softmax's claims: larger alpha, smaller class angles and higher accuracy.

Paper: X. Li, W. Wang, "Learning discriminative features via weights-biased softmax loss",
Pattern Recognition 2020, section 5.3 / Fig. 5: "the mean angle gets smaller when alpha
increases", and Tables 1-2: accuracy grows with alpha. Here: the embedded `digits` (10 classes,
1,347 training images), small_cnn with an FC layer of M = 64 units before the classifier (no
bias), the paper's recipe shape: softmax for the first half of training, then W-Softmax;
momentum 0.9, lr 0.01 decayed by 0.9 every 150 steps, weight decay 5e-4; batch 50, 400 steps.
Metrics: accuracy (%) and the mean over classes of eq. 14's mean angle (degrees) on the test
and training splits.

    python -m experiments.reproduce --table wsoftmax/cpu_alpha --seeds 3

Rows: softmax (plain, unnormalised columns), alpha 0 (normalised columns), 0.5, 1, 1.5.
The paper prints no numbers for this setting; docs/results_cpu.md holds ours. Hardware: 2 CPU
cores, ~15 s a run.
"""

import ml_collections

from configs import common
from configs import paper_tables
from configs.wsoftmax import recipes

STEPS = 400


def base(width: int = 64) -> ml_collections.ConfigDict:
  c = common.get_config()
  c.parallel = "single"
  c.dataset.name = "digits"
  c.dataset.task = "classification"
  c.model.name = "small_cnn"
  c.model.kwargs = ml_collections.ConfigDict({"pooling": "avg", "embedding_dim": width})
  c.batch_size = 50
  c.num_epochs = 0.0
  c.num_train_steps = STEPS
  c.steps_per_epoch = 1347 // 50
  c.loss.name = "weights_biased_softmax"
  c.loss.kwargs = ml_collections.ConfigDict({"alpha": 1.0})
  c.loss.softmax_epochs = STEPS / 2 / (1347 // 50)
  c.optimizer.name = "sgd"
  c.optimizer.lr = 0.01
  c.optimizer.momentum = 0.9
  c.optimizer.weight_decay = 5e-4
  c.schedule.name = "exponential"
  c.schedule.decay_rate = 0.9
  c.schedule.decay_steps = 150
  c.eval.ks = (1,)
  c.log_every_steps = 200
  c.checkpoint.every_steps = 10000
  return c


ALPHAS = (0.0, 0.5, 1.0, 1.5)
ANGLE = paper_tables.Metric("Mean class angle (deg)", "mean_class_angle", scale=1.0,
                            higher_is_better=False)
ANGLE_TRAIN = paper_tables.Metric("Mean class angle, train (deg)", "mean_class_angle_train",
                                  scale=1.0, higher_is_better=False)

TABLE = paper_tables.Table(
    name="wsoftmax/cpu_alpha",
    base=base,
    metrics=(recipes.ACCURACY, ANGLE, ANGLE_TRAIN),
    rows={"softmax": recipes.SOFTMAX,
          **{f"alpha{a:g}": recipes.wsoftmax(a) for a in ALPHAS}},
    cols={"digits_m64": {}},
    x={**{f"alpha{a:g}": a for a in ALPHAS}},
    x_label="alpha",
    claims=(
        paper_tables.Claim("the test mean class angle decreases as alpha grows",
                           "Mean class angle (deg)",
                           tuple((f"alpha{a:g}", "digits_m64") for a in ALPHAS), "decreasing"),
        paper_tables.Claim("W-Softmax (alpha = 1.5) has smaller test class angles than softmax",
                           "Mean class angle (deg)",
                           (("alpha1.5", "digits_m64"), ("softmax", "digits_m64")), "<"),
        paper_tables.Claim("accuracy increases as alpha grows", "Accuracy (%)",
                           tuple((f"alpha{a:g}", "digits_m64") for a in ALPHAS), "increasing"),
        paper_tables.Claim("W-Softmax (alpha = 1.5) is more accurate than softmax",
                           "Accuracy (%)",
                           (("alpha1.5", "digits_m64"), ("softmax", "digits_m64")), ">"),
    ),
    hardware="2 CPU cores",
    default_row="alpha1",
)


def get_config(arg=None):
  """`arg`: "row=<softmax|alpha0|alpha0.5|alpha1|alpha1.5>,seed=<n>[,smoke]"."""
  return TABLE.config(arg)
