"""experiments/timing.paired_ratio: the median of per-round ratios and its confidence interval."""

import math

import chex
import numpy as np
import pytest
from scipy import stats

from experiments import timing


@pytest.mark.parametrize("n", [6, 9, 17, 25, 40, 61])
def test_interval_is_the_binomial_order_statistics(n):
  rng = np.random.default_rng(n)
  base = rng.uniform(1.0, 2.0, n)
  ratios = rng.lognormal(0.1, 0.2, n)
  mid, lo, hi = timing.paired_ratio(list(ratios * base), list(base))
  s = np.sort(ratios)
  chex.assert_trees_all_close(mid, float(np.median(s)), rtol=1e-12)
  # Largest j with P(Binomial(n, 1/2) <= j - 1) <= 0.025 (scipy as the reference).
  j = max(j for j in range(1, n // 2 + 1) if stats.binom.cdf(j - 1, n, 0.5) <= 0.025)
  chex.assert_trees_all_close((lo, hi), (s[j - 1], s[n - j]), rtol=1e-12)
  assert stats.binom.cdf(n - j, n, 0.5) - stats.binom.cdf(j - 1, n, 0.5) >= 0.95


def test_interval_covers_the_true_median_at_least_at_its_level():
  rng = np.random.default_rng(0)
  n, trials, true_median = 25, 2000, math.exp(0.3)
  hits = 0
  for _ in range(trials):
    ratios = rng.lognormal(0.3, 0.5, n)
    _, lo, hi = timing.paired_ratio(list(ratios), [1.0] * n)
    hits += lo <= true_median <= hi
  # Exact coverage for n=25 is 0.957; 2000 trials have a standard error of 0.0045.
  assert hits / trials > 0.94, hits / trials


def test_few_rounds_give_the_extremes_and_bad_input_is_an_error():
  assert timing.paired_ratio([3.0, 1.0, 2.0], [1.0, 1.0, 1.0]) == (2.0, 1.0, 3.0)
  with pytest.raises(ValueError, match="paired rounds"):
    timing.paired_ratio([1.0, 2.0], [1.0])
  with pytest.raises(ValueError, match="paired rounds"):
    timing.paired_ratio([], [])
