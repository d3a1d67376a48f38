"""experiments/bench_positive_ranks runs and its two searches agree (the timing is the
script's to report, not a test's)."""

import pytest

from experiments import bench_positive_ranks as bench


@pytest.mark.parametrize("width", ["1", "6"])
def test_script_runs_and_both_searches_agree(width):
  assert bench.main(["--n", "600", "--d", "16", "--rows", "200", "--width", width,
                     "--rounds", "1"])
