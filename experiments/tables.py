"""Paper tables as runs: load a table, train its cells, aggregate seeds, report beside the paper.

A table is the `TABLE` (a `configs.paper_tables.Table`) of `configs/<paper>/<table>.py`. Each
cell (row, column, seed) is `TABLE.config("row=..,col=..,seed=..")` trained by
`dmlax.train.loop.train_and_evaluate` in `<root>/<paper>/<table>/<row>/<col>/seed<s>`; a cell
whose workdir already holds a finished run of the same config is not trained again, nor is a
config another table already trained (a shared baseline). Seeds are aggregated as the papers do:
mean ± sample standard deviation (n - 1) over seeds. `write_table_report` writes the markdown
table (ours beside the paper's, for every metric) and `summary.json` (every seed's numbers, for
the plots).

Used by the command `experiments.reproduce`, the CPU suite `experiments.cpu_suite` and the
figures `experiments.plots`; this module imports none of them.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import importlib
import json
import math
import multiprocessing
import os
import platform
import shutil
import time
from typing import Any

import numpy as np

DEFAULT_WORKDIR = "workdirs/reproduce"
EXTRA_METRICS = ("mean_class_angle", "mean_class_angle_train", "csc")


def load_table(name: str):
  """The `Table` of `configs/<paper>/<table>.py` for name "<paper>/<table>".

  Raises:
    ValueError: `name` is not "<paper>/<table>", or no such module declares a TABLE.
  """
  parts = name.strip("/").split("/")
  if len(parts) != 2:
    raise ValueError(f"--table must be <paper>/<table> (e.g. gsl/table1a), got {name!r}")
  try:
    module = importlib.import_module(f"configs.{parts[0]}.{parts[1]}")
  except ModuleNotFoundError as e:
    raise ValueError(f"no config module configs/{parts[0]}/{parts[1]}.py; "
                     f"see --list") from e
  if not hasattr(module, "TABLE"):
    raise ValueError(f"configs/{parts[0]}/{parts[1]}.py declares no TABLE; see --list")
  return module.TABLE


def all_tables() -> list[str]:
  """Every "<paper>/<table>" under configs/ that declares a TABLE."""
  root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
  names = []
  for paper in sorted(os.listdir(root)):
    pdir = os.path.join(root, paper)
    if not os.path.isdir(pdir) or paper.startswith("_"):
      continue
    for f in sorted(os.listdir(pdir)):
      if not f.endswith(".py") or f.startswith("_"):
        continue
      # Recipes and shared factories sit beside the tables: a table is a module with a TABLE.
      if hasattr(importlib.import_module(f"configs.{paper}.{f[:-3]}"), "TABLE"):
        names.append(f"{paper}/{f[:-3]}")
  return names


def _config_json(config) -> str:
  return json.dumps(_jsonable(config.to_dict()), sort_keys=True)


def _jsonable(x):
  if isinstance(x, dict):
    return {str(k): _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  return x


def _with_new_defaults(saved, now, defaults):
  """`saved` with the fields it lacks taken from `now` where `now` has the base config's
  default there (`defaults`, None below an open group): fields the trainer gained after the run
  was trained, left at the default that keeps its earlier behaviour. Otherwise `saved`."""
  if not (isinstance(saved, dict) and isinstance(now, dict)):
    return saved
  out = {}
  for key, value in saved.items():
    sub = defaults.get(key) if isinstance(defaults, dict) else None
    out[key] = _with_new_defaults(value, now.get(key), sub)
  for key in now.keys() - saved.keys():
    if not isinstance(defaults, dict) or key not in defaults or defaults[key] != now[key]:
      return saved
    out[key] = now[key]
  return out


def same_config(saved: dict, config) -> bool:
  """Whether a finished run's saved config is `config`: the same JSON, or the same once the
  fields added to `configs.common` since the run are filled in at their defaults (a cell whose
  config sets such a field to anything else is trained again)."""
  now = json.loads(_config_json(config))
  saved = json.loads(json.dumps(_jsonable(saved), sort_keys=True))
  if saved == now:
    return True
  from configs import common  # pylint: disable=g-import-not-at-top
  defaults = json.loads(_config_json(common.get_config()))
  return _with_new_defaults(saved, now, defaults) == now


def _finished(workdir: str, config) -> dict | None:
  path = os.path.join(workdir, "results.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    results = json.load(f)
  if results.get("status") != "done":
    return None
  if not same_config(results["config"], config):
    return None
  return results


def _config_key(config) -> str:
  return hashlib.sha256(_config_json(config).encode()).hexdigest()[:20]


def _twin(root: str, config) -> str | None:
  """The workdir of a finished run of `config` recorded under `root/_by_config`, if any."""
  index = os.path.join(root, "_by_config")
  path = os.path.join(index, _config_key(config))
  if os.path.exists(path):
    with open(path) as f:
      return f.read().strip()
  # Runs recorded before the config gained fields are keyed by their shorter JSON.
  for name in sorted(os.listdir(index)) if os.path.isdir(index) else ():
    with open(os.path.join(index, name)) as f:
      workdir = f.read().strip()
    if _finished(workdir, config) is not None:
      return workdir
  return None


def _remember(root: str, config, workdir: str) -> None:
  os.makedirs(os.path.join(root, "_by_config"), exist_ok=True)
  with open(os.path.join(root, "_by_config", _config_key(config)), "w") as f:
    f.write(os.path.abspath(workdir))


def extra_metrics(table, workdir: str) -> dict[str, float]:
  """Statistics the trainer does not compute, from the trained workdir (W-Softmax eq. 14)."""
  keys = {m.key for m in table.metrics} & set(EXTRA_METRICS)
  if not keys:
    return {}
  cache = os.path.join(workdir, "extra_metrics.json")
  if os.path.exists(cache):
    with open(cache) as f:
      out = json.load(f)
    if keys <= set(out):
      return out
  from dmlax import metrics as dmlax_metrics
  from experiments import trained_features
  run = trained_features.load(workdir)
  out = {}
  if keys & {"mean_class_angle", "mean_class_angle_train"}:
    w = run.loss_params["classifier"]
    for split, key in ((run.info.eval_split, "mean_class_angle"),
                       (run.info.train_split, "mean_class_angle_train")):
      feats, labels = run.embed(split)
      # Radians -> degrees, as the paper plots them.
      angles = np.degrees(np.asarray(dmlax_metrics.mean_class_angles(feats, labels, w),
                                     np.float64))
      out[key] = float(np.nanmean(angles))
      out[key + "_per_class"] = angles.tolist()
  if "csc" in keys:  # SGSL eq. 9 on the evaluation split
    feats, labels = run.embed(run.info.eval_split)
    # class_separability returns (trace(S_b) / trace(S_w), trace(S_b), trace(S_w)).
    out["csc"] = float(dmlax_metrics.class_separability(feats, labels)[0])
  with open(cache, "w") as f:
    json.dump(out, f)
  return out


def run_cell(table_name: str, row: str, col: str, seed: int, root: str,
             smoke: bool = False) -> dict[str, Any]:
  """Trains (or reuses) one cell and returns its metrics in the table's terms."""
  from absl import logging
  from dmlax.train import loop
  table = load_table(table_name)
  arg = f"row={row},col={col},seed={seed}" + (",smoke" if smoke else "")
  config = table.config(arg)
  workdir = os.path.join(root, table_name, row, col, f"seed{seed}")
  results = _finished(workdir, config)
  if results is None:  # the same config trained for another table (a shared baseline)
    twin = _twin(root, config)
    if twin is not None and _finished(twin, config) is not None:
      workdir, results = twin, _finished(twin, config)
  start = time.time()
  if results is None:
    if os.path.exists(workdir):  # a different config or an unfinished run: start afresh
      shutil.rmtree(workdir)
    logging.info("training %s %s", table_name, arg)
    results = loop.train_and_evaluate(config, workdir)
    if results.get("status") != "done":
      raise RuntimeError(f"{table_name} {arg}: training stopped ({results.get('status')})")
    _remember(root, config, workdir)
  final = dict(results["final"])
  final.update(extra_metrics(table, workdir))
  return {"row": row, "col": col, "seed": seed, "workdir": os.path.abspath(workdir),
          "metrics": {m.name: m.read(final) for m in table.metrics},
          "raw": {k: v for k, v in final.items() if not isinstance(v, list)},
          "wall_time_s": results.get("wall_time_s", time.time() - start),
          "steps": results.get("steps")}


