"""Multi-host for real: 2 processes x 4 fake CPU devices, joined by `jax.distributed.initialize`
on a 127.0.0.1 coordinator (gloo collectives), train with `--distributed`, are SIGKILLed after a
checkpoint in the middle, restart, and end with the parameters and the (sharded) evaluation
metrics of one process with 8 devices.

The processes run `tests/multihost/worker.py`: experiments/train.py's own `main` and flags, plus
a hold after one checkpoint (so both are killed at the same point) and a per-process dump of
what `train_and_evaluate` returned.
"""

import json
import os
import signal
import time

import chex
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import quickstart
from dmlax.train import loop
from experiments import launch_local_multihost as launcher

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG_ARG = "mpa,smoke"  # small_cnn + MPA on digits 0-4; global batch 16, 2 per device
STEPS, SAVE_EVERY, EVAL_EVERY, KILL_AFTER = 6, 2, 3, 4
# SGD with momentum (configs/common.py's optimiser), not the quickstart's AdamW: gloo across 2
# processes sums the all-reduces in another order than XLA within one, and Adam turns that float32
# rounding into O(lr) differences. Its first update is lr * g / (|g| + eps) with eps = 1e-8; a
# weight of a nearly dead input channel has |g| ~ 2e-8, at rounding level (conv2 kernel
# [2, 1, 56, 73]: -3.0e-8 on 2 processes, -1.9e-8 on 1 device, +1.5e-8 with pmap over 8 devices
# in one process), so that weight moved by -0.75, -0.65 or +0.6 lr: one process with 8 devices
# and one device differ as much (1.3e-3) as 2 processes and one. Two steps later a pre-ReLU value
# of that channel was +3.4e-5 on one side and -4.9e-5 on the other; the flipped ReLU changed the
# backbone's gradient by 0.5% and the runs parted (bn2 running mean, channel 73: 2.9e-4 at step
# 6), while from one same state the step on 2 processes, on 8 devices and on one device agreed to
# 6e-8. SGD's update is linear in the gradient: the rounding stays rounding (largest difference
# over the state seen: 1.3e-5 abs, within 1e-5 rel + 4.2e-6 abs), while two more steps move every
# parameter and statistic by at least 6e-3.
OPTIMIZER = {"optimizer.name": "sgd", "optimizer.lr": 0.1, "optimizer.head_lr": 0.1}
PARAMS_TOLERANCE = dict(rtol=1e-5, atol=1e-5)
TIMEOUT = 600  # seconds per launch of both processes (~150 s on 2 cores at load 16; over 300 at 40)


def _overrides(workdir, data_dir):
  return [f"--config=configs/quickstart.py:{CONFIG_ARG}", f"--workdir={workdir}",
          f"--config.dataset.data_dir={data_dir}",
          f"--config.num_train_steps={STEPS}", f"--config.checkpoint.every_steps={SAVE_EVERY}",
          f"--config.eval.every_steps={EVAL_EVERY}", f"--config.log_every_steps={EVAL_EVERY}",
          *(f"--config.{k}={v}" for k, v in OPTIMIZER.items())]


def _config(data_dir):
  config = quickstart.get_config(CONFIG_ARG)
  config.dataset.data_dir = data_dir
  config.num_train_steps = STEPS
  config.checkpoint.every_steps = SAVE_EVERY
  config.eval.every_steps = EVAL_EVERY
  config.log_every_steps = EVAL_EVERY
  for k, v in OPTIMIZER.items():
    group, field = k.split(".")
    config[group][field] = v
  return config


def _checkpoint(workdir, step):
  manager = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"),
                                  item_names=("state", "data", "meta"))
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(), data=ocp.args.JsonRestore(),
      meta=ocp.args.JsonRestore()))
  steps = sorted(manager.all_steps())
  manager.close()
  return steps, restored


def _logs(tmp_path, phase):
  return "\n".join(f"--- process {i} ---\n" + (tmp_path / f"{phase}.{i}.log").read_text()[-3000:]
                   for i in range(2) if (tmp_path / f"{phase}.{i}.log").exists())


