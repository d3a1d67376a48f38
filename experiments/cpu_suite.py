"""The CPU suite: a small analogue of each paper's claims, judged by paired statistics.

    python -m experiments.reproduce --suite cpu --jobs 2 [--seeds 5] [--workdir W]

Runs the `cpu_*` tables (configs/gsl/cpu_scarce.py, configs/wsoftmax/cpu_alpha.py,
configs/wsoftmax/cpu_width.py, configs/sgsl/cpu_heldout.py, configs/mpa/cpu_multimode.py) on
the generated `glyphs` data with `seeds` seeds per cell (at least 5 for a report). Rows of a
table share their seeds, and a seed fixes the initialisation and the data order, so every claim
is judged on seed-paired values by `experiments.stats` (n, mean difference, 95% interval,
p-value, HOLDS / CONTRADICTED / INCONCLUSIVE). Draws the plots (docs/cpu/*.png) and writes
docs/results_cpu.md, which leads with a one-table summary of all claims. Every number in that
file comes from these runs; nothing is typed in by hand.

Resumable: a cell whose workdir (under `--workdir`, default workdirs/reproduce) holds a
finished run of the same config is read, not trained again, so an interrupted suite continues
where it stopped and a rerun with more seeds trains only the new seeds.
"""

from __future__ import annotations

import datetime
import glob
import math
import os
import time

import numpy as np

from experiments import stats

SUITE = ("gsl/cpu_scarce", "wsoftmax/cpu_alpha", "wsoftmax/cpu_width", "sgsl/cpu_heldout",
         "mpa/cpu_multimode")
SEEDS = 5
DOC = "docs/results_cpu.md"
PLOTS = "docs/cpu"
NOT_RUN = "NOT RUN"


def _per_seed(summary: dict, cell: tuple[str, str], metric: str) -> dict[int, float]:
  out = {}
  for run in summary["runs"]:
    if (run["row"], run["col"]) == tuple(cell) and not run.get("error"):
      v = run["metrics"].get(metric, math.nan)
      if v is not None and math.isfinite(v):
        out[int(run["seed"])] = float(v)
  return out


def judge(claim, summary: dict, table=None) -> dict:
  """The claim's verdict and statistics on the seeds that every one of its cells finished.

  `table` (optional) gives the reason a cell cannot run (`Table.unavailable`).
  """
  per_cell = [_per_seed(summary, cell, claim.metric) for cell in claim.cells]
  seeds = sorted(set.intersection(*(set(p) for p in per_cell)))
  means = [float(np.mean(list(p.values()))) if p else math.nan for p in per_cell]
  base = {"claim": claim, "seeds": seeds, "means": means}
  if len(seeds) < 2:
    missing = [f"{r}/{c}" for (r, c), p in zip(claim.cells, per_cell) if not p]
    reasons = sorted({table.why_unavailable(*m.split("/")) for m in missing
                      if table is not None and table.why_unavailable(*m.split("/"))})
    why = (f"no finished run of {', '.join(missing)}"
           + (f": {'; '.join(reasons)}" if reasons else "") if missing else
           f"{len(seeds)} seed(s) shared by its cells; a paired test needs 2")
    return {**base, "verdict": NOT_RUN, "why": why, "n": len(seeds)}
  values = [[p[s] for s in seeds] for p in per_cell]
  if claim.relation in ("increasing", "decreasing"):
    result = stats.trend_claim(values, claim.relation)
  else:
    result = stats.paired_claim(values[0], values[1], claim.relation)
  return {**base, **result}


def _fmt_p(p: float) -> str:
  return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def _effect(j: dict) -> str:
  if j["verdict"] == NOT_RUN:
    return "-"
  lo, hi = j["ci"]
  return f"{j['estimate']:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def _what(claim) -> str:
  """What the effect column measures, in words."""
  if claim.relation in ("increasing", "decreasing"):
    return "slope per step of the sweep"
  (r1, c1), (r2, c2) = claim.cells
  a = r1 if c1 == c2 else f"{r1}/{c1}"
  b = r2 if c1 == c2 else f"{r2}/{c2}"
  return f"{a} - {b}"


