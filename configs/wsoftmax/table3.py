"""W-Softmax Table 3: face verification on LFW, CNN of Liu et al. trained on CASIA-WebFace (%).

Paper: X. Li, W. Wang, "Learning discriminative features via weights-biased softmax loss",
Pattern Recognition 2020, Table 3 and section 5.5: MTCNN-aligned 160x160 faces normalised to
[-1, 1]; trained on CASIA-WebFace (0.49M images, 10,575 identities), batch 128, lr 0.1 / 10
every 10k iterations, 30k iterations; cosine similarity of features on the 6,000 LFW pairs.

| row | method | accuracy (%) |
|---|---|---|
| softmax | original softmax | 96.53 |
| lsoftmax | L-Softmax | 98.71 |
| wsoftmax_a0.5 | W-Softmax (alpha = 0.5) | 97.98 |
| wsoftmax_a1 | W-Softmax (alpha = 1) | 98.86 |
| wsoftmax_a1.5 | W-Softmax (alpha = 1.5) | 98.91 |

(Other papers' rows: FaceNet 99.65, Deep FR 98.95, DeepID2+ 98.97.)

Not runnable in dmlax yet (`TABLE.unavailable`): dmlax.data registers no CASIA-WebFace
builder, the trainer evaluates retrieval and classification (not LFW verification), and the
paper's 17-convolution face CNN is not in dmlax.models; the config uses the closest pieces
(resnet18, which has 17 convolutions before its FC layer; the `face` augmentation) so that its
recipe is checked, and `smoke` runs its losses. The LFW pairs and the 10-fold verification
accuracy exist (`dmlax.data.verification_pairs`, `dmlax.metrics.verification_accuracy`).

    python -m experiments.reproduce --table wsoftmax/table3     # reports what is missing
Hardware: one Quadro P5000 GPU (paper).
"""

import ml_collections

from configs import common
from configs import paper_tables
from configs.wsoftmax import recipes

MISSING = ("needs a CASIA-WebFace training set (not registered in dmlax.data), LFW verification "
           "in the trainer's evaluation, and the paper's face CNN")


def face_recipe(model: str) -> ml_collections.ConfigDict:
  """Section 5.5's training recipe (the face-recognition tables)."""
  c = common.get_config()
  c.dataset.name = "casia_webface"
  c.dataset.task = "classification"
  c.dataset.image_size = 160
  c.dataset.augment = "face"
  c.model.name = model
  c.model.kwargs = ml_collections.ConfigDict({"pooling": "avg", "embedding_dim": 512})
  c.batch_size = 128
  c.num_epochs = 0.0
  c.num_train_steps = 30000
  c.steps_per_epoch = 490000 // 128
  c.loss.name = "weights_biased_softmax"
  c.loss.kwargs = ml_collections.ConfigDict({"alpha": 1.0})
  c.loss.softmax_epochs = 10000 / (490000 // 128)
  c.optimizer.name = "sgd"
  c.optimizer.lr = 0.1
  c.optimizer.momentum = 0.9
  c.optimizer.weight_decay = 5e-4
  c.schedule.name = "step"
  c.schedule.boundaries = tuple(10000 / (490000 // 128) * i for i in (1, 2))
  c.schedule.factor = 0.1
  c.eval.ks = (1,)
  return c


_REPORTED = {"softmax": "96.53", "lsoftmax": "98.71", "wsoftmax_a0.5": "97.98",
             "wsoftmax_a1": "98.86", "wsoftmax_a1.5": "98.91"}

TABLE = paper_tables.Table(
    name="wsoftmax/table3",
    base=lambda: face_recipe("resnet18"),
    metrics=(paper_tables.Metric("LFW accuracy (%)", "lfw_accuracy"),),
    rows=recipes.LOSS_ROWS,
    cols={"lfw": {}},
    reported={(r, "lfw"): (v,) for r, v in _REPORTED.items()},
    unavailable={"lfw": MISSING},
    hardware=recipes.HARDWARE,
    default_row="wsoftmax_a1",
)


def get_config(arg=None):
  """`arg`: "row=<row>[,smoke]"; only `smoke` runs (see the module docstring)."""
  return TABLE.config(arg)