def _metrics_close(actual, expected):
  # The embeddings differ in float32 rounding (see PARAMS_TOLERANCE), which can reorder two
  # gallery items whose distances tie to ~1e-6: MAP@R / R-precision move by ~1e-4 then, and a
  # metric cut at rank k (precision@k, MAP@k, NDCG@k) by at most one query's share, 1/896, when
  # the tie straddles rank k. Two queries changing fails; the parameters are compared tightly
  # below.
  assert actual.keys() == expected.keys()
  one_query = 1.0 / float(expected["num_queries"])
  chex.assert_trees_all_close({k: np.float64(v) for k, v in actual.items()},
                              {k: np.float64(v) for k, v in expected.items()},
                              atol=one_query + 1e-6)


def test_two_processes_killed_and_restarted_equal_one_process(tmp_path, monkeypatch,
                                                              digits_dir):
  env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_cache"),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
  workdir = str(tmp_path / "two_processes")

  # Phase 1: both processes hold after the checkpoint of step KILL_AFTER; SIGKILL both.
  logs = {i: open(tmp_path / f"phase1.{i}.log", "w") for i in range(2)}
  procs = launcher.launch(_overrides(workdir, digits_dir), num_processes=2, devices_per_process=4,
                          module="tests.multihost.worker", cwd=REPO, stdout=logs.get,
                          env=dict(env, DMLAX_TEST_HOLD_AFTER_SAVE=str(KILL_AFTER)))
  try:
    deadline = time.time() + TIMEOUT
    while not all(os.path.exists(os.path.join(workdir, f"held.{i}")) for i in range(2)):
      if any(p.poll() is not None for p in procs) or time.time() > deadline:
        launcher.kill_all(procs)
        pytest.fail(f"phase 1 did not reach checkpoint {KILL_AFTER}:\n{_logs(tmp_path, 'phase1')}")
      time.sleep(0.1)
  finally:
    launcher.kill_all(procs)
    for f in logs.values():
      f.close()
  assert [p.returncode for p in procs] == [-signal.SIGKILL] * 2
  assert not os.path.exists(os.path.join(workdir, "results.json"))
  steps, _ = _checkpoint(workdir, KILL_AFTER)
  assert steps[-1] == KILL_AFTER, steps

  # The reference: this process, one process with 8 devices (tests/conftest.py).
  reference_dir = str(tmp_path / "one_process")
  reference = loop.train_and_evaluate(_config(digits_dir), reference_dir)
  assert reference["status"] == "done"

  # Phase 2: both restart (the launcher's command line) and finish the run.
  for k, v in env.items():
    monkeypatch.setenv(k, v)
  monkeypatch.chdir(REPO)
  rc = launcher.main(["--num_processes=2", "--devices_per_process=4",
                      "--module=tests.multihost.worker", f"--timeout={TIMEOUT}", "--",
                      *_overrides(workdir, digits_dir)])
  assert rc == 0

  per_process = [json.load(open(os.path.join(workdir, f"process{i}.json"))) for i in range(2)]
  results = json.load(open(os.path.join(workdir, "results.json")))
  for p in per_process:
    assert (p["process_count"], p["device_count"], p["steps"]) == (2, 8, STEPS)
    # Every process computed the same metrics from the embeddings all of them produced.
    assert p["final"] == per_process[0]["final"] and p["history"] == per_process[0]["history"]
  # The evaluation at step EVAL_EVERY ran before the kill; the restart restored it.
  assert [h["step"] for h in results["history"]] == [EVAL_EVERY, STEPS]
  assert [h["step"] for h in reference["history"]] == [EVAL_EVERY, STEPS]
  _metrics_close(results["final"], reference["final"])
  for mine, theirs in zip(results["history"], reference["history"]):
    _metrics_close(mine, theirs)

  # Parameters, BatchNorm statistics, optimiser state and data position: at the checkpoint
  # both processes were killed after, and at the end.
  for step in (KILL_AFTER, STEPS):
    _, mine = _checkpoint(workdir, step)
    _, theirs = _checkpoint(reference_dir, step)
    assert mine["data"] == theirs["data"]
    chex.assert_trees_all_close(mine["state"], theirs["state"], **PARAMS_TOLERANCE)