def summary_table(judged: list[tuple[str, dict]]) -> list[str]:
  lines = ["| # | table | claim | metric | effect measured | n | effect, mean [95% CI] | p | "
           "verdict |", "|---|---|---|---|---|---|---|---|---|"]
  for i, (name, j) in enumerate(judged, 1):
    c = j["claim"]
    p = "-" if j["verdict"] == NOT_RUN else _fmt_p(j["p"])
    lines.append(f"| {i} | {name} | {c.text} | {c.metric} | {_what(c)} | {j['n']} | "
                 f"{_effect(j)} | {p} | **{j['verdict']}** |")
  return lines


def claim_line(j: dict) -> str:
  c = j["claim"]
  cells = ", ".join(f"{r}/{col} {m:.2f}" for (r, col), m in zip(c.cells, j["means"]))
  if j["verdict"] == NOT_RUN:
    return f"- **{NOT_RUN}**: {c.text} ({j['why']})."
  lo, hi = j["ci"]
  return (f"- **{j['verdict']}**: {c.text}. Seed means {cells}; {_what(c)} over n = {j['n']} "
          f"seeds {j['seeds']}: {j['estimate']:+.3f}, 95% CI [{lo:+.3f}, {hi:+.3f}], "
          f"p = {_fmt_p(j['p'])} ({j['test']}).")


def _scalars(workdir: str, suffixes: tuple[str, ...]) -> dict[str, list[tuple[int, float]]]:
  """(step, value) series of the training scalars whose tag ends with each of `suffixes`.

  The trainer logs an objective's aux values under `train/<loss name>/<key>`.
  """
  from tensorboard.backend.event_processing import event_file_loader
  from tensorboard.util import tensor_util
  out = {t: [] for t in suffixes}
  for path in sorted(glob.glob(os.path.join(workdir, "events.out.tfevents.*"))):
    for event in event_file_loader.EventFileLoader(path).Load():
      for v in event.summary.value:
        if not v.tag.startswith("train/"):
          continue
        for suffix in suffixes:
          if v.tag == "train" + suffix or v.tag.endswith(suffix) and v.tag.count("/") == 2:
            value = (tensor_util.make_ndarray(v.tensor) if v.HasField("tensor")
                     else v.simple_value)
            out[suffix].append((int(event.step), float(np.asarray(value).reshape(()))))
  return {t: sorted(s) for t, s in out.items()}


def gate_log(workdir: str, every: int) -> dict:
  """When SGSL's gate was on: the logged mean of `sgsl_active` over each window of `every` steps.

  Returns the first logged softmax CE, the first window whose softmax CE mean is below 3, the
  first window with the gate on, the windows with the gate on, and the fraction of steps on.
  """
  s = _scalars(workdir, ("/loss", "/softmax", "/sgsl_active"))
  ce = s["/softmax"] or s["/loss"]
  active = s["/sgsl_active"]
  out = {"ce_first": ce[0][1] if ce else math.nan,
         "ce_below3_step": next((st for st, v in ce if v < 3.0), None)}
  if active:
    on = [(st, v) for st, v in active if v > 0]
    out.update({"first_on_step": on[0][0] if on else None,
                "on_fraction": float(np.mean([v for _, v in active])),
                "windows_on": len(on), "windows": len(active),
                "off_after_on": [st for st, v in active if on and st > on[0][0] and v < 1.0]})
  return out


def gate_section(summary: dict, every: int) -> list[str]:
  lines = ["Gate of SGSL (joins once the batch's label-smoothed softmax CE is below 3), from the "
           f"TensorBoard scalars logged every {every} steps (a window's `sgsl_active` is the "
           "fraction of its steps with the gate on):", "",
           "| row/col | seed | CE at first log | first window with CE < 3 | first window with "
           "the gate on | fraction of steps on | windows not fully on after the first |",
           "|---|---|---|---|---|---|---|"]
  for run in summary["runs"]:
    if run.get("error") or not run["workdir"]:
      continue
    try:
      g = gate_log(run["workdir"], every)
    except Exception as e:  # pylint: disable=broad-except
      lines.append(f"| {run['row']}/{run['col']} | {run['seed']} | not read: "
                   f"{type(e).__name__}: {e} | | | | |")
      continue
    first_on = g.get("first_on_step", "-")
    frac = f"{g['on_fraction']:.2f}" if "on_fraction" in g else "- (no SGSL)"
    off = g.get("off_after_on")
    off = "-" if off is None else (", ".join(map(str, off)) or "none")
    lines.append(f"| {run['row']}/{run['col']} | {run['seed']} | {g['ce_first']:.2f} | "
                 f"{g['ce_below3_step'] or 'never'} | {first_on or 'never'} | {frac} | {off} |")
  return lines


