"""The CPU suite: a small analogue of each paper's headline claim on the embedded datasets.

    python -m experiments.reproduce --suite cpu [--seeds 3] [--jobs 2]

Runs the `cpu_*` tables (configs/gsl/cpu_scarce.py, configs/wsoftmax/cpu_alpha.py,
configs/wsoftmax/cpu_width.py, configs/sgsl/cpu_heldout.py, configs/mpa/cpu_multicenter.py)
with `seeds` seeds per cell, checks each table's claims on the seed means, draws the plots
(docs/cpu/*.png) and writes docs/results_cpu.md with the command, the machine and the wall
time. Every number in that file comes from these runs; nothing is typed in by hand.
"""

from __future__ import annotations

import datetime
import math
import os
import time

import numpy as np

SUITE = ("gsl/cpu_scarce", "wsoftmax/cpu_alpha", "wsoftmax/cpu_width", "sgsl/cpu_heldout",
         "mpa/cpu_multicenter")
DOC = "docs/results_cpu.md"
PLOTS = "docs/cpu"


def check_claim(claim, summary) -> tuple[bool, str]:
  """(holds, the numbers behind it) for one `paper_tables.Claim` on a table's summary."""
  cells = {(c["row"], c["col"]): c["metrics"][claim.metric] for c in summary["cells"]}
  missing = [cell for cell in claim.cells if cell not in cells]
  if missing:
    return False, f"not run: {missing}"
  ms = [cells[cell] for cell in claim.cells]
  means = [m["mean"] for m in ms]
  text = ", ".join(f"{r}/{c} {m['mean']:.2f} ± {0.0 if math.isnan(m['std']) else m['std']:.2f}"
                   for (r, c), m in zip(claim.cells, ms))
  if any(math.isnan(v) for v in means):
    return False, text
  rel = claim.relation
  if rel in ("<", ">"):
    a, b = ms
    holds = a["mean"] < b["mean"] if rel == "<" else a["mean"] > b["mean"]
    noise = max(0.0 if math.isnan(a["std"]) else a["std"],
                0.0 if math.isnan(b["std"]) else b["std"])
    gap = abs(a["mean"] - b["mean"])
    text += ("; the gap exceeds the larger seed std" if gap > noise
             else "; the gap is within one seed std")
    return holds, text
  if rel.startswith("within:"):
    tol = float(rel.split(":", 1)[1])
    return abs(means[0] - means[1]) < tol, text
  diffs = np.diff(means)
  holds = bool(np.all(diffs > 0) if rel == "increasing" else np.all(diffs < 0))
  return holds, text


def _workdir(summary, row, col, seed=0):
  for run in summary["runs"]:
    if run["row"] == row and run["col"] == col and run["seed"] == seed and run["workdir"]:
      return run["workdir"]
  raise KeyError(f"{summary['table']}: no run {row}/{col}/seed{seed}")


def make_plots(name: str, summary: dict, plots_dir: str) -> list[tuple[str, str]]:
  """(caption, path) of the figures this suite table stands in for."""
  from experiments import plots
  out = []

  def add(caption, fn, args, *, file, **kwargs):
    """Draws `fn(*args(), out=..., **kwargs)`; a failure is reported, not raised."""
    path = os.path.join(plots_dir, file)
    try:
      fn(*args(), out=path, **kwargs)
      out.append((caption, path))
    except Exception as e:  # pylint: disable=broad-except
      out.append((f"{caption}: NOT DRAWN ({type(e).__name__}: {e})", ""))

  wd = lambda r, c: _workdir(summary, r, c)
  if name == "gsl/cpu_scarce":
    runs = lambda: ([wd("softmax", "per_class10"), wd("type2", "per_class10")],
                    ["softmax", "type-II"])
    add("GSL Fig. 3 analogue: t-SNE of test features, softmax vs type-II (10 images a class)",
        plots.tsne, runs, file="gsl_tsne.png")
    add("GSL Fig. 4 analogue: Fisher scores and correlations of the 64 feature components",
        plots.fisher, runs, file="gsl_fisher.png")
  elif name == "wsoftmax/cpu_alpha":
    rows = ["softmax", "alpha0", "alpha1", "alpha1.5"]
    add("W-Softmax Fig. 5 analogue: per-class mean angles, train and test",
        plots.angles, lambda: ([wd(r, "digits_m64") for r in rows], rows),
        file="wsoftmax_angles.png")
    add("Mean class angle (test) against alpha", plots.sweep, lambda: (summary,),
        metric="Mean class angle (deg)", file="wsoftmax_angle_vs_alpha.png", logx=False)
    add("Accuracy against alpha", plots.sweep, lambda: (summary,), metric="Accuracy (%)",
        file="wsoftmax_accuracy_vs_alpha.png", logx=False)
  elif name == "wsoftmax/cpu_width":
    add("W-Softmax Fig. 4 analogue: accuracy against the width M (dashed: M_min = 9)",
        plots.sweep, lambda: (summary,), metric="Accuracy (%)", vline=9,
        file="wsoftmax_width.png")
  elif name == "sgsl/cpu_heldout":
    add("SGSL Fig. 3 analogue: 3-d features of held-out digits 5-9, softmax vs softmax + SGSL",
        plots.features3d, lambda: ([wd("softmax", "digits_d3"), wd("softmax_sgsl", "digits_d3")],
                                   ["softmax", "softmax + SGSL"]), file="sgsl_features3d.png")
  elif name == "mpa/cpu_multicenter":
    add("MPA Figs. 2-3 analogue: Recall@1 against the number of proxies K (3 modes a class)",
        plots.sweep, lambda: (summary,), metric="R@1", vline=3, file="mpa_recall_vs_k.png",
        logx=False)
  return out


