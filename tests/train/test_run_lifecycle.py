"""A long run's life: rerunning a finished workdir, lengthening it, resuming with a changed config,
unreadable checkpoints, config mistakes caught before step 1, the command line's output and
paths.

One finished 4-step workdir (module fixture) is copied for each scenario, so only the scenarios
that train do so, two or four steps each.
"""

import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from configs import common
from configs import paper_tables
from configs import quickstart
from dmlax.train import checkpoints
from dmlax.train import dataset
from dmlax.train import loop
from dmlax.train import run_config
from tests.train import harness

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS = 4


def _config(loss="softmax", **overrides):
  config = quickstart.get_config(f"{loss},smoke")
  config.num_train_steps = STEPS
  config.parallel = "single"
  config.checkpoint.every_steps = 2
  config.checkpoint.keep = 2
  config.log_every_steps = 2
  paper_tables.apply_overrides(config, overrides, "test")
  return config


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  return harness.finished_run(_config(), str(tmp_path_factory.mktemp("lifecycle") / "finished"))


def _steps(workdir):
  return sorted(int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit())


def test_finished_run_returns_its_results_without_training(finished, tmp_path):
  workdir = harness.copy_workdir(finished, tmp_path)
  before = os.path.getmtime(os.path.join(workdir, "results.json"))
  again = loop.train_and_evaluate(_config(), workdir)
  assert again["final"] == finished[1]["final"] and again["steps"] == STEPS
  assert os.path.getmtime(os.path.join(workdir, "results.json")) == before
  assert _steps(workdir) == [2, 4]


def test_config_is_saved_in_the_workdir(finished):
  saved = run_config.load(finished[0])
  assert saved["optimizer"]["lr"] == _config().optimizer.lr
  assert run_config.differences(saved, _config()) == []


def test_more_steps_continue_a_finished_run(finished, tmp_path):
  workdir = harness.copy_workdir(finished, tmp_path)
  results = loop.train_and_evaluate(_config(num_train_steps=STEPS + 2), workdir)
  assert results["steps"] == STEPS + 2
  assert [h["step"] for h in results["history"]] == [STEPS, STEPS + 2]
  assert results["config_changes"] == [
      {"step": STEPS, "field": "num_train_steps", "from": STEPS, "to": STEPS + 2}]
  assert _steps(workdir)[-1] == STEPS + 2


def test_changed_training_fields_are_refused_listing_every_one(finished, tmp_path):
  workdir = harness.copy_workdir(finished, tmp_path)
  with pytest.raises(run_config.ConfigChangedError) as e:
    loop.train_and_evaluate(_config(**{"optimizer.lr": 0.5, "seed": 3}), workdir)
  message = str(e.value)
  assert "config.optimizer.lr: 0.001 in the saved run, 0.5 now" in message
  assert "config.seed: 0 in the saved run, 3 now" in message
  assert "--allow_config_change" in message
  assert _steps(workdir) == [2, 4]


def test_allowed_change_is_recorded_with_its_step(finished, tmp_path):
  workdir = harness.copy_workdir(finished, tmp_path)
  config = _config(**{"optimizer.lr": 0.5})
  results = loop.train_and_evaluate(config, workdir, allow_config_change=True)
  assert results["steps"] == STEPS
  assert results["config_changes"] == [{"step": STEPS, "field": "optimizer.lr", "from": 0.001,
                                        "to": 0.5}]
  assert run_config.load(workdir)["optimizer"]["lr"] == 0.5
  with open(os.path.join(workdir, "results.md")) as f:
    assert "| 4 | optimizer.lr | 0.001 | 0.5 |" in f.read()


def test_changed_loss_is_a_clear_error(finished, tmp_path):
  workdir = harness.copy_workdir(finished, tmp_path)
  with pytest.raises(run_config.ConfigChangedError, match=r"config\.loss\.name: 'softmax' in "
                     r"the saved run, 'mpa' now"):
    loop.train_and_evaluate(_config("mpa"), workdir)
  with pytest.raises(checkpoints.CheckpointMismatchError,
                     match=r"does not fit the state this config builds.*proxies"):
    loop.train_and_evaluate(_config("mpa"), workdir, allow_config_change=True)


