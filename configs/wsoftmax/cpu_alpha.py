"""CPU analogue of W-Softmax's alpha claims: class angles and accuracy against alpha.

Paper: X. Li, W. Wang, "Learning discriminative features via weights-biased softmax loss",
Pattern Recognition 2020, section 5.3 / Fig. 5: "the mean angle gets smaller when alpha
increases", and Tables 1-2: accuracy grows with alpha. Here: `glyphs` task `classes32` (32
classes, 1,024 training and 512 test images, far from ceiling), small_cnn with an FC layer of
M = 64 units before the classifier (no bias) at 16x16, the paper's recipe shape: softmax for the
first half of training, then W-Softmax; momentum 0.9, lr 0.05 decayed by 0.9 every 50 steps,
weight decay 5e-4; batch 50, 240 steps. Metrics: accuracy (%) and the mean over classes of
eq. 14's mean angle (degrees) on the test and training splits.

Two variants of the loss, labelled as what they are: the faithful loss of eqs. 11-13 (rows
`alpha<a>`), whose biased negative logits pass gradient into every class column, and the
stop-gradient ablation (rows `sg_alpha<a>`, `stop_gradient_biased=True`), where the biased
negative weights pass no gradient into W; only the second is expected to show Fig. 5's trend
(differentiating the faithful loss rewards pulling class columns together).

    python -m experiments.reproduce --table wsoftmax/cpu_alpha --seeds 5

The paper prints no numbers for this setting; docs/results_cpu.md holds ours. Hardware: 2 CPU
cores, ~25 s a run.
"""

import inspect

import ml_collections

from configs import cpu_glyphs
from configs import paper_tables
from configs.wsoftmax import recipes

STEPS = 240
TRAIN_IMAGES = 1024


def base(width: int = 64) -> ml_collections.ConfigDict:
  c = cpu_glyphs.base("classes32", steps=STEPS, batch_size=50, embedding_dim=width)
  c.steps_per_epoch = TRAIN_IMAGES // 50
  c.loss.name = "weights_biased_softmax"
  c.loss.kwargs = ml_collections.ConfigDict({"alpha": 1.0})
  c.loss.softmax_epochs = STEPS / 2 / (TRAIN_IMAGES // 50)
  c.optimizer.name = "sgd"
  c.optimizer.lr = 0.05
  c.optimizer.momentum = 0.9
  c.optimizer.weight_decay = 5e-4
  c.schedule.name = "exponential"
  c.schedule.decay_rate = 0.9
  c.schedule.decay_steps = 50
  c.eval.ks = (1,)
  return c


def stop_gradient_available() -> bool:
  """Whether dmlax's W-Softmax takes the `stop_gradient_biased` ablation keyword."""
  from dmlax import losses
  return "stop_gradient_biased" in inspect.signature(
      losses.weights_biased_softmax_loss).parameters


ALPHAS = (0.0, 0.5, 1.0, 1.5)
SG_ALPHAS = (0.5, 1.0, 1.5)
ANGLE = paper_tables.Metric("Mean class angle (deg)", "mean_class_angle", scale=1.0,
                            higher_is_better=False)
ANGLE_TRAIN = paper_tables.Metric("Mean class angle, train (deg)", "mean_class_angle_train",
                                  scale=1.0, higher_is_better=False)
_COL = "glyphs32_m64"
_SG = {f"sg_alpha{a:g}": {"loss.name": "weights_biased_softmax",
                          "loss.kwargs": {"alpha": a, "stop_gradient_biased": True}}
       for a in SG_ALPHAS}


def _cells(rows):
  return tuple((r, _COL) for r in rows)


TABLE = paper_tables.Table(
    name="wsoftmax/cpu_alpha",
    base=base,
    metrics=(recipes.ACCURACY, ANGLE, ANGLE_TRAIN),
    # The stop-gradient rows exist once dmlax's loss takes the keyword; until then their
    # claims are reported as not run, with the reason.
    rows={"softmax": recipes.SOFTMAX,
          **{f"alpha{a:g}": recipes.wsoftmax(a) for a in ALPHAS},
          **(_SG if stop_gradient_available() else {})},
    cols={_COL: {}},
    unavailable=({} if stop_gradient_available() else {
        r: "this dmlax's weights_biased_softmax_loss has no stop_gradient_biased keyword"
        for r in _SG}),
    x={**{f"alpha{a:g}": a for a in ALPHAS}, **{f"sg_alpha{a:g}": a for a in SG_ALPHAS}},
    x_label="alpha",
    claims=(
        paper_tables.Claim("faithful W-Softmax: the test mean class angle decreases as alpha "
                           "grows (0, 0.5, 1, 1.5)", "Mean class angle (deg)",
                           _cells(f"alpha{a:g}" for a in ALPHAS), "decreasing"),
        paper_tables.Claim("stop-gradient W-Softmax: the test mean class angle decreases as "
                           "alpha grows (0, 0.5, 1, 1.5)", "Mean class angle (deg)",
                           _cells(["alpha0"] + [f"sg_alpha{a:g}" for a in SG_ALPHAS]),
                           "decreasing"),
        paper_tables.Claim("faithful W-Softmax (alpha = 1.5) has smaller test class angles "
                           "than softmax", "Mean class angle (deg)",
                           _cells(("alpha1.5", "softmax")), "<"),
        paper_tables.Claim("faithful W-Softmax: accuracy increases as alpha grows",
                           "Accuracy (%)", _cells(f"alpha{a:g}" for a in ALPHAS), "increasing"),
        paper_tables.Claim("stop-gradient W-Softmax: accuracy increases as alpha grows",
                           "Accuracy (%)",
                           _cells(["alpha0"] + [f"sg_alpha{a:g}" for a in SG_ALPHAS]),
                           "increasing"),
        paper_tables.Claim("faithful W-Softmax (alpha = 1) is more accurate than softmax",
                           "Accuracy (%)", _cells(("alpha1", "softmax")), ">"),
    ),
    hardware="2 CPU cores",
    default_row="alpha1",
)


def get_config(arg=None):
  """`arg`: "row=<softmax|alpha0|alpha0.5|alpha1|alpha1.5|sg_alpha0.5|sg_alpha1|sg_alpha1.5>,
  seed=<n>[,smoke]"."""
  return TABLE.config(arg)
