"""A workdir saved before newer config fields existed: its config.json lacks them, and a field
missing there counts as its documented default (`run_config.FIELD_DEFAULTS`), not as a change.

One finished 2-step workdir (module fixture), its config.json stripped of every field of
`FIELD_DEFAULTS` as an older version wrote it, copied for each scenario; only one trains.
"""

import json
import os

import pytest

from configs import common
from configs import paper_tables
from configs import quickstart
from dmlax.train import loop
from dmlax.train import run_config
from tests.train import harness

STEPS = 2


def _config(**overrides):
  config = quickstart.get_config("softmax,smoke")
  config.num_train_steps = STEPS
  config.parallel = "single"
  config.checkpoint.every_steps = STEPS
  config.log_every_steps = STEPS
  paper_tables.apply_overrides(config, overrides, "test")
  return config


def _strip(tree: dict, fields) -> dict:
  """`tree` (a saved config) without the dotted `fields`."""
  tree = json.loads(json.dumps(tree))
  for field in fields:
    *parents, leaf = field.split(".")
    node = tree
    for p in parents:
      node = node[p]
    del node[leaf]
  return tree


@pytest.fixture(scope="module")
def old_workdir(tmp_path_factory, module_compilation_cache):
  # The scenarios rebuild the run of this workdir: they read its programs instead of compiling.
  del module_compilation_cache
  workdir, results = harness.finished_run(_config(), str(tmp_path_factory.mktemp("old") / "run"))
  path = os.path.join(workdir, run_config.CONFIG_FILE)
  with open(path) as f:
    saved = json.load(f)
  old = _strip(saved, run_config.FIELD_DEFAULTS)
  assert "memory_size" not in old["loss"] and "warmup_steps" not in old["schedule"]
  with open(path, "w") as f:
    json.dump(old, f)
  return workdir, results


def test_defaults_are_those_of_the_documented_config():
  fields = run_config.flatten(common.get_config())
  assert {k: fields[k] for k in run_config.FIELD_DEFAULTS} == run_config.FIELD_DEFAULTS


def test_missing_field_holding_its_default_is_no_change():
  config = _config()
  saved = run_config.flatten(config.to_dict())
  old = _strip(config.to_dict(), run_config.FIELD_DEFAULTS)
  assert run_config.differences(old, config) == []
  # The other way round: the saved run has the field, the current config lacks it.
  del config.loss["memory_size"]
  assert run_config.differences(saved, config) == []


def test_missing_field_with_another_value_or_without_default_is_a_change():
  config = _config(**{"loss.memory_size": 64})
  old = _strip(config.to_dict(), ["loss.memory_size", "optimizer.lr"])
  assert run_config.differences(old, config) == [("loss.memory_size", 0, 64),
                                                 ("optimizer.lr", "<unset>", 1e-3)]


def test_old_workdir_reruns_finished_without_allow_config_change(old_workdir, tmp_path):
  workdir = harness.copy_workdir(old_workdir, tmp_path)
  again = loop.train_and_evaluate(_config(), workdir)
  assert again["status"] == "done" and again["final"] == old_workdir[1]["final"]
  assert again["config_changes"] == []


def test_old_workdir_continues_recording_only_real_changes(old_workdir, tmp_path):
  workdir = harness.copy_workdir(old_workdir, tmp_path)
  results = loop.train_and_evaluate(_config(num_train_steps=STEPS + 2), workdir)
  assert results["steps"] == STEPS + 2
  assert results["config_changes"] == [
      {"step": STEPS, "field": "num_train_steps", "from": STEPS, "to": STEPS + 2}]
  # The saved config is now the current one, new fields included.
  assert run_config.load(workdir)["loss"]["memory_size"] == 0


def test_old_workdir_refuses_a_new_field_set_to_another_value(old_workdir, tmp_path):
  workdir = harness.copy_workdir(old_workdir, tmp_path)
  with pytest.raises(run_config.ConfigChangedError) as e:
    loop.train_and_evaluate(_config(**{"optimizer.grad_clip_value": 1.0}), workdir)
  message = str(e.value)
  assert "1 field(s) differ" in message
  assert "config.optimizer.grad_clip_value: 0.0 in the saved run, 1.0 now" in message
