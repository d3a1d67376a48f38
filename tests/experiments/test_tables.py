"""The table machinery without training: aggregation, the report, the commands, the import graph.

`experiments.tables` aggregates seeds as the papers do (mean ± sample std, n - 1), checked here
against NumPy on made-up runs; `experiments.plots.sweep` draws from such a summary. The commands
run as subprocesses (`python -m ...`), as a user runs them: their absl flags stay out of this
process. The import graph of `experiments/` (lazy imports inside functions included) has no
cycle.
"""

import ast
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments import tables

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _table_with(attribute):
  for name in tables.all_tables():
    table = tables.load_table(name)
    if getattr(table, attribute):
      return name, table
  pytest.skip(f"no table has {attribute}")


def _runs(table, cells, values):
  """One made-up run per (cell, seed); metric i of seed s is values[s] + i."""
  return [{"row": r, "col": c, "seed": s, "workdir": "", "wall_time_s": 0.0, "steps": 2,
           "metrics": {m.name: v + i for i, m in enumerate(table.metrics)}}
          for r, c in cells for s, v in enumerate(values)]


def test_aggregate_is_mean_and_sample_std_beside_the_paper():
  name, table = _table_with("reported")
  cell = next(iter(table.reported))
  values = [71.0, 72.5, 70.25]
  runs = _runs(table, [cell], values)
  runs.append({"row": cell[0], "col": cell[1], "seed": 3, "error": "RuntimeError: x",
               "metrics": {}})
  cells = tables.aggregate(table, [cell], runs)
  assert len(cells) == 1 and cells[0]["n"] == len(values)
  for i, m in enumerate(table.metrics):
    got = cells[0]["metrics"][m.name]
    want = np.asarray(values, np.float64) + i
    np.testing.assert_allclose(got["mean"], want.mean(), rtol=1e-12)
    np.testing.assert_allclose(got["std"], want.std(ddof=1), rtol=1e-12)
    assert got["paper"] == table.reported[cell][i]
  summary = {"table": name, "seeds": 3, "smoke": False, "runs": runs, "skipped": {},
             "wall_time_s": 1.0, "cells": cells}
  text = tables.markdown_table(table, summary)
  m0 = cells[0]["metrics"][table.metrics[0].name]
  assert f"{m0['mean']:.2f} ± {m0['std']:.2f} | {table.reported[cell][0]}" in text
  assert f"FAILED: `{cell[0]}/{cell[1]}` seed 3: RuntimeError: x" in text


def test_one_seed_has_no_std_and_a_missing_cell_no_mean():
  _, table = _table_with("rows")
  cells = table.cells()[:2]
  runs = _runs(table, cells[:1], [50.0])
  out = tables.aggregate(table, cells, runs)
  first = out[0]["metrics"][table.metrics[0].name]
  assert first["mean"] == 50.0 and math.isnan(first["std"])
  if len(out) > 1:
    assert out[1]["n"] == 0 and math.isnan(out[1]["metrics"][table.metrics[0].name]["mean"])


def test_write_table_report_and_sweep_plot(tmp_path):
  plots = pytest.importorskip("experiments.plots")
  name, table = _table_with("x")
  cells = [(r, c) for r, c in table.cells() if table.x_of(r, c) is not None]
  summary = {"table": name, "seeds": 2, "smoke": True, "runs": _runs(table, cells, [1.0, 3.0]),
             "skipped": {}, "wall_time_s": 1.0}
  summary["cells"] = tables.aggregate(table, cells, summary["runs"])
  out = tmp_path / "results.md"
  tables.write_table_report(table, summary, str(out), "python -m experiments.reproduce --x")
  assert "Command: `python -m experiments.reproduce --x`" in out.read_text()
  saved = json.loads((tmp_path / "summary.json").read_text())
  assert saved["cells"] == json.loads(json.dumps(summary["cells"]))
  png = plots.sweep(str(tmp_path / "summary.json"), metric=table.metrics[0].name,
                    out=str(tmp_path / "sweep.png"))
  assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def _run(*args):
  return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=300, check=False)