def _worker_init():
  # Each worker is a fresh interpreter (spawn); keep its logs quiet and its threads few.
  from absl import logging
  logging.set_verbosity(logging.WARNING)


def make_pool(jobs: int):
  """`jobs` spawned training processes (None for jobs <= 1), reusable across tables."""
  if jobs <= 1:
    return None
  return concurrent.futures.ProcessPoolExecutor(
      jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init)


def run_table(table_name: str, *, rows=None, cols=None, seeds: int = 1, root: str,
              smoke: bool = False, jobs: int = 1, pool=None) -> dict[str, Any]:
  """Runs every requested cell; returns the summary (per-seed numbers and aggregates)."""
  table = load_table(table_name)
  cells = table.cells(rows, cols)
  runnable = [(r, c) for r, c in cells if smoke or not table.why_unavailable(r, c)]
  skipped = {f"{r}/{c}": table.why_unavailable(r, c) for r, c in cells
             if (r, c) not in runnable}
  tasks = [(table_name, r, c, s, root, smoke) for r, c in runnable for s in range(seeds)]
  start = time.time()
  own_pool = pool is None and jobs > 1 and len(tasks) > 1
  if own_pool:
    pool = make_pool(jobs)
  runs = []
  if pool is not None:
    futures = [pool.submit(_run_task, t) for t in tasks]
    for i, f in enumerate(futures):
      runs.append(f.result())
      _progress(i + 1, len(tasks), runs[-1], table_name, start)
    if own_pool:
      pool.shutdown()
  else:
    for i, t in enumerate(tasks):
      runs.append(_run_task(t))
      _progress(i + 1, len(tasks), runs[-1], table_name, start)
  summary = {"table": table_name, "seeds": seeds, "smoke": smoke, "runs": runs,
             "skipped": skipped, "wall_time_s": time.time() - start,
             "cells": aggregate(table, runnable, runs)}
  return summary


