"""Paired statistics for the CPU suite's claims (NumPy and SciPy only; no dmlax).

Every compared row of a suite table is trained with the same seeds, and a seed fixes the
initialisation and the order of the training data, so row A's seed s and row B's seed s are a
pair. A claim is judged on the per-seed values, never on means alone:

- "<" / ">" (A below / above B): the paired differences d_s = A_s - B_s; Student's paired
  t-test (`scipy.stats.ttest_rel`, two-sided), mean difference and its 95% t-interval.
- "increasing" / "decreasing" along cells x_1 .. x_m (a sweep): the least-squares slope of the
  metric against the cell's position (0, 1, .., m - 1) or its x value, one slope per seed;
  the one-sample t-test of the slopes against 0 (`scipy.stats.ttest_1samp`), mean slope and its
  95% t-interval. The slope of a seed uses only that seed's cells, so the pairing is kept.
- "within:tol" (A and B differ by less than tol, e.g. "flat above M_min"): two one-sided
  paired t-tests (TOST) of d against -tol and +tol; p is the larger of the two; the 95%
  interval of d is reported.

Verdicts: HOLDS when p < 0.05 and the estimate lies in the claim's direction (for "within", the
TOST p < 0.05); CONTRADICTED when p < 0.05 against it (for "within", the whole 95% interval
lies outside (-tol, tol)); otherwise INCONCLUSIVE. The paired t-test is used rather than
Wilcoxon's signed-rank test because with n = 5 pairs the exact two-sided signed-rank p-value
cannot go below 1/16 = 0.0625, so that test could never decide.

Example:
  >>> r = paired_claim([1.0, 2.0, 3.0, 4.0, 5.0], [0.5, 1.4, 2.6, 3.3, 4.4], ">")
  >>> r["verdict"], r["n"]
  ('HOLDS', 5)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as scipy_stats

ALPHA = 0.05
HOLDS, CONTRADICTED, INCONCLUSIVE = "HOLDS", "CONTRADICTED", "INCONCLUSIVE"


def _t_summary(d: np.ndarray) -> tuple[float, float, float, float]:
  """(mean, 95% CI low, high, two-sided p of mean = 0) of the sample `d` (n >= 2)."""
  n = d.size
  mean = float(d.mean())
  sd = float(d.std(ddof=1))
  if sd == 0.0:  # Identical differences: the interval is a point, p is 0 or 1.
    return mean, mean, mean, (1.0 if mean == 0.0 else 0.0)
  half = float(scipy_stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
  p = float(scipy_stats.ttest_1samp(d, 0.0).pvalue)
  return mean, mean - half, mean + half, p


def _check(values: Sequence[np.ndarray]) -> np.ndarray:
  arrays = [np.asarray(v, np.float64) for v in values]
  n = {a.shape for a in arrays}
  if len(n) != 1 or arrays[0].ndim != 1:
    raise ValueError(f"paired samples must be 1-D and of one length, got shapes {sorted(n)}")
  stacked = np.stack(arrays)
  if stacked.shape[1] < 2:
    raise ValueError(f"a paired test needs at least 2 pairs, got {stacked.shape[1]}")
  if not np.all(np.isfinite(stacked)):
    raise ValueError("paired samples contain NaN or infinity")
  return stacked


def _verdict(estimate: float, p: float, sign: int) -> str:
  if p < ALPHA and estimate * sign > 0:
    return HOLDS
  if p < ALPHA and estimate * sign < 0:
    return CONTRADICTED
  return INCONCLUSIVE


def paired_claim(a: Sequence[float], b: Sequence[float], relation: str) -> dict:
  """Judges "A `relation` B" ("<", ">" or "within:<tol>") on seed-paired values a[s], b[s].

  Returns:
    {"n", "estimate" (mean of a - b), "ci" (low, high), "p", "test", "verdict"}.
  """
  a, b = _check([a, b])
  d = a - b
  mean, lo, hi, p = _t_summary(d)
  if relation in ("<", ">"):
    # ttest_rel is the one-sample test of the differences: the same p as _t_summary.
    if np.std(d) > 0:
      p = float(scipy_stats.ttest_rel(a, b).pvalue)
    return {"n": int(d.size), "estimate": mean, "ci": (lo, hi), "p": p,
            "test": "paired t-test (ttest_rel, two-sided)",
            "verdict": _verdict(mean, p, 1 if relation == ">" else -1)}
  if relation.startswith("within:"):
    tol = float(relation.split(":", 1)[1])
    if np.std(d) > 0:
      p_low = float(scipy_stats.ttest_1samp(d, -tol, alternative="greater").pvalue)
      p_high = float(scipy_stats.ttest_1samp(d, tol, alternative="less").pvalue)
      p = max(p_low, p_high)
    else:
      p = 0.0 if abs(mean) < tol else 1.0
    if p < ALPHA:
      verdict = HOLDS
    elif lo >= tol or hi <= -tol:
      verdict = CONTRADICTED
    else:
      verdict = INCONCLUSIVE
    return {"n": int(d.size), "estimate": mean, "ci": (lo, hi), "p": p,
            "test": f"TOST, two one-sided paired t-tests at +-{tol:g}", "verdict": verdict}
  raise ValueError(f"relation {relation!r}: expected <, > or within:<tol>")


def trend_claim(values: Sequence[Sequence[float]], relation: str,
                x: Sequence[float] | None = None) -> dict:
  """Judges a monotone trend along cells: values[i][s] is cell i's value for seed s.

  The per-seed least-squares slope against `x` (default 0, 1, ..), then a one-sample t-test.
  """
  if relation not in ("increasing", "decreasing"):
    raise ValueError(f"relation {relation!r}: expected increasing or decreasing")
  v = _check(values)  # (cells, seeds)
  if v.shape[0] < 2:
    raise ValueError("a trend needs at least 2 cells")
  xs = np.arange(v.shape[0], dtype=np.float64) if x is None else np.asarray(x, np.float64)
  if xs.shape != (v.shape[0],) or np.ptp(xs) == 0:
    raise ValueError(f"x must give {v.shape[0]} distinct positions, got {list(xs)}")
  xc = xs - xs.mean()
  slopes = (xc @ (v - v.mean(0))) / (xc @ xc)
  mean, lo, hi, p = _t_summary(slopes)
  return {"n": int(slopes.size), "estimate": mean, "ci": (lo, hi), "p": p,
          "test": "per-seed slope, one-sample t-test (ttest_1samp, two-sided)",
          "verdict": _verdict(mean, p, 1 if relation == "increasing" else -1)}
