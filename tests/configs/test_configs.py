"""Every paper-table config builds, and every one of them trains two smoke steps.

Every cell (row x column) of every table under configs/<paper>/ is built in its full form and
its smoke form and checked against the registries (dataset/task, model and head keywords, loss
and its hyperparameters, optimiser, schedule, augmentation) without tracing a network. Then a few
smoke cells that together exercise every setup any cell uses (every loss, auxiliary loss,
grouping, sampler, dataset and protocol, softmax-first phase, frozen BN, head option, optimiser
and schedule) train two steps on embedded data through `dmlax.train.loop.train_and_evaluate` and
are evaluated. Compiling dominates a smoke run (~10 s of CPU), hence the cover rather than all
166 distinct smoke configs.
"""

import json
import math

import pytest

from configs import paper_tables
from dmlax import data
from dmlax import models
from dmlax.data import registry
from dmlax.data import transforms
from dmlax.train import objectives
from dmlax.train import optimizers
from experiments import tables

TABLES = tables.all_tables()


def _cells(name):
  table = tables.load_table(name)
  return [(r, c) for r, c in table.cells() if not table.why_unavailable(r, c)]


def _check_names(config, where):
  """The config's names exist in dmlax's registries; the model and the objective build."""
  registry.lookup(config.dataset.name, config.dataset.task)
  transforms.check_augment(config.dataset.augment)
  assert config.optimizer.name in optimizers.OPTIMIZERS, where
  assert config.schedule.name in optimizers.SCHEDULES, where
  assert config.loss.name in objectives.LOSSES, where
  assert not config.loss.aux_name or config.loss.aux_name in objectives.LOSSES, where
  kwargs = config.model.kwargs.to_dict()
  models.get_model(config.model.name, **kwargs)   # unknown keywords raise here
  objectives.build_objective(config, num_classes=7, steps_per_epoch=10)
  assert config.batch_size > 0 and (config.num_train_steps or config.num_epochs > 0), where


@pytest.mark.parametrize("name", TABLES)
def test_every_cell_builds_full_and_smoke(name):
  table = tables.load_table(name)
  assert table.name == name
  assert (table.metrics and table.rows and table.cols), name
  for row, col in table.cells():
    why = table.why_unavailable(row, col)
    if why:
      with pytest.raises(ValueError, match="cannot run in dmlax"):
        table.config(f"row={row},col={col}")
    else:
      _check_names(table.config(f"row={row},col={col}"), f"{name} {row}/{col}")
    smoke = table.config(f"row={row},col={col},seed=1,smoke")
    assert smoke.num_train_steps == 2 and smoke.model.name == "small_cnn"
    assert smoke.dataset.name in ("digits", "multicenter") and smoke.seed == 1
    _check_names(smoke, f"{name} {row}/{col} smoke")
  for cell, numbers in table.reported.items():
    assert len(numbers) == len(table.metrics), (name, cell)


def test_bad_arguments_name_the_problem():
  from configs.gsl import table1a
  with pytest.raises(ValueError, match="row='nope' is not a row"):
    table1a.get_config("row=nope")
  with pytest.raises(ValueError, match="'colour' is not one of"):
    table1a.get_config("colour=red")
  with pytest.raises(ValueError, match="seed=.*expected int"):
    table1a.get_config("seed=x")
  with pytest.raises(ValueError, match="has no field 'loss.nmae'"):
    paper_tables.apply_overrides(table1a.get_config(), {"loss.nmae": "x"}, "test")


def _atoms(config):
  """The setup features a smoke run exercises: data, sampler, loss, head, optimiser."""
  d = config.to_dict()
  head, loss = d["model"]["kwargs"], d["loss"]
  return {("dataset", d["dataset"]["name"], d["dataset"]["task"] == "retrieval"),
          ("sampler", d["dataset"]["sampler"]), ("loss", loss["name"]),
          ("aux", loss["aux_name"]), ("multi_proxy", loss["num_proxies"] > 1),
          ("grouping", {"prefixed": "discriminative"}.get(loss["kwargs"].get("grouping"),
                                                            loss["kwargs"].get("grouping"))), ("soft", loss["aux_kwargs"].get("soft")),
          ("softmax_first", bool(loss["softmax_epochs"])), ("frozen_bn", d["model"]["frozen_bn"]),
          ("dropout", bool(head.get("feature_dropout"))), ("l2", bool(head.get("l2_normalize"))),
          ("bn_neck", bool(head.get("bn_neck"))), ("extra_bn_relu", bool(head.get("extra_bn_relu"))),
          ("pooling", head.get("pooling")),
          # adam and adamw, "prefixed" and "discriminative" grouping share their code paths.
          ("optimizer", d["optimizer"]["name"].replace("adamw", "adam")),
          ("schedule", d["schedule"]["name"]),
          ("frozen_bn_scope", d["model"]["frozen_bn"] and d["model"]["frozen_bn_scope"]),
          ("warmup", bool(d["schedule"]["warmup_steps"])),
          ("clip_value", bool(d["optimizer"]["grad_clip_value"])),
          ("adversarial_dropout", bool(loss["adversarial_dropout"])),
          ("stop_gradient_biased", bool(loss["kwargs"].get("stop_gradient_biased")))}


# One cell of each table whose rows are new, trained even where the cover's atoms already hold
# its setup.
NEW_TABLE_CELLS = (("sgsl/table5", "softmax_sgsl", "cub200"), ("gsl/table3b", "type1", "resnext50"),
                   ("wsoftmax/table3", "wsoftmax_a1", "lfw"))


def _smoke_cases():
  """Few cells that together exercise every atom of every cell (greedy set cover), and
  `NEW_TABLE_CELLS`."""
  candidates = []
  for name in TABLES:
    table = tables.load_table(name)
    for row, col in table.cells():
      candidates.append(((name, row, col), _atoms(table.config(f"row={row},col={col},smoke"))))
  todo = set().union(*(atoms for _, atoms in candidates))
  cases = []
  while todo:
    # Most new atoms first; among equals, the cheaper 8x8 digits over 32x32 multicenter.
    cell, atoms = max(candidates, key=lambda c: (len(c[1] & todo),
                                                 ("dataset", "multicenter", True) not in c[1]))
    cases.append(cell)
    todo -= atoms
  return cases + [c for c in NEW_TABLE_CELLS if c not in cases]


# Smoke runs of different tables often trace the same program: compile it once.
@pytest.mark.usefixtures("compilation_cache")
@pytest.mark.parametrize("name,row,col", _smoke_cases())
def test_smoke_trains_two_steps(name, row, col, tmp_path):
  from dmlax.train import loop
  table = tables.load_table(name)
  config = table.config(f"row={row},col={col},smoke")
  results = loop.train_and_evaluate(config, str(tmp_path / "run"))
  assert results["status"] == "done" and results["steps"] == 2
  headline = "top1_error" if data.info(config.dataset.name, task=config.dataset.task
                                       ).protocol == "classification" else "recall@1"
  assert math.isfinite(results["final"][headline]), (name, row, col, results["final"])
  values = [m.read(results["final"]) for m in table.metrics]
  assert any(math.isfinite(v) for v in values) or all(
      m.key in tables.EXTRA_METRICS or m.key == "lfw_accuracy" for m in table.metrics)
  json.dumps(results["final"])
