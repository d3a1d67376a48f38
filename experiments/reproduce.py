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
for every metric; `summary.json` beside it holds every seed's numbers for the plots. The
machinery is `experiments.tables`; `--suite cpu` hands over to `experiments.cpu_suite`.
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags
from absl import logging

from experiments import jax_cache
from experiments import tables

_TABLE = flags.DEFINE_string("table", None, "<paper>/<table>, e.g. gsl/table1a (with --suite "
                             "cpu: comma-separated suite tables)")
_SUITE = flags.DEFINE_enum("suite", None, ["cpu"], "the CPU suite (docs/results_cpu.md)")
_ROWS = flags.DEFINE_list("rows", None, "rows to run (default: all)")
_COLS = flags.DEFINE_list("cols", None, "columns to run (default: all)")
_SEEDS = flags.DEFINE_integer("seeds", None, "seeds per cell (default 1; suite 5)")
_WORKDIR = flags.DEFINE_string("workdir", tables.DEFAULT_WORKDIR, "root of the cells' workdirs")
_OUT = flags.DEFINE_string("out", None, "markdown output (default: <workdir>/<table>/results.md)")
_SMOKE = flags.DEFINE_bool("smoke", False, "2 CPU steps per cell (a check of the machinery)")
_JOBS = flags.DEFINE_integer("jobs", 1, "cells trained in parallel processes")
_LIST = flags.DEFINE_bool("list", False, "list the tables and exit")


def _listing() -> list[str]:
  """Every table: its rows and columns, how many cells run, the data and weights they need that
  the user brings (a manual download, converted ImageNet weights), and how to get each."""
  from dmlax.data import registry  # pylint: disable=g-import-not-at-top
  from dmlax.models import pretrained  # pylint: disable=g-import-not-at-top
  lines, data_needed, weights_needed = [], {}, {}
  for name in tables.all_tables():
    t = tables.load_table(name)
    lines.append(f"{name}: rows {', '.join(t.rows)}; columns {', '.join(t.cols)}")
    cells = t.cells()
    blocked = [(r, c, t.why_unavailable(r, c)) for r, c in cells if t.why_unavailable(r, c)]
    bring = set()
    for r, c in cells:
      if t.why_unavailable(r, c):
        continue
      config = t.config(f"row={r},col={c}")
      for ds in (config.dataset.name, config.eval.get("verification_dataset")):
        if ds and registry.lookup(ds)[0].manual:
          data_needed[ds] = registry.lookup(ds)[0].manual
          bring.add(f"data {ds}")
      if config.model.pretrained:
        weights_needed[config.model.pretrained] = config.model.name
        bring.add(f"weights {config.model.pretrained}")
    runnable = len(cells) - len(blocked)
    lines.append(f"  {runnable}/{len(cells)} cells runnable"
                 + (f"; you bring: {', '.join(sorted(bring))}" if bring else ""))
    lines += [f"  not runnable: {r}/{c}: {why}" for r, c, why in blocked]
  if data_needed:
    lines.append("\nData to bring (then `python -m experiments.prepare_data --dataset NAME "
                 "--manual_dir MANUAL_DIR`):")
    lines += [f"  {ds}: {how}" for ds, how in sorted(data_needed.items())]
  if weights_needed:
    lines.append("\nWeights to bring:")
    lines += [f"  {path}: {pretrained.how_to_get(model, path)}"
              for path, model in sorted(weights_needed.items())]
  return lines


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _LIST.value:
    print("\n".join(_listing()))
    return 0
  if not (_TABLE.value or _SUITE.value):
    raise app.UsageError("give --table <paper>/<table>, --suite cpu or --list")
  # Cells share programs (the same model's init and embedding, repeated configs): compile once,
  # in this process and in --jobs workers (spawned processes read these from the environment).
  # Set before anything imports JAX, which reads them once.
  jax_cache.use_persistent_cache(_WORKDIR.value)
  if _SUITE.value == "cpu":
    from experiments import cpu_suite  # pylint: disable=g-import-not-at-top
    suite_tables = tuple(_TABLE.value.split(",")) if _TABLE.value else cpu_suite.SUITE
    unknown = set(suite_tables) - set(cpu_suite.SUITE)
    if unknown:
      raise app.UsageError(f"--suite cpu --table takes suite tables {cpu_suite.SUITE}; "
                           f"got {sorted(unknown)}")
  else:
    try:
      table = tables.load_table(_TABLE.value)
      table.cells(_ROWS.value, _COLS.value)  # unknown rows or columns
    except ValueError as e:
      raise app.UsageError(str(e)) from e
  from dmlax.train import loop  # pylint: disable=g-import-not-at-top
  # A single table logs the trainer's progress; the suite prints one line per run instead.
  logging.set_verbosity(logging.WARNING if _SUITE.value else logging.INFO)
  loop.quiet_library_logs()
  command = "python -m experiments.reproduce " + " ".join(sys.argv[1:])
  if _SUITE.value == "cpu":
    return cpu_suite.run(seeds=_SEEDS.value or cpu_suite.SEEDS, root=_WORKDIR.value,
                         jobs=_JOBS.value,
                         command=command, tables=suite_tables, smoke=_SMOKE.value)
  summary = tables.run_table(_TABLE.value, rows=_ROWS.value, cols=_COLS.value,
                             seeds=_SEEDS.value or 1, root=_WORKDIR.value, smoke=_SMOKE.value,
                             jobs=_JOBS.value)
  out = _OUT.value or os.path.join(_WORKDIR.value, _TABLE.value, "results.md")
  tables.write_table_report(table, summary, out, command)
  print(tables.markdown_table(table, summary))
  print(f"\nwritten: {out}")
  return 0


if __name__ == "__main__":
  app.run(main)