def run(*, seeds: int, root: str, jobs: int, command: str, doc: str = DOC,
        plots_dir: str = PLOTS, tables=SUITE, smoke: bool = False) -> int:
  """Runs the suite and writes `doc`; returns 0.

  With `smoke` (a check of this machinery: 2 steps per cell), the report and plots go to
  `root` instead of docs/.
  """
  from experiments import tables as tables_lib
  if smoke:
    doc, plots_dir = os.path.join(root, "results_cpu.md"), os.path.join(root, "plots")
  start = time.time()
  load_before = _load()
  sections = []
  held, total = 0, 0
  pool = tables_lib.make_pool(jobs)
  for name in tables:
    table = tables_lib.load_table(name)
    t0 = time.time()
    summary = tables_lib.run_table(name, seeds=seeds, root=root, jobs=jobs, smoke=smoke,
                                   pool=pool)
    tables_lib.write_table_report(table, summary, os.path.join(root, name, "results.md"),
                                  command)
    lines = [f"## {name}", "", (table_doc(name)), "",
             f"{len(summary['runs'])} runs, {time.time() - t0:.0f} s.", "",
             tables_lib.markdown_table(table, summary), "", "Claims (seed means):", ""]
    for claim in table.claims:
      ok, text = check_claim(claim, summary)
      held += ok
      total += 1
      lines.append(f"- {'HOLDS' if ok else 'DOES NOT HOLD'}: {claim.text} ({text}).")
    lines.append("")
    for caption, path in make_plots(name, summary, plots_dir):
      if path:
        rel = os.path.relpath(path, os.path.dirname(os.path.abspath(doc)))
        lines += [f"![{caption}]({rel})", "", f"*{caption}*", ""]
      else:
        lines += [f"*{caption}*", ""]
    sections.append("\n".join(lines))
  if pool is not None:
    pool.shutdown()
  wall = time.time() - start
  header = [
      "# CPU suite: small analogues of the four papers' claims", "",
      *(["**SMOKE RUN (2 steps a cell): a check of the machinery, not results.**", ""]
        if smoke else []),
      f"Command: `{command}`", "",
      f"Machine: {tables_lib.machine()}; load average (1/5/15 min) {load_before} before the "
      f"run, {_load()} after; {jobs} training process(es).", "",
      f"Finished {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; wall time "
      f"{wall / 60:.1f} min for {len(tables)} tables, {seeds} seeds per cell "
      f"(runs shared between tables are trained once).", "",
      f"Claims holding at this scale: {held} of {total}. Numbers are mean ± sample std over "
      "seeds, generated by the command above (workdirs under "
      f"`{root}`); the papers print no numbers for these settings, so the paper column is '-'.",
      ""]
  os.makedirs(os.path.dirname(os.path.abspath(doc)), exist_ok=True)
  with open(doc, "w") as f:
    f.write("\n".join(header + sections))
  print(f"written: {doc} ({wall / 60:.1f} min; {held} of {total} claims hold)")
  return 0


def table_doc(name: str) -> str:
  """The first paragraph of the table module's docstring."""
  import importlib
  paper, table = name.split("/")
  doc = importlib.import_module(f"configs.{paper}.{table}").__doc__ or ""
  return doc.strip().split("\n\n")[0].replace("\n", " ") + "\n\n" + (
      doc.strip().split("\n\n")[1].replace("\n", " ") if "\n\n" in doc.strip() else "")


def _load() -> str:
  try:
    return " / ".join(f"{v:.1f}" for v in os.getloadavg())
  except OSError:
    return "unknown"
