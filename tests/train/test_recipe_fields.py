"""The authors' recipe fields through the trainer: a BatchNorm freeze of the backbone only (SGSL's
FrozenBN backbone under a training BN neck), and face verification on a generated stand-in LFW
(W-Softmax Tables 3-4: train on CASIA-WebFace, report LFW's 10-fold accuracy).
"""

import json
import os

import jax
import numpy as np
import pytest
from flax import traverse_util
from PIL import Image

from configs import quickstart
from dmlax import data
from dmlax.train import loop
from dmlax.train import run as run_lib


def _frozen_backbone_config():
  c = quickstart.get_config("softmax,smoke")
  c.parallel = "single"
  c.model.kwargs.update({"bn_neck": True, "bn_neck_scale": True})
  c.model.frozen_bn = True
  c.model.frozen_bn_scope = "backbone"
  c.optimizer.update(name="sgd", lr=0.5, momentum=0.0, weight_decay=0.0)
  return c


def _flat(tree):
  return {"/".join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(tree).items()}


def test_backbone_scope_freezes_backbone_batchnorm_and_trains_the_neck(tmp_path):
  run = run_lib.setup(_frozen_backbone_config(), str(tmp_path / "run"))
  before = jax.device_get(run.state)
  batch = next(run.data.train_iterator(local_batch=run.local_batch))
  batch = {"image": batch["image"], "label": batch["label"]}
  dstate, metrics = run.driver.step(run.driver.put_state(before), run.driver.put_batch(batch))
  assert bool(metrics["finite"])
  after = run.driver.get_state(dstate)
  stats0, stats1 = _flat(before.batch_stats), _flat(after.batch_stats)
  params0, params1 = _flat(before.params["model"]), _flat(after.params["model"])
  backbone_bn = [k for k in stats0 if k.startswith("backbone/")]
  neck = [k for k in stats0 if k.startswith("head/bn_neck/")]
  assert backbone_bn and len(neck) == 2, sorted(stats0)
  for k in backbone_bn:  # running mean and var of the backbone: untouched
    np.testing.assert_array_equal(stats1[k], stats0[k], err_msg=k)
  for k in neck:  # the neck normalised with batch statistics and updated its running ones
    assert not np.allclose(stats1[k], stats0[k]), k
  bn_modules = {k.rsplit("/", 1)[0] for k in backbone_bn}
  frozen = [k for k in params0 if k.rsplit("/", 1)[0] in bn_modules]
  assert {k.rsplit("/", 1)[1] for k in frozen} == {"scale", "bias"}
  for k in frozen:
    np.testing.assert_array_equal(params1[k], params0[k], err_msg=k)
  assert not np.allclose(params1["head/bn_neck/scale"], params0["head/bn_neck/scale"])
  convs = [k for k in params0 if k.startswith("backbone/") and k.endswith("kernel")]
  assert convs and all(not np.allclose(params1[k], params0[k]) for k in convs)


def test_scope_all_freezes_the_neck_too(tmp_path):
  c = _frozen_backbone_config()
  c.model.frozen_bn_scope = "all"
  run = run_lib.setup(c, str(tmp_path / "run"))
  before = jax.device_get(run.state)
  batch = next(run.data.train_iterator(local_batch=run.local_batch))
  dstate, _ = run.driver.step(run.driver.put_state(before), run.driver.put_batch(
      {"image": batch["image"], "label": batch["label"]}))
  after = run.driver.get_state(dstate)
  for k, v in _flat(before.batch_stats).items():
    np.testing.assert_array_equal(_flat(after.batch_stats)[k], v, err_msg=k)
  np.testing.assert_array_equal(after.params["model"]["head"]["bn_neck"]["scale"],
                                before.params["model"]["head"]["bn_neck"]["scale"])
  c.model.frozen_bn_scope = "neck"
  with pytest.raises(ValueError, match=r"config\.model\.frozen_bn_scope must be one of"):
    run_lib.setup(c, str(tmp_path / "bad"))


# Stand-in LFW: 6 people, image k of person i a flat colour; 10 folds of 1 matched + 1
# mismatched pair (pairs.txt "10 1").
_PEOPLE = {f"P{i}_X": 3 for i in range(6)}


def _colour(i, k):
  """Image k of person i: red says i, green says k (levels far apart: JPEG moves them by few)."""
  return (30 + 35 * i, 60 + 40 * k, 30)


def _write_lfw(manual):
  names = sorted(_PEOPLE)
  for i, p in enumerate(names):
    os.makedirs(os.path.join(manual, "lfw", p), exist_ok=True)
    for k in range(1, _PEOPLE[p] + 1):
      Image.new("RGB", (20, 20), _colour(i, k)).save(
          os.path.join(manual, "lfw", p, f"{p}_{k:04d}.jpg"), format="JPEG")
  lines = ["10 1"]
  for f in range(10):
    a, b = names[f % 6], names[(f + 1) % 6]
    lines += [f"{a} {1 + f % 2} {2 + f % 2}", f"{a} {1 + f % 3} {b} {1 + (f + 1) % 3}"]
  with open(os.path.join(manual, "pairs.txt"), "w") as fh:
    fh.write("\n".join(lines) + "\n")


