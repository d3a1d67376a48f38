"""experiments/profile_retrieval runs, its stage timers cover the call, and every tile shape it
compares keeps the same candidates (the timing is the script's to report, not a test's)."""

from experiments import profile_retrieval


def test_script_runs():
  profile_retrieval.main(["--n", "1500", "--d", "16", "--queries", "300", "--rounds", "1"])
