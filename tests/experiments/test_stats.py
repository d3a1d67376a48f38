"""The suite's paired statistics against float64 NumPy formulas written out here."""
import math

import chex
import numpy as np
import pytest
from scipy import special

from experiments import stats


def _t_two_sided_p(t, df):
  """Two-sided Student-t p-value from the regularised incomplete beta function."""
  return float(special.betainc(df / 2.0, 0.5, df / (df + t * t)))


def test_paired_claim_matches_the_t_formula():
  rng = np.random.default_rng(0)
  b = rng.normal(50, 5, size=6)
  a = b + rng.normal(1.0, 0.8, size=6)
  r = stats.paired_claim(a, b, ">")
  d = a - b
  se = d.std(ddof=1) / math.sqrt(d.size)
  t = d.mean() / se
  chex.assert_trees_all_close(r["estimate"], d.mean(), rtol=1e-12)
  chex.assert_trees_all_close(r["p"], _t_two_sided_p(t, d.size - 1), rtol=1e-9)
  # 95% interval: mean +- t_{0.975, n-1} se; t_{0.975, 5} = 2.570582 (printed t tables).
  chex.assert_trees_all_close(np.array(r["ci"]), d.mean() + np.array([-1, 1]) * 2.570582 * se,
                              rtol=1e-6)
  assert r["n"] == 6 and r["verdict"] == stats.HOLDS
  assert stats.paired_claim(a, b, "<")["verdict"] == stats.CONTRADICTED


def test_paired_claim_is_inconclusive_on_noise_and_pairs_by_seed():
  a = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
  noisy = stats.paired_claim(a, a + np.array([0.5, -0.4, 0.3, -0.6, 0.1]), ">")
  assert noisy["verdict"] == stats.INCONCLUSIVE
  # Unpaired, a and a + 0.1 overlap completely; paired, the constant gap is certain.
  exact = stats.paired_claim(a + 0.1, a, ">")
  assert exact["verdict"] == stats.HOLDS and exact["p"] < 1e-6


def test_trend_claim_uses_per_seed_slopes():
  rng = np.random.default_rng(1)
  seeds = 5
  cells = np.array([[60.0 - 5 * i + rng.normal(0, 1) for _ in range(seeds)] for i in range(4)])
  r = stats.trend_claim(cells, "decreasing")
  slopes = np.array([np.polyfit(np.arange(4), cells[:, s], 1)[0] for s in range(seeds)])
  chex.assert_trees_all_close(r["estimate"], slopes.mean(), rtol=1e-9)
  t = slopes.mean() / (slopes.std(ddof=1) / math.sqrt(seeds))
  chex.assert_trees_all_close(r["p"], _t_two_sided_p(t, seeds - 1), rtol=1e-9)
  assert r["verdict"] == stats.HOLDS
  assert stats.trend_claim(cells, "increasing")["verdict"] == stats.CONTRADICTED


def test_within_claim_is_an_equivalence_test():
  rng = np.random.default_rng(2)
  b = rng.normal(70, 3, size=8)
  close = stats.paired_claim(b + rng.normal(0, 0.2, size=8), b, "within:2")
  assert close["verdict"] == stats.HOLDS and close["p"] < 0.05
  far = stats.paired_claim(b + 5 + rng.normal(0, 0.2, size=8), b, "within:2")
  assert far["verdict"] == stats.CONTRADICTED
  # TOST p: the larger one-sided p, each from t = (mean - bound) / se.
  d = (b + rng.normal(0, 1.5, size=8)) - b
  r = stats.paired_claim(d + b, b, "within:1")
  se = d.std(ddof=1) / math.sqrt(8)
  one_sided = [0.5 * _t_two_sided_p((d.mean() + 1) / se, 7) if d.mean() + 1 > 0 else 1.0,
               0.5 * _t_two_sided_p((d.mean() - 1) / se, 7) if d.mean() - 1 < 0 else 1.0]
  chex.assert_trees_all_close(r["p"], max(one_sided), rtol=1e-6)


def test_bad_input_raises():
  with pytest.raises(ValueError, match="one length"):
    stats.paired_claim([1.0, 2.0], [1.0, 2.0, 3.0], ">")
  with pytest.raises(ValueError, match="at least 2 pairs"):
    stats.paired_claim([1.0], [2.0], ">")
  with pytest.raises(ValueError, match="NaN"):
    stats.paired_claim([1.0, math.nan], [2.0, 3.0], ">")
  with pytest.raises(ValueError, match="relation"):
    stats.paired_claim([1.0, 2.0], [2.0, 3.0], ">=")
  with pytest.raises(ValueError, match="increasing or decreasing"):
    stats.trend_claim([[1.0, 2.0], [2.0, 3.0]], ">")