def _run_task(task):
  """run_cell, with a failure recorded (and reported) instead of ending the whole table."""
  try:
    return run_cell(*task)
  except Exception as e:  # pylint: disable=broad-except
    _, row, col, seed = task[:4]
    return {"row": row, "col": col, "seed": seed, "workdir": "", "metrics": {}, "raw": {},
            "wall_time_s": 0.0, "steps": 0, "error": f"{type(e).__name__}: {e}"}


def _progress(i, n, run, table_name, start):
  if run.get("error"):
    print(f"[{time.strftime('%H:%M:%S')}] {table_name} {i}/{n}: {run['row']}/{run['col']} "
          f"seed{run['seed']} FAILED: {run['error']}", flush=True)
    return
  print(f"[{time.strftime('%H:%M:%S')}] {table_name} {i}/{n}: {run['row']}/{run['col']} "
        f"seed{run['seed']} {run['wall_time_s']:.0f} s train; "
        + ", ".join(f"{k} {v:.2f}" for k, v in run["metrics"].items())
        + f" ({time.time() - start:.0f} s so far)", flush=True)


def aggregate(table, cells, runs) -> list[dict[str, Any]]:
  """Mean ± sample std over seeds of every metric of every cell."""
  out = []
  for r, c in cells:
    mine = [run for run in runs if run["row"] == r and run["col"] == c and not run.get("error")]
    entry = {"row": r, "col": c, "n": len(mine), "x": table.x_of(r, c), "metrics": {}}
    for i, m in enumerate(table.metrics):
      vals = np.array([run["metrics"][m.name] for run in mine], np.float64)
      vals = vals[np.isfinite(vals)]
      reported = table.reported.get((r, c))
      entry["metrics"][m.name] = {
          "values": vals.tolist(),
          "mean": float(vals.mean()) if vals.size else math.nan,
          "std": float(vals.std(ddof=1)) if vals.size > 1 else math.nan,
          "paper": reported[i] if reported else "-"}
    out.append(entry)
  return out


def _fmt(m: dict) -> str:
  if not m["values"]:
    return "-"
  if math.isnan(m["std"]):
    return f"{m['mean']:.2f}"
  return f"{m['mean']:.2f} ± {m['std']:.2f}"


def markdown_table(table, summary) -> str:
  """Ours beside the paper's, one line per cell."""
  single_col = len(table.cols) == 1
  head = ["row"] + ([] if single_col else ["column"]) + ["n"]
  for m in table.metrics:
    head += [f"{m.name} (ours)", f"{m.name} (paper)"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for cell in summary["cells"]:
    line = [cell["row"]] + ([] if single_col else [cell["col"]]) + [str(cell["n"])]
    for m in table.metrics:
      v = cell["metrics"][m.name]
      line += [_fmt(v), v["paper"]]
    lines.append("| " + " | ".join(line) + " |")
  for cell, why in summary["skipped"].items():
    lines.append(f"\nNot run: `{cell}`: {why}.")
  for run in summary["runs"]:
    if run.get("error"):
      lines.append(f"\nFAILED: `{run['row']}/{run['col']}` seed {run['seed']}: {run['error']}")
  return "\n".join(lines)


def write_table_report(table, summary, out: str, command: str) -> None:
  """Writes `out` (the command, the machine, the markdown table) and summary.json beside it."""
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  text = [f"# {table.name}", "", f"Command: `{command}`", "",
          f"Seeds per cell: {summary['seeds']}; mean ± sample std over seeds"
          f"{' (smoke: 2 CPU steps, not the paper setting)' if summary['smoke'] else ''}; "
          f"wall time {summary['wall_time_s']:.0f} s on {machine()}.", "",
          markdown_table(table, summary), ""]
  with open(out, "w") as f:
    f.write("\n".join(text))
  with open(os.path.join(os.path.dirname(os.path.abspath(out)), "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)


def machine() -> str:
  """The platform, CPU cores, JAX backend and versions, for a report's header."""
  import jax  # pylint: disable=g-import-not-at-top
  cores = os.cpu_count()
  return (f"{platform.system()} {platform.machine()}, {cores} CPU cores, "
          f"{jax.devices()[0].platform} ({len(jax.devices())} device(s)), "
          f"Python {platform.python_version()}, JAX {jax.__version__}")