def _workdir(summary, row, col, seed=0):
  for run in summary["runs"]:
    if run["row"] == row and run["col"] == col and run["seed"] == seed and run["workdir"]:
      return run["workdir"]
  raise KeyError(f"{summary['table']}: no run {row}/{col}/seed{seed}")


def _relabelled(summary: dict, col_of_row) -> dict:
  """A copy of `summary` whose cells carry `col_of_row(row)` as column (the sweep's series)."""
  cells = []
  for cell in summary["cells"]:
    col = col_of_row(cell["row"])
    if col is not None:
      cells.append({**cell, "col": col})
  return {**summary, "cells": cells}


def make_plots(name: str, summary: dict, plots_dir: str) -> list[tuple[str, str]]:
  """(caption, path) of the figures this suite table stands in for; captions say what to see."""
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
    add("GSL Fig. 3 analogue: t-SNE of the test features of the first 20 classes, softmax "
        "(left) vs type-II (right), seed 0. Look for tighter, better separated colour clusters "
        "on the right; the test error of both is in the table above.",
        plots.tsne, runs, file="gsl_tsne.png")
    add("GSL Fig. 4 analogue: histograms of the 64 feature components' Fisher scores (left) "
        "and of their pairwise correlations (right), seed 0. The paper's effect is type-II "
        "shifting Fisher scores up and correlations towards 0 (less redundant features).",
        plots.fisher, runs, file="gsl_fisher.png")
  elif name == "wsoftmax/cpu_alpha":
    rows = [r for r in ("softmax", "alpha0", "alpha1.5", "sg_alpha1.5")
            if any(run["row"] == r and run["workdir"] for run in summary["runs"])]
    add("W-Softmax Fig. 5 analogue: per-class mean angle between a class's features and its "
        "classifier column, train (left) and test (right), seed 0; the legend gives the mean "
        "over classes. Fig. 5 shows lower bars for larger alpha; compare the faithful "
        "alpha1.5 with the stop-gradient sg_alpha1.5.",
        plots.angles, lambda: ([wd(r, "glyphs32_m64") for r in rows], rows),
        file="wsoftmax_angles.png")
    variant = lambda r: ("faithful" if r.startswith("alpha") else
                         "stop-gradient" if r.startswith("sg_") else None)
    both = _relabelled(summary, variant)
    # alpha = 0 is the start of both curves (no biased term, so no gradient to stop).
    both["cells"] += [{**c, "col": "stop-gradient"} for c in summary["cells"]
                      if c["row"] == "alpha0"]
    add("Mean class angle (test, degrees) against alpha, faithful W-Softmax (eqs. 11-13) and "
        "the stop-gradient ablation, mean ± std over seeds. The paper's Fig. 5 trend is a "
        "falling curve; see the claims above for which variant shows it.",
        plots.sweep, lambda: (both,), metric="Mean class angle (deg)",
        file="wsoftmax_angle_vs_alpha.png", logx=False)
    add("Test accuracy (%) against alpha for both variants, mean ± std over seeds. The paper "
        "reports accuracy rising with alpha (Tables 1-2).",
        plots.sweep, lambda: (both,), metric="Accuracy (%)",
        file="wsoftmax_accuracy_vs_alpha.png", logx=False)
  elif name == "wsoftmax/cpu_width":
    add("W-Softmax Fig. 4 analogue: test accuracy (%) against the width M of the layer before "
        "the classifier (dashed: M_min = C - 1 = 31), mean ± std over seeds. The paper's shape "
        "is a rise up to M_min and a plateau after it.",
        plots.sweep, lambda: (summary,), metric="Accuracy (%)", vline=31,
        file="wsoftmax_width.png")
  elif name == "sgsl/cpu_heldout":
    add("SGSL Fig. 3 analogue: the 3-d features of the test images of the 32 classes trained "
        "on (column glyphs_d3), label-smoothed softmax (left) vs softmax + SGSL (right), seed 0, "
        "colour = class. SGSL's claim is more compact classes (points of one colour closer "
        "together).",
        plots.features3d, lambda: ([wd("softmax", "glyphs_d3"), wd("softmax_sgsl", "glyphs_d3")],
                                   ["softmax", "softmax + SGSL"]), file="sgsl_features3d.png")
  elif name == "mpa/cpu_multimode":
    add("MPA Figs. 2-3 analogue: held-out Recall@1 against the number of proxies K a class "
        "(K = 1 is ProxyAnchor; dashed: K = 2, the number of modes of a two-mode class), mean "
        "± std over seeds. The paper finds a middle K best.",
        plots.sweep, lambda: (_relabelled(summary, lambda r: "MPA" if r in (
            "proxy_anchor", "mpa", "mpa_k4", "mpa_k8") else None),),
        metric="R@1", vline=2, file="mpa_recall_vs_k.png", logx=False)
  return out


