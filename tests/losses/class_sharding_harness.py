"""Shared check for class-sharded losses: a (data x model) mesh gives the one-device result.

`assert_sharded_matches` runs a loss under ``shard_map`` on a 2-D mesh ("data", "model") of fake
CPU devices: the batch (features, labels) split over "data", each class-sharded parameter split
over "model" along its class axis, and compares the global value and the gradients with respect
to the features and every parameter against the same loss on one device. The gradient is taken
from outside the ``shard_map`` (of the global function of global arrays), so it must equal the
one-device gradient exactly, whatever collectives the loss uses inside.

A loss that does not couple the batch returns its local mean; the global mean over equal shards
is the mean of the shard means (``pmean`` over "data"). A batch-coupled loss receives
``axis_name="data"`` and returns the global value itself.
"""

from __future__ import annotations

from typing import Callable, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

DATA, MODEL = "data", "model"


def mesh(shape: tuple[int, int]) -> Mesh:
  """A ("data", "model") mesh of the first data * model devices."""
  n = shape[0] * shape[1]
  return Mesh(np.array(jax.devices()[:n]).reshape(shape), (DATA, MODEL))


def _spec(ndim: int, class_axis: int | None) -> P:
  if class_axis is None:
    return P()
  axes = [None] * ndim
  axes[class_axis] = MODEL
  return P(*axes)


def sharded_loss(loss: Callable, params: Sequence[jax.Array], class_axes: Sequence[int | None],
                 mesh_shape: tuple[int, int], batch_coupled: bool) -> Callable:
  """``f(features, labels, *params)`` -> the global loss computed on the sharded mesh.

  `loss(features, labels, *params, axis_name=..., class_axis_name=...)` returns a scalar.
  """
  m = mesh(mesh_shape)

  def per_device(x, y, *p):
    if batch_coupled:
      return loss(x, y, *p, axis_name=DATA, class_axis_name=MODEL)
    return jax.lax.pmean(loss(x, y, *p, axis_name=None, class_axis_name=MODEL), DATA)

  in_specs = (P(DATA), P(DATA)) + tuple(_spec(a.ndim, c) for a, c in zip(params, class_axes))
  return jax.shard_map(per_device, mesh=m, in_specs=in_specs, out_specs=P())


def assert_sharded_matches(
    loss: Callable,
    features: jax.Array,
    labels: jax.Array,
    params: Sequence[jax.Array],
    class_axes: Sequence[int | None],
    *,
    mesh_shape: tuple[int, int] = (1, 4),
    batch_coupled: bool = False,
    rtol: float = 1e-5,
    grad_rtol: float = 1e-4,
    grad_atol: float = 1e-6,
) -> None:
  """Value and gradients (features and every param) on the mesh equal one device's.

  Args:
    loss: ``loss(features, labels, *params, axis_name=, class_axis_name=)`` -> scalar.
    features, labels: the global batch (its size divisible by the data axis).
    params: the full (global) parameter arrays.
    class_axes: per param, the axis that holds its classes (sharded over "model"), or None for
      a parameter every device holds whole.
    mesh_shape: (data, model) sizes.
    batch_coupled: pass ``axis_name="data"`` (the loss reduces over the global batch itself).
  """
  argnums = (0,) + tuple(range(2, 2 + len(params)))  # features and every param, not labels
  single = lambda x, y, *p: loss(x, y, *p, axis_name=None, class_axis_name=None)  # noqa: E731
  want = jax.jit(jax.value_and_grad(single, argnums=argnums))(features, labels, *params)
  sharded = sharded_loss(loss, params, class_axes, mesh_shape, batch_coupled)
  got = jax.jit(jax.value_and_grad(sharded, argnums=argnums))(features, labels, *params)
  chex.assert_trees_all_close(got[0], want[0], rtol=rtol)
  chex.assert_trees_all_close(got[1], want[1], rtol=grad_rtol, atol=grad_atol)


def assert_bad_label_is_nan(
    loss: Callable,
    features: jax.Array,
    labels: jax.Array,
    params: Sequence[jax.Array],
    class_axes: Sequence[int | None],
    *,
    num_classes: int,
    mesh_shape: tuple[int, int] = (1, 4),
    batch_coupled: bool = False,
) -> None:
  """A traced global label past the last class makes the sharded value and gradient NaN."""
  bad = jnp.asarray(labels).at[0].set(num_classes)
  sharded = sharded_loss(loss, params, class_axes, mesh_shape, batch_coupled)
  value, grad = jax.jit(jax.value_and_grad(sharded))(features, bad, *params)
  assert np.isnan(np.asarray(value)), "value is not NaN for an out-of-range label"
  assert np.isnan(np.asarray(grad)).any(), "features' gradient has no NaN for a bad label"
