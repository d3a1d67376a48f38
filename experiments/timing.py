"""Timing and memory measurement shared by the benchmark scripts.

Machines here are noisy, so benchmarks report ratios to a baseline timed in the same process,
interleaving the candidates round by round so that a burst of load hits all of them alike.
"""

from __future__ import annotations

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


def interleaved_medians(
    fns: Mapping[str, Callable[[], object]], *, rounds: int = 7, inner: int = 3,
    warmup: int = 2, clock: Callable[[], float] = time.perf_counter,
    statistic: Callable[[list[float]], float] = statistics.median) -> dict[str, float]:
  """Seconds per call of each zero-argument function (median of the rounds), measured round-robin.

  `clock`: wall time by default; ``time.process_time`` counts this process's CPU seconds (with
  XLA on one thread, the work itself, unaffected by other jobs waiting for the same cores).
  `statistic` summarises each function's rounds (``min``: the least disturbed round, steadier
  than the median when other jobs share the memory bus and caches).
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
  return {name: statistic(s) for name, s in samples.items()}