def run(*, seeds: int = SEEDS, root: str, jobs: int, command: str, doc: str = DOC,
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
  sections, judged = [], []
  runs = 0
  pool = tables_lib.make_pool(jobs)
  for name in tables:
    table = tables_lib.load_table(name)
    t0 = time.time()
    summary = tables_lib.run_table(name, seeds=seeds, root=root, jobs=jobs, smoke=smoke,
                                  pool=pool)
    runs += len(summary["runs"])
    tables_lib.write_table_report(table, summary, os.path.join(root, name, "results.md"),
                                 command)
    lines = [f"## {name}", "", table_doc(name), "",
             f"{len(summary['runs'])} runs, {time.time() - t0:.0f} s (finished runs reused).",
             "", tables_lib.markdown_table(table, summary), "",
             "Claims (paired over seeds; see the statistics note at the top):", ""]
    for claim in table.claims:
      j = judge(claim, summary, table)
      judged.append((name, j))
      lines.append(claim_line(j))
    lines.append("")
    if name == "sgsl/cpu_heldout":
      from configs.sgsl import cpu_heldout
      lines += gate_section(summary, cpu_heldout.GATE_LOG_EVERY) + [""]
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
  counts = {v: sum(j["verdict"] == v for _, j in judged)
            for v in (stats.HOLDS, stats.CONTRADICTED, stats.INCONCLUSIVE, NOT_RUN)}
  header = [
      "# CPU suite: small analogues of the four papers' claims", "",
      *(["**SMOKE RUN (2 steps a cell): a check of the machinery, not results.**", ""]
        if smoke else []),
      f"Command: `{command}`", "",
      f"Machine: {tables_lib.machine()}; load average (1/5/15 min) {load_before} before the "
      f"run, {_load()} after; {jobs} training process(es).", "",
      f"Finished {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; wall time "
      f"{wall / 60:.1f} min for {len(tables)} tables, {runs} runs, {seeds} seeds per cell "
      "(runs finished earlier, or shared between tables, are read, not retrained).", "",
      "## Summary", "",
      f"Verdicts: {counts[stats.HOLDS]} HOLDS, {counts[stats.CONTRADICTED]} CONTRADICTED, "
      f"{counts[stats.INCONCLUSIVE]} INCONCLUSIVE" +
      (f", {counts[NOT_RUN]} NOT RUN" if counts[NOT_RUN] else "") + f" of {len(judged)} claims.",
      "", *summary_table(judged), "",
      "Statistics (`experiments/stats.py`): " + "\n\n".join(stats.__doc__.split("\n\n")[1:4]),
      "",
      "Numbers in the tables below are mean ± sample std over seeds; the papers print no "
      "numbers for these settings, so the paper column is '-'. Workdirs under "
      f"`{root}`.", ""]
  os.makedirs(os.path.dirname(os.path.abspath(doc)), exist_ok=True)
  with open(doc, "w") as f:
    f.write("\n".join(header + sections))
  print(f"written: {doc} ({wall / 60:.1f} min; " + ", ".join(
      f"{n} {v}" for v, n in counts.items() if n) + ")")
  return 0


def table_doc(name: str) -> str:
  """The first two paragraphs of the table module's docstring."""
  import importlib
  paper, table = name.split("/")
  doc = (importlib.import_module(f"configs.{paper}.{table}").__doc__ or "").strip()
  parts = doc.split("\n\n")
  return "\n\n".join(p.replace("\n", " ") for p in parts[:2] if not p.startswith("    "))


def _load() -> str:
  try:
    return " / ".join(f"{v:.1f}" for v in os.getloadavg())
  except OSError:
    return "unknown"
