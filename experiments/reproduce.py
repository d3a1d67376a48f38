r"""Reproduces a paper's table: runs its rows, aggregates seeds, writes ours beside the paper's.

    python -m experiments.reproduce --table gsl/table1a --seeds 3
    python -m experiments.reproduce --table mpa/table7 --rows k1,k8 --seeds 3 --workdir runs
    python -m experiments.reproduce --table sgsl/table4 --smoke      # every cell, 2 CPU steps
    python -m experiments.reproduce --suite cpu --jobs 2             # docs/results_cpu.md
    python -m experiments.reproduce --list

Each cell (row, column, seed) is `configs/<paper>/<table>.py:row=..,col=..,seed=..` trained by
`dmlax.train.loop.train_and_evaluate` in `<workdir>/<paper>/<table>/<row>/<col>/seed<s>`; a cell
whose workdir already holds a finished run of the same config is not trained again. Seeds are
aggregated as the papers do: mean ± sample standard deviation (n - 1) over seeds. The markdown
table (`<workdir>/<paper>/<table>/results.md`, or `--out`) puts the paper's number beside ours
for every metric; `summary.json` beside it holds every seed's numbers for the plots.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib
import json
import math
import multiprocessing
import os
import platform
import shutil
import sys
import time
from typing import Any

import numpy as np

DEFAULT_WORKDIR = "workdirs/reproduce"
EXTRA_METRICS = ("mean_class_angle", "mean_class_angle_train", "csc")


def load_table(name: str):
  """The `Table` of `configs/<paper>/<table>.py` for name "<paper>/<table>"."""
  parts = name.strip("/").split("/")
  if len(parts) != 2:
    raise ValueError(f"--table must be <paper>/<table> (e.g. gsl/table1a), got {name!r}")
  try:
    module = importlib.import_module(f"configs.{parts[0]}.{parts[1]}")
  except ModuleNotFoundError as e:
    raise ValueError(f"no config module configs/{parts[0]}/{parts[1]}.py; "
                     f"see --list") from e
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
      if f.endswith(".py") and not f.startswith("_") and f != "recipes.py":
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


def _finished(workdir: str, config) -> dict | None:
  path = os.path.join(workdir, "results.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    results = json.load(f)
  if results.get("status") != "done":
    return None
  if json.dumps(_jsonable(results["config"]), sort_keys=True) != _config_json(config):
    return None
  return results


def _config_key(config) -> str:
  import hashlib
  return hashlib.sha256(_config_json(config).encode()).hexdigest()[:20]


def _twin(root: str, config) -> str | None:
  path = os.path.join(root, "_by_config", _config_key(config))
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return f.read().strip()


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
    csc = dmlax_metrics.class_separability(feats, labels)
    out["csc"] = float(csc[0] if isinstance(csc, (tuple, list)) else
                       csc["csc"] if isinstance(csc, dict) else csc)
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
    name, row, col, seed = task[:4]
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
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  doc = (table.base.__doc__ or "")
  del doc
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
  import jax
  cores = os.cpu_count()
  return (f"{platform.system()} {platform.machine()}, {cores} CPU cores, "
          f"{jax.devices()[0].platform} ({len(jax.devices())} device(s)), "
          f"Python {platform.python_version()}, JAX {jax.__version__}")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--table", help="<paper>/<table>, e.g. gsl/table1a")
  parser.add_argument("--suite", choices=("cpu",), help="the CPU suite (docs/results_cpu.md)")
  parser.add_argument("--rows", help="comma-separated rows (default: all)")
  parser.add_argument("--cols", help="comma-separated columns (default: all)")
  parser.add_argument("--seeds", type=int, default=None, help="seeds per cell (default 1; suite 5)")
  parser.add_argument("--workdir", default=DEFAULT_WORKDIR)
  parser.add_argument("--out", help="markdown output (default: <workdir>/<table>/results.md)")
  parser.add_argument("--smoke", action="store_true", help="2 CPU steps per cell (a check)")
  parser.add_argument("--jobs", type=int, default=1, help="cells trained in parallel processes")
  parser.add_argument("--list", action="store_true", help="list the tables")
  args = parser.parse_args(argv)
  # Cells share programs (the same model's init and embedding, repeated configs): compile once,
  # in this process and in --jobs workers (they read the variables from the environment).
  os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.abspath(
      os.path.join(args.workdir, "_jax_cache")))
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  from absl import logging
  from dmlax.train import loop
  # A single table logs the trainer's progress; the suite prints one line per run instead.
  logging.set_verbosity(logging.WARNING if args.suite else logging.INFO)
  loop.quiet_library_logs()
  command = "python -m experiments.reproduce " + " ".join(argv if argv is not None
                                                          else sys.argv[1:])
  if args.list:
    for name in all_tables():
      t = load_table(name)
      print(f"{name}: rows {', '.join(t.rows)}; columns {', '.join(t.cols)}")
    return 0
  if args.suite == "cpu":
    from experiments import cpu_suite
    tables = tuple(args.table.split(",")) if args.table else cpu_suite.SUITE
    unknown = set(tables) - set(cpu_suite.SUITE)
    if unknown:
      parser.error(f"--suite cpu --table takes suite tables {cpu_suite.SUITE}; got {unknown}")
    return cpu_suite.run(seeds=args.seeds or cpu_suite.SEEDS, root=args.workdir, jobs=args.jobs,
                         command=command, tables=tables, smoke=args.smoke)
  if not args.table:
    parser.error("give --table <paper>/<table>, --suite cpu or --list")
  table = load_table(args.table)
  split = lambda s: [x for x in s.split(",") if x] if s else None
  summary = run_table(args.table, rows=split(args.rows), cols=split(args.cols),
                      seeds=args.seeds or 1, root=args.workdir, smoke=args.smoke, jobs=args.jobs)
  out = args.out or os.path.join(args.workdir, args.table, "results.md")
  write_table_report(table, summary, out, command)
  print(markdown_table(table, summary))
  print(f"\nwritten: {out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
