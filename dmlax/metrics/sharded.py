"""Neighbour search with the references sharded over a mesh axis: exact top-k merged across shards.

Each device of the axis holds one contiguous block of m = ceil(Nr / S) references (the last one
padded) and one block of the queries. The query blocks travel around the axis as a ring
(`lax.ppermute`, S steps): at each step a device searches the visiting block against its own
references with the float32 pass (`tiles.blocked_topk`) and merges the result into the block's
running top-k, which travels with it. After S steps every block is back on its device with the
exact top-k over all references. A device never holds more than its reference block, two query
blocks, their running lists and one tile.

The merge sorts the union of two lists by (similarity descending, global index ascending), so it
does not depend on the order in which shards are visited: ties go to the lower reference index
as on one device. Each shard's similarities are float32 products of the same rows as on one
device, but in tiles of another width, whose rounding the matrix-product kernel may change:
results are equal to the single-device ones exactly where products are exact (and so are the
tie-breaks), and otherwise up to float32 rounding of near-ties. (Identical rows are prepared
by the same row-wise operations and meet the same tile product, so copies tie.)

Multi-process: the mesh may span processes (`jax.make_mesh` over `jax.devices()`). Each process
then builds the global arrays from its process-local rows
(`jax.make_array_from_process_local_data` with `NamedSharding(mesh, P(axis_name))`: contiguous
blocks in process order, so global index = process offset + local index) and calls the same
jitted `_ring`; the ring's `ppermute` crosses hosts and the merge is unchanged, so the result is
the single-process one. The functions here take host arrays and place them, which is the
single-process case; the (Nq, k) lists they return are gathered to the host.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from dmlax.metrics.tiles import Beat, block_sizes, blocked_topk, prepare

# Index of a missing neighbour (a shard with fewer than k candidates): after every real one.
_MISSING = np.iinfo(np.int32).max


def check_mesh(mesh, axis_name) -> int:
  """The size of `axis_name` in `mesh`."""
  if not isinstance(mesh, Mesh):
    raise ValueError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
  if axis_name not in mesh.axis_names:
    raise ValueError(f"axis_name {axis_name!r} is not an axis of the mesh {mesh.axis_names}")
  return int(mesh.shape[axis_name])


def merge_topk(v1, i1, v2, i2, k):
  """The k best of two (rows, *) lists by (value descending, index ascending)."""
  v = jnp.concatenate([v1, v2], axis=1)
  i = jnp.concatenate([i1, i2], axis=1)
  neg, idx = jax.lax.sort((-v, i), dimension=1, num_keys=2)
  return -neg[:, :k], idx[:, :k]


def _place(x, mesh, axis_name, rows_per_shard, fill=0):
  x = np.asarray(x)
  total = rows_per_shard * int(mesh.shape[axis_name])
  pad = [(0, total - x.shape[0])] + [(0, 0)] * (x.ndim - 1)
  return jax.device_put(np.pad(x, pad, constant_values=fill), NamedSharding(mesh, P(axis_name)))


@functools.partial(jax.jit, static_argnames=("mesh", "axis_name", "k", "width", "metric",
                                             "exclude_self", "num_refs", "mode"))
def _ring(q, qid, qlab, r, rlab, *, mesh, axis_name, k, width, metric, exclude_self, num_refs,
          mode):
  """mode "topk": the k nearest references; "positives": the `width` nearest of the query's
  label, then the other-label references ranked before each of them (both over all shards)."""
  shards = int(mesh.shape[axis_name])
  perm = [(j, (j + 1) % shards) for j in range(shards)]

  def local(q, qid, qlab, r, rlab):
    m = r.shape[0]
    offset = jax.lax.axis_index(axis_name) * m
    valid = jnp.clip(num_refs - offset, 0, m)
    q = prepare(q, metric)
    r = prepare(r, metric)
    bq, br = block_sizes(q.shape[0], m, max(k, width), None)

    def search(q, rel, qlab, same_label, kk):
      v, i, _ = blocked_topk(q, r, rel, None, same_label, valid, k=kk, metric=metric,
                             exclude_self=exclude_self, block_size=bq, ref_block=br)
      return v, jnp.where(jnp.isfinite(v), i + offset, _MISSING)

    def ring(step, state, q, qid, qlab):
      def body(_, carry):
        q, qid, qlab, state = carry
        # Query ids relative to this shard: a query is excluded only on its own shard.
        rel = jnp.where(qid >= 0, qid - offset, -1)
        state = step(q, rel, qlab, state)
        return jax.lax.ppermute((q, qid, qlab, state), axis_name, perm)
      return jax.lax.fori_loop(0, shards, body, (q, qid, qlab, state))[3]

    nq = q.shape[0]
    if mode == "topk":
      init = (jnp.full((nq, k), -jnp.inf, jnp.float32), jnp.full((nq, k), _MISSING, jnp.int32))

      def step(q, rel, qlab, state):
        v, i = search(q, rel, qlab, None, k)
        return merge_topk(*state, v, i, k)
      return ring(step, init, q, qid, qlab)
    init = (jnp.full((nq, width), -jnp.inf, jnp.float32),
            jnp.full((nq, width), _MISSING, jnp.int32))

    def best_step(q, rel, qlab, state):
      v, i = search(q, rel, qlab, (qlab, rlab), width)
      return merge_topk(*state, v, i, width)
    best, best_index = ring(best_step, init, q, qid, qlab)
    bq_count = max(1, min(nq, bq // width))

    def count_step(q, rel, qlab, state):
      thr, thr_idx, counts = state
      _, _, before = blocked_topk(
          q, r, rel, Beat(thr, thr_idx - offset, qlab, rlab), None, valid, k=0,
          metric=metric, exclude_self=exclude_self, block_size=bq_count, ref_block=br)
      return thr, thr_idx, counts + before
    state = (best, best_index, jnp.zeros((nq, width), jnp.int32))
    _, _, counts = ring(count_step, state, q, qid, qlab)
    return counts, best_index

  spec = P(axis_name)
  return jax.shard_map(local, mesh=mesh, in_specs=(spec,) * 5, out_specs=(spec, spec),
                       check_vma=False)(
      q, qid, qlab, r, rlab)


def sharded_search(queries, query_ids, query_labels, references, reference_labels, *, k=0,
                   width=0, metric, exclude_self, mesh, axis_name, mode="topk"):
  """`_ring` on host arrays: queries (Nq, D) with their reference ids (for `exclude_self`) and
  labels, references (Nr, D) with labels. Returns host arrays: "topk" `(values, indices)`
  (Nq, k); "positives" `(counts, positive indices)` (Nq, width)."""
  shards = check_mesh(mesh, axis_name)
  nq, nr = len(queries), len(references)
  mq, m = -(-nq // shards), -(-nr // shards)
  args = (_place(np.asarray(queries, np.float32), mesh, axis_name, mq),
          _place(np.asarray(query_ids, np.int32), mesh, axis_name, mq, -1),
          _place(np.asarray(query_labels, np.int32), mesh, axis_name, mq, -1),
          _place(np.asarray(references, np.float32), mesh, axis_name, m),
          _place(np.asarray(reference_labels, np.int32), mesh, axis_name, m, -2))
  out = _ring(*args, mesh=mesh, axis_name=axis_name, k=k, width=width, metric=metric,
              exclude_self=exclude_self, num_refs=nr, mode=mode)
  return tuple(np.asarray(a)[:nq] for a in out)
