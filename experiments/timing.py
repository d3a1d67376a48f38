"""Timing and memory measurement shared by the benchmark scripts.

Machines here are noisy, so benchmarks report ratios to a baseline timed in the same process,
interleaving the candidates round by round so that a burst of load hits all of them alike.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Callable, Mapping

import jax


def block(tree):
  """Waits for every array of `tree` (asynchronous dispatch) and returns it."""
  return jax.tree_util.tree_map(
      lambda x: x.block_until_ready() if hasattr(x, "block_until_ready") else x, tree)


def temp_bytes(jitted, *args) -> int | None:
  """XLA's temporary-buffer size for a jitted function at these arguments (None if unknown)."""
  analysis = jitted.lower(*args).compile().memory_analysis()
  if analysis is None:
    return None
  return int(analysis.temp_size_in_bytes)


def interleaved_samples(
    fns: Mapping[str, Callable[[], object]], *, rounds: int = 7, inner: int = 3,
    warmup: int = 2, clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
  """Seconds per call of each zero-argument function in each round, measured round-robin.

  `clock`: wall time by default; ``time.process_time`` counts this process's CPU seconds (with
  XLA on one thread, the work itself, unaffected by other jobs waiting for the same cores).
  """
  for fn in fns.values():
    for _ in range(warmup):
      block(fn())
  samples: dict[str, list[float]] = {name: [] for name in fns}
  for _ in range(rounds):
    for name, fn in fns.items():
      start = clock()
      for _ in range(inner):
        out = fn()
      block(out)
      samples[name].append((clock() - start) / inner)
  return samples


def interleaved_medians(
    fns: Mapping[str, Callable[[], object]], *, rounds: int = 7, inner: int = 3,
    warmup: int = 2, clock: Callable[[], float] = time.perf_counter,
    statistic: Callable[[list[float]], float] = statistics.median) -> dict[str, float]:
  """`interleaved_samples` summarised per function by `statistic` (the median of the rounds;
  ``min``: the least disturbed round, steadier when other jobs share the memory bus)."""
  samples = interleaved_samples(fns, rounds=rounds, inner=inner, warmup=warmup, clock=clock)
  return {name: statistic(s) for name, s in samples.items()}


def paired_ratio(times: list[float], base: list[float],
                 level: float = 0.95) -> tuple[float, float, float]:
  """Median of the per-round ratios times[i] / base[i] and a distribution-free confidence
  interval for it: `(median, low, high)`.

  Rounds interleave the candidates, so one round's ratio compares two calls made moments apart;
  a slow spell of the machine moves both. The interval is the one of the order statistics
  (x_(j), x_(n+1-j)) with j the largest index such that P(Binomial(n, 1/2) < j) <= (1 - level)
  / 2, whose coverage is at least `level` for any continuous distribution of the ratios (both
  ends are the extreme ratios when n is too small for the level).
  """
  if len(times) != len(base) or not times:
    raise ValueError(f"need paired rounds, got {len(times)} and {len(base)}")
  ratios = sorted(t / b for t, b in zip(times, base))
  n = len(ratios)
  tail = (1.0 - level) / 2
  j, below = 0, 0.0   # below = P(Bin(n, 1/2) < j + 1) = P(Bin <= j)
  while True:
    below += math.comb(n, j) / 2.0**n
    if below > tail:
      break
    j += 1
  # j order statistics at each end fall outside; 1-indexed (x_(j), x_(n+1-j)), j >= 1.
  j = max(j, 1)
  return statistics.median(ratios), ratios[j - 1], ratios[n - j]