def test_reproduce_list_and_usage_errors():
  listed = _run("experiments.reproduce", "--list")
  assert listed.returncode == 0, listed.stderr
  # One unindented "<paper>/<table>: rows ...; columns ..." line per table, each followed by its
  # indented runnable count; then what the user must bring.
  table_lines = [line for line in listed.stdout.splitlines()
                 if line and not line.startswith(" ") and ": rows " in line]
  assert [line.split(":")[0] for line in table_lines] == tables.all_tables()
  assert "cells runnable" in listed.stdout
  missing = _run("experiments.reproduce")
  assert missing.returncode == 1 and "give --table <paper>/<table>" in missing.stderr
  bad = _run("experiments.reproduce", "--table", "nope")
  assert bad.returncode == 1 and "--table must be <paper>/<table>" in bad.stderr
  suite = _run("experiments.reproduce", "--suite", "cpu", "--table", "gsl/table1a")
  assert suite.returncode == 1 and "--suite cpu --table takes suite tables" in suite.stderr
  name = tables.all_tables()[0]
  rows = _run("experiments.reproduce", "--table", name, "--rows", "nope")
  assert rows.returncode == 1 and "unknown row 'nope'" in rows.stderr


def test_dump_configs_covers_every_cell(tmp_path):
  out = tmp_path / "configs.json"
  result = _run("experiments.dump_configs", "--out", str(out))
  assert result.returncode == 0, result.stderr
  configs = json.loads(out.read_text())
  want = {f"{name} row={r},col={c},{arg}" for name in tables.all_tables()
          for r, c in tables.load_table(name).cells()
          for arg in ("seed=0", "seed=1", "seed=0,smoke")}
  assert set(configs) == want
  name, table = _table_with("unavailable")
  bad = next((r, c) for r, c in table.cells() if table.why_unavailable(r, c))
  assert "cannot run in dmlax" in configs[f"{name} row={bad[0]},col={bad[1]},seed=0"]["error"]


def _imports(path):
  """The experiments modules `path` imports, at module level or inside functions."""
  out = set()
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.ImportFrom) and node.module == "experiments":
      out |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("experiments."):
      out.add(node.module.split(".")[1])
    elif isinstance(node, ast.Import):
      out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("experiments.")}
  return out


def test_experiments_import_graph_has_no_cycle():
  folder = os.path.join(ROOT, "experiments")
  graph = {f[:-3]: _imports(os.path.join(folder, f)) for f in os.listdir(folder)
           if f.endswith(".py")}
  assert "tables" in graph["reproduce"] and "tables" in graph["plots"]
  state = {}

  def visit(module, path):
    state[module] = "open"
    for dep in sorted(graph.get(module, ())):
      assert state.get(dep) != "open", f"import cycle: {' -> '.join(path + [dep])}"
      if dep not in state:
        visit(dep, path + [dep])
    state[module] = "done"

  for module in sorted(graph):
    if module not in state:
      visit(module, [module])


def test_same_config_fills_only_fields_added_at_their_defaults():
  from configs import quickstart
  config = quickstart.get_config("softmax,smoke")
  saved = json.loads(tables._config_json(config))
  assert tables.same_config(saved, config)
  # A run saved before the trainer had optimizer.grad_clip_value (default 0: off) is the same
  # run while the config leaves it off ...
  del saved["optimizer"]["grad_clip_value"]
  assert tables.same_config(saved, config)
  # ... and not once the config sets it, or when a field of the saved run differs.
  config.optimizer.grad_clip_value = 10.0
  assert not tables.same_config(saved, config)
  config.optimizer.grad_clip_value = 0.0
  saved["optimizer"]["lr"] = 123.0
  assert not tables.same_config(saved, config)
  # A key under an open group (loss.kwargs) has no default to fill in.
  saved = json.loads(tables._config_json(config))
  with config.loss.kwargs.unlocked():
    config.loss.kwargs.label_smoothing = 0.0
  assert not tables.same_config(saved, config)
