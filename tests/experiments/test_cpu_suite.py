"""The CPU suite's machinery end to end (what `python -m experiments.reproduce --suite cpu --smoke`
runs, 2 steps a cell), and the judging of claims on per-seed values."""
import os

import pytest

from configs import paper_tables
from experiments import cpu_suite
from experiments import stats
from experiments import tables as tables_lib


def test_judge_pairs_by_seed_and_reports_missing_cells():
  claim = paper_tables.Claim("a beats b", "R@1", (("a", "c"), ("b", "c")), ">")
  runs = [{"row": r, "col": "c", "seed": s, "metrics": {"R@1": v}}
          for r, vals in (("a", [61.0, 55.0, 70.0]), ("b", [60.0, 54.2, 69.1])) for s, v in
          enumerate(vals)]
  runs.append({"row": "b", "col": "c", "seed": 3, "metrics": {"R@1": 99.0}})  # unpaired seed
  j = cpu_suite.judge(claim, {"runs": runs})
  assert j["seeds"] == [0, 1, 2] and j["n"] == 3
  ref = stats.paired_claim([61.0, 55.0, 70.0], [60.0, 54.2, 69.1], ">")
  assert (j["estimate"], j["p"], j["verdict"]) == (ref["estimate"], ref["p"], ref["verdict"])
  missing = cpu_suite.judge(claim, {"runs": runs[3:]})
  assert missing["verdict"] == cpu_suite.NOT_RUN and "a/c" in missing["why"]


# Under the persistent compilation cache, as `python -m experiments.reproduce --suite cpu` runs
# the suite: the seeds of a cell share their programs.
@pytest.mark.usefixtures("compilation_cache")
def test_suite_smoke_writes_a_report_with_a_verdict_per_claim(tmp_path):
  tables = ("sgsl/cpu_heldout",)
  rc = cpu_suite.run(seeds=2, root=str(tmp_path), jobs=1, command="test", tables=tables,
                     smoke=True)
  assert rc == 0
  text = (tmp_path / "results_cpu.md").read_text()
  assert "SMOKE RUN" in text and "## Summary" in text
  claims = sum(len(tables_lib.load_table(t).claims) for t in tables)
  rows = [line for line in text.splitlines() if line.startswith("| ") and "**" in line
          and line.split("|")[1].strip().isdigit()]
  assert len(rows) == claims
  for line in rows:
    assert any(f"**{v}**" in line for v in (stats.HOLDS, stats.CONTRADICTED,
                                            stats.INCONCLUSIVE, cpu_suite.NOT_RUN))
  assert "Gate of SGSL" in text and "softmax_sgsl/glyphs | 0 |" in text
  # Finished cells are reused: a second run trains nothing and gives the same numbers.
  done = tmp_path / "sgsl/cpu_heldout/softmax/glyphs/seed0/results.json"
  before = os.path.getmtime(done)
  cpu_suite.run(seeds=2, root=str(tmp_path), jobs=1, command="test", tables=tables, smoke=True)
  after = os.path.getmtime(done)
  assert before == after