def _damage(path, how):
  for root, _, files in os.walk(path):
    for name in files:
      p = os.path.join(root, name)
      size = os.path.getsize(p)
      with open(p, "r+b") as f:
        if how == "truncate":
          f.truncate(size // 2)
        else:
          f.write(np.random.default_rng(0).bytes(max(size, 16)))


def test_unreadable_latest_checkpoint_falls_back_to_the_previous(finished, tmp_path, caplog):
  workdir = harness.copy_workdir(finished, tmp_path)
  os.remove(os.path.join(workdir, "results.json"))  # the run must train again from step 2
  bad = os.path.join(workdir, "checkpoints", "4")
  _damage(bad, "truncate")
  with caplog.at_level(logging.WARNING):
    results = loop.train_and_evaluate(_config(), workdir)
  assert f"checkpoint {bad} is unreadable (" in caplog.text
  assert results["steps"] == STEPS and _steps(workdir) == [2, 4]
  assert results["final"] == finished[1]["final"]  # steps 3-4 retrained from step 2's state
  assert os.listdir(os.path.join(workdir, "unreadable_checkpoints"))


def test_no_readable_checkpoint_is_a_clear_error(finished, tmp_path):
  workdir = harness.copy_workdir(finished, tmp_path)
  _damage(os.path.join(workdir, "checkpoints", "4"), "garbage")
  _damage(os.path.join(workdir, "checkpoints", "2"), "truncate")
  with pytest.raises(checkpoints.UnreadableCheckpointError,
                     match=r"no readable checkpoint in .*checkpoints/4 \(.*checkpoints/2 \("):
    loop.train_and_evaluate(_config(), workdir)


@pytest.mark.parametrize("overrides,pattern", [
    ({"eval.ks": (1, 5000)}, r"config\.eval\.ks=\(1, 5000\): \[5000\] exceed the 895 "
     r"neighbours .* use ks <= 895"),
    ({"checkpoint.best_metric": "recal@1"}, r"config\.checkpoint\.best_metric='recal@1' is not "
     r"a metric .*choose one of \[.*'recall@1'"),
    ({"dataset.prepare": False, "dataset.data_dir": "EMPTY"},
     r"not prepared in .*config\.dataset\.prepare is False; prepare it with `python -m "
     r"experiments\.prepare_data --dataset digits --task retrieval --data_dir .*EMPTY`"),
])
def test_config_mistakes_are_caught_before_the_first_step(tmp_path, overrides, pattern):
  if overrides.get("dataset.data_dir") == "EMPTY":
    overrides = {**overrides, "dataset.data_dir": str(tmp_path / "EMPTY")}
  with pytest.raises(ValueError, match=pattern):
    loop.train_and_evaluate(_config(**overrides), str(tmp_path / "run"))
  assert not os.path.exists(tmp_path / "run")


def test_not_prepared_is_its_own_error(tmp_path):
  with pytest.raises(dataset.DataNotPreparedError):
    dataset.RunData.resolve(_config(**{"dataset.prepare": False,
                                       "dataset.data_dir": str(tmp_path)}))


def test_command_line_overrides():
  config = _config("mpa")
  config.lock()
  common.apply_overrides(config, [("loss.kwargs.margin", "0.2"), ("optimizer.lr", "3e-4"),
                                  ("eval.ks", "(1, 5)"), ("model.kwargs.embedding_dim", "8")])
  assert config.loss.kwargs.margin == 0.2 and config.optimizer.lr == 3e-4
  assert config.eval.ks == (1, 5) and config.model.kwargs.embedding_dim == 8
  with pytest.raises(ValueError, match=r"^config\.optimizer\.lrr is not a config field; did you "
                     r"mean config\.optimizer\.lr\? The fields of config\.optimizer are: b1, "):
    common.apply_overrides(config, [("optimizer.lrr", "0.5")])
  with pytest.raises(ValueError, match=r"--config\.batch_size=abc: expected int"):
    common.apply_overrides(config, [("batch_size", "abc")])
  rest, overrides = common.split_overrides(["prog", "--workdir=w", "--config.seed=3",
                                            "--config.loss.kwargs.margin", "0.1"])
  assert rest == ["prog", "--workdir=w"]
  assert overrides == [("seed", "3"), ("loss.kwargs.margin", "0.1")]
  # A loss keyword from the command line reaches the loss; one it does not take is an error.
  from dmlax.train import objectives  # pylint: disable=g-import-not-at-top
  objectives.build_objective(config, num_classes=5, steps_per_epoch=1)
  common.apply_overrides(config, [("loss.kwargs.margn", "0.1")])
  with pytest.raises(ValueError, match=r"config\.loss\.kwargs has \['margn'\]"):
    objectives.build_objective(config, num_classes=5, steps_per_epoch=1)


def _cli(args, cwd, caller_dir):
  env = dict(os.environ, DMLAX_CALLER_DIR=str(caller_dir))
  env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user's shell: the entry point quiets TensorFlow
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.train", "--config=configs/quickstart.py:softmax,smoke",
       "--config.num_train_steps=2", "--config.parallel=single", *args],
      cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
  return proc.returncode, proc.stdout + proc.stderr


def test_command_line_run_relative_workdir_clean_output_and_rerun(tmp_path):
  caller = tmp_path / "caller"
  caller.mkdir()
  rc, out = _cli(["--workdir=runs/a"], REPO, caller)
  assert rc == 0, out[-3000:]
  workdir = caller / "runs" / "a"
  assert (workdir / "results.json").exists() and (workdir / "config.json").exists()
  assert not os.path.exists(os.path.join(REPO, "runs", "a"))
  for noise in ("oneDNN", "TPU", "Load dataset info", "hparams"):
    assert noise not in out, (noise, out)
  lines = [line.split("] ", 1)[-1] for line in out.splitlines() if line.strip()]
  assert len(lines) == len(set(lines)), out
  assert max(len(line) for line in out.splitlines()) < 400, out
  assert "dataset   digits (task retrieval" in out and f"results   {workdir}" in out
  assert "step 2/2  loss " in out and "steps/s  ETA " in out
  rc, again = _cli(["--workdir=runs/a"], REPO, caller)
  assert rc == 0, again[-3000:]
  assert "holds a finished run of 2 steps" in again and "final (step 2): recall@1" in again
  rc, bad = _cli(["--workdir=runs/b", "--config.optimizer.lrr=1"], REPO, caller)
  assert rc == 1 and "Traceback" not in bad and "AttributeError" not in bad
  assert ("error: config.optimizer.lrr is not a config field; did you mean "
          "config.optimizer.lr?") in bad


def test_evaluate_checkpoint_and_trained_features_share_the_setup(finished):
  workdir, results = finished
  metrics = loop.evaluate_checkpoint(_config(), workdir, which="latest")
  assert metrics["step"] == STEPS
  assert {k: v for k, v in metrics.items() if k != "step"} == {
      k: v for k, v in results["final"].items() if k != "step"}
  from experiments import trained_features  # pylint: disable=g-import-not-at-top
  run = trained_features.load(workdir)
  feats, labels = run.embed("test")
  assert feats.shape == (896, 64) and labels.shape == (896,)
  assert set(run.loss_params) == {"classifier"} and run.loss_params["classifier"].shape == (64, 5)
  assert int(run.state.step) == STEPS and run.info.name == "digits"