def _write_casia(manual):
  for i in range(4):
    folder = os.path.join(manual, "CASIA-WebFace", f"{i:07d}")
    os.makedirs(folder, exist_ok=True)
    for k in range(4):
      Image.new("RGB", (20, 20), (40 * i + 10 * k, 90, 30)).save(
          os.path.join(folder, f"{k + 1:03d}.jpg"), format="JPEG")


def _reference_accuracy(sims, same, folds):
  """10-fold accuracy in float64: per fold, the threshold among all midpoints of the other
  folds' sorted similarities (and +-inf) that classifies them best; the test fold's accuracy
  with `sims > t`; the mean over folds."""
  accs = []
  parts = np.array_split(np.arange(len(sims)), folds)
  for test in parts:
    train = np.setdiff1d(np.arange(len(sims)), test)
    s = np.sort(sims[train])
    candidates = np.concatenate([[-np.inf], (s[1:] + s[:-1]) / 2, [np.inf]])
    scores = [np.mean((sims[train] > t) == same[train]) for t in candidates]
    t = candidates[int(np.argmax(scores))]
    accs.append(np.mean((sims[test] > t) == same[test]))
  return float(np.mean(accs))


def test_lfw_verification_end_to_end(tmp_path):
  manual, data_dir = str(tmp_path / "manual"), str(tmp_path / "tfds")
  _write_lfw(os.path.join(manual, "lfw_root"))
  _write_casia(os.path.join(manual, "casia"))
  data.prepare("lfw", data_dir=data_dir, manual_dir=os.path.join(manual, "lfw_root"))
  data.prepare("casia_webface", data_dir=data_dir, manual_dir=os.path.join(manual, "casia"))

  from configs.wsoftmax import table3
  c = table3.face_recipe("liu_lfw17")  # the table's recipe, shrunk to CPU size below
  c.dataset.data_dir, c.dataset.image_size = data_dir, 16
  c.model.name, c.model.kwargs = "small_cnn", {"embedding_dim": 8}
  c.parallel, c.batch_size, c.num_train_steps, c.steps_per_epoch = "single", 8, 2, 1
  c.loss.name, c.loss.kwargs, c.loss.softmax_epochs = "softmax", {}, 0.0
  c.schedule.name, c.log_every_steps, c.checkpoint.every_steps = "constant", 1, 2
  c.eval.batch_size = 8
  assert c.eval.verification_dataset == "lfw"
  workdir = str(tmp_path / "run")
  results = loop.train_and_evaluate(c, workdir)
  with open(os.path.join(workdir, "results.json")) as f:
    saved = json.load(f)
  assert set(saved["final"]) == {"lfw_accuracy", "lfw_accuracy_std"}
  assert saved["best_metric"] == "lfw_accuracy"
  assert saved["final"]["lfw_accuracy"] == results["final"]["lfw_accuracy"]

  # Reference: the trained model on every LFW image, the pairs of pairs.txt found by file name.
  run = run_lib.setup(c, workdir)
  state = loop.restore(run)
  emb, who = [], []
  for b in data.eval_batches("lfw", split="test", batch_size=8, data_dir=data_dir,
                             image_size=16, augment=c.dataset.augment):
    images = b["image"][b["mask"]]
    emb.append(np.asarray(run.model.apply({"params": state.params["model"],
                                           "batch_stats": state.batch_stats},
                                          images, train=False), np.float64))
    # Undo the face normalisation (x - 127.5) / 128 and read each image's identity off it.
    rgb = np.asarray(images[:, 0, 0, :], np.float64) * 128 + 127.5
    who += [(int(round((r - 30) / 35)), int(round((g - 60) / 40))) for r, g, _ in rgb]
  emb = np.concatenate(emb)
  names = sorted(_PEOPLE)
  row = {f"{names[i]}/{names[i]}_{k:04d}.jpg": n for n, (i, k) in enumerate(who)}
  assert len(row) == len(emb) == sum(_PEOPLE.values())
  with open(os.path.join(manual, "lfw_root", "pairs.txt")) as f:
    body = [line.split() for line in f.read().splitlines()[1:]]
  file = lambda p, k: row[f"{p}/{p}_{int(k):04d}.jpg"]
  a = np.array([file(x[0], x[1]) for x in body])
  b = np.array([file(x[0], x[2]) if len(x) == 3 else file(x[2], x[3]) for x in body])
  same = np.array([len(x) == 3 for x in body])
  sims = np.sum(emb[a] * emb[b], 1) / (np.linalg.norm(emb[a], axis=1) *
                                        np.linalg.norm(emb[b], axis=1))
  want = _reference_accuracy(sims, same, 10)
  np.testing.assert_allclose(saved["final"]["lfw_accuracy"], want, atol=1e-9)


def test_missing_lfw_says_where_to_put_it(tmp_path):
  c = quickstart.get_config("softmax,smoke")
  c.parallel = "single"
  c.eval.verification_dataset = "lfw"
  c.dataset.data_dir = str(tmp_path / "tfds")  # digits is prepared there, LFW is not
  with pytest.raises(data.DataNotFoundError, match=r"lfw/.*pairs\.txt"):
    run_lib.setup(c, str(tmp_path / "run"))
