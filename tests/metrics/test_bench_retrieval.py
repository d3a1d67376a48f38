"""The SOP-scale benchmark script runs end to end at a small size (no timing is asserted)."""

from experiments import bench_retrieval


def test_small_run_screened_matches_float32_pass(capsys):
  bench_retrieval.main(["--n", "700", "--d", "24", "--screen", "on", "--rounds", "2"])
  out = capsys.readouterr().out
  assert "| retrieval_metrics (all metrics) |" in out
  assert "screened metrics identical to the float32 pass's: True" in out
  assert "rows certified by the screen:" in out
