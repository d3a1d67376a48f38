"""experiments/bench_symmetric_screen: the symmetric and two-halves screening passes it times are
correct, and the script runs (the timing itself is the script's to report, not a test's)."""

import chex
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import bench_symmetric_screen as bench


def assert_exact_topk(x, values, idx, k):
  """values/idx are the top-k of x @ x.T without its diagonal. The bfloat16 inputs are exact in
  float64, so the only error is the float32 accumulation (whose order may differ between a
  pair's two products)."""
  n = x.shape[0]
  x64 = np.asarray(x.astype(jnp.float32), np.float64)
  s = x64 @ x64.T
  np.fill_diagonal(s, -np.inf)
  want = -np.sort(-s, axis=1)[:, :k]
  idx = np.asarray(idx)
  tol = 16 * 2.0**-23 * np.sum(x64 * x64, axis=1).max()
  chex.assert_trees_all_close(np.asarray(values, np.float64), want, atol=tol, rtol=0)
  chex.assert_trees_all_close(s[np.arange(n)[:, None], idx], want, atol=tol, rtol=0)
  assert ((idx >= 0) & (idx < n) & (idx != np.arange(n)[:, None])).all()
  assert all(len(set(row)) == k for row in idx.tolist())


@pytest.mark.parametrize("n, block, k", [(1000, 96, 7), (257, 64, 32), (300, 320, 5)])
def test_symmetric_screening_pass_equals_a_float64_reference(n, block, k):
  # Upper-triangle tiles only, each used for its rows and (transposed) for its columns: many
  # tiles, a ragged last block, a single tile.
  x = jnp.asarray(np.random.default_rng(n).normal(size=(n, 16)), jnp.bfloat16)
  size = bench.symmetric_block(n, k, block)
  assert size == (block if block < n else 32 * -(-n // 32)), size
  values, idx = bench.symmetric_topk(x, k=k, block_size=size)
  assert_exact_topk(x, values, idx, k)


@pytest.mark.parametrize("n, block, k", [(1000, 96, 7), (257, 64, 32), (300, 160, 5)])
def test_two_halves_pass_equals_a_float64_reference(n, block, k):
  # Ragged last block, an odd and an even number of blocks, two blocks only.
  x = jnp.asarray(np.random.default_rng(n + 1).normal(size=(n, 16)), jnp.bfloat16)
  values, idx = bench.halves_topk(x, k=k, block_size=bench.halves_block(n, block))
  assert_exact_topk(x, values, idx, k)


def test_two_halves_needs_two_blocks():
  with pytest.raises(ValueError, match="two blocks"):
    bench.halves_topk(jnp.zeros((40, 4), jnp.bfloat16), k=3, block_size=64)


def test_script_runs_and_every_pass_keeps_the_same_scores():
  gap = bench.main(["--n", "700", "--d", "24", "--rounds", "1"])
  assert gap < 1e-5, gap
