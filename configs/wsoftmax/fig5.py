"""W-Softmax Fig. 5: mean angle between each class's features and its classifier column, MNIST.

Paper: X. Li, W. Wang, "Learning discriminative features via weights-biased softmax loss",
Pattern Recognition 2020, Fig. 5 and eq. 14 (train set left, test set right): the angles are
larger with softmax than with W-Softmax and shrink as alpha grows. Plotted, not printed.

    python -m experiments.reproduce --table wsoftmax/fig5
    python -m experiments.plots angles --workdir workdirs/reproduce/wsoftmax/fig5/softmax/mnist/seed0 \
        --workdir .../wsoftmax_a1/mnist/seed0 --label softmax --label "alpha=1" --out docs/wsoftmax_fig5.png

`experiments.reproduce` adds the mean over classes of eq. 14 on the test split (degrees) to the
table. The `ablation_stopgrad_a*` rows are an ablation, not the paper's loss: W-Softmax whose
biased negative weights pass no gradient into the classifier
(`weights_biased_softmax_loss(..., stop_gradient_biased=True)`), the variant that reproduces the
figure's trend (angles shrinking as alpha grows). Recipe: configs/wsoftmax/recipes.py (prelu_mnist, M = 256). Hardware: one Quadro P5000.
"""

from configs import paper_tables
from configs.wsoftmax import recipes

TABLE = paper_tables.Table(
    name="wsoftmax/fig5",
    base=lambda: recipes.classification("mnist"),
    metrics=(recipes.ACCURACY,
             paper_tables.Metric("Mean class angle (deg)", "mean_class_angle", scale=1.0,
                                 higher_is_better=False)),
    rows={**{k: v for k, v in recipes.LOSS_ROWS.items() if k != "lsoftmax"},
          **recipes.ABLATION_ROWS},
    cols={"mnist": {}},
    hardware=recipes.HARDWARE,
    default_row="wsoftmax_a1",
)


def get_config(arg=None):
  """`arg`: "row=<softmax|wsoftmax_a0.5|wsoftmax_a1|wsoftmax_a1.5|ablation_stopgrad_a0.5|
  ablation_stopgrad_a1|ablation_stopgrad_a1.5>,seed=<n>[,smoke]"."""
  return TABLE.config(arg)
