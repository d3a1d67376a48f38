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

Data: `casia_webface` (dmlax.data; the images are brought by hand, MTCNN-aligned 160x160 as
section 5.5: `python -m experiments.prepare_data --dataset casia_webface --manual_dir DIR`,
DIR holding CASIA-WebFace/<subject>/<image>.jpg) for training, `lfw` (aligned the same way,
with pairs.txt) for the 10-fold verification accuracy (`dmlax.metrics.verification_accuracy`, cosine scores).
Network: `liu_lfw17` (dmlax.models.face), Liu et al.'s 17-convolution LFW net.

The trainer evaluates each run on LFW (`config.eval.verification_dataset = "lfw"`): features of
the `lfw` test split, the cosine similarity of its 6,000 pairs, the 10-fold accuracy reported as
`lfw_accuracy`. Both datasets are manual downloads; a cell without them stops before training
with the error that says where to put them. `smoke` runs the losses on `digits`.

    python -m experiments.reproduce --table wsoftmax/table3
Hardware: one Quadro P5000 GPU (paper).
"""

import ml_collections

from configs import common
from configs import paper_tables
from configs.wsoftmax import recipes

# Fields no dmlax code reads yet, with what the trainer must do for them (none).
TRAINER_PENDING: dict[str, str] = {}


def face_recipe(model: str) -> ml_collections.ConfigDict:
  """Section 5.5's training recipe (the face-recognition tables)."""
  c = common.get_config()
  c.dataset.name = "casia_webface"   # 5.5 "trained on ... CASIA-WebFace"
  c.dataset.task = "train"
  c.dataset.image_size = 160         # 5.5 "cropped to 160x160"
  # 5.5 "(x - 127.5) / 128"; the random flip is an assumption (SphereFace's training data layer,
  # wy1iu/sphereface make_spherenet.py, mirror=True).
  c.dataset.augment = "face"
  c.model.name = model               # Table 3: Liu et al.'s 17-conv net; Table 4: SphereFace-64
  # Liu et al. (ICML 2016) Table 1, LFW column: FC 512; SphereFace fc5 512.
  c.model.kwargs = ml_collections.ConfigDict({"pooling": "none", "embedding_dim": 512})
  c.batch_size = 128                 # 5.5 "batch size is set to 128"
  c.num_epochs = 0.0
  c.num_train_steps = 30000          # 5.5 "training is stopped at 30k iterations"
  c.steps_per_epoch = 490000 // 128  # 5.5 "0.49M face images": epochs below are in these units
  c.loss.name = "weights_biased_softmax"
  c.loss.kwargs = ml_collections.ConfigDict({"alpha": 1.0})  # Table 3 rows set alpha
  # 5.1 "first train the CNNs using the conventional softmax loss, and refine ... W-Softmax";
  # assumption: the first 10k iterations (the first learning-rate stage), not stated.
  c.loss.softmax_epochs = 10000 / (490000 // 128)
  c.optimizer.name = "sgd"           # 5.1 "Momentum optimizer"
  c.optimizer.lr = 0.1               # 5.5 "the learning rate is initially 0.1"
  c.optimizer.momentum = 0.9         # 5.1 "momentum is set to 0.9"
  c.optimizer.weight_decay = 5e-4    # 5.1 "weight parameter of weights regularization is 0.0005"
  c.schedule.name = "step"           # 5.5 "divided by 10 for every 10k iterations"
  c.schedule.boundaries = tuple(10000 / (490000 // 128) * i for i in (1, 2))
  c.schedule.factor = 0.1
  c.eval.ks = (1,)
  c.eval.verification_dataset = "lfw"  # 5.5 "face verification on LFW", cosine similarity
  return c


_REPORTED = {"softmax": "96.53", "lsoftmax": "98.71", "wsoftmax_a0.5": "97.98",
             "wsoftmax_a1": "98.86", "wsoftmax_a1.5": "98.91"}

TABLE = paper_tables.Table(
    name="wsoftmax/table3",
    base=lambda: face_recipe("liu_lfw17"),
    metrics=(paper_tables.Metric("LFW accuracy (%)", "lfw_accuracy"),),
    rows=recipes.LOSS_ROWS,
    cols={"lfw": {}},
    reported={(r, "lfw"): (v,) for r, v in _REPORTED.items()},
    hardware=recipes.HARDWARE,
    default_row="wsoftmax_a1",
)


def get_config(arg=None):
  """`arg`: "row=<row>[,seed=<s>][,smoke]"."""
  return TABLE.config(arg)
