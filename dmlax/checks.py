"""Argument checks and reductions shared by `dmlax.losses` and `dmlax.metrics`.

Shapes and dtypes are static under `jax.jit`, so these checks raise a `ValueError` at trace time
naming the offending argument. Label *values* are data: they are checked eagerly when concrete,
and under tracing `label_guard` returns a mask with which a loss turns out-of-range rows into NaN
rather than silently gathering a clamped (wrong) class.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str) -> None:
  if reduction not in REDUCTIONS:
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def reduce_loss(per_example: jax.Array, reduction: str, axis_name: str | None = None) -> jax.Array:
  """Applies `reduction` to per-example values of shape (B,).

  With `axis_name`, "mean" and "sum" are over the global batch (all devices on that axis);
  "none" stays per device.
  """
  check_reduction(reduction)
  if reduction == "none":
    return per_example
  total = jnp.sum(per_example)
  count = jnp.asarray(per_example.shape[0], per_example.dtype)
  if axis_name is not None:
    total = jax.lax.psum(total, axis_name)
    count = jax.lax.psum(count, axis_name)
  return total if reduction == "sum" else total / count


def check_floating(x, name: str, ndim: int | None = None) -> None:
  shape = np.shape(x)
  if ndim is not None and len(shape) != ndim:
    raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(shape)}")
  dtype = jnp.result_type(x)
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f"{name} must be a floating-point array, got dtype {dtype}")


def check_labels(labels, batch_size: int, name: str = "labels") -> None:
  """Labels: integer array of shape (batch_size,)."""
  shape = np.shape(labels)
  if len(shape) != 1:
    raise ValueError(f"{name} must be 1-D of shape ({batch_size},), got shape {tuple(shape)}")
  if shape[0] != batch_size:
    raise ValueError(
        f"{name} has {shape[0]} entries but the features have batch size {batch_size}")
  dtype = jnp.result_type(labels)
  if not jnp.issubdtype(dtype, jnp.integer):
    raise ValueError(f"{name} must be integer class indices, got dtype {dtype}")


def check_features_labels(features, labels, name: str = "features") -> tuple[int, int]:
  """features (B, D) floating, labels (B,) integer; returns (B, D)."""
  check_floating(features, name, ndim=2)
  batch, dim = np.shape(features)
  check_labels(labels, batch)
  return batch, dim


def check_classifier(weights, feature_dim: int, name: str = "weights") -> int:
  """Classifier weights (D, C), one column per class; returns C."""
  check_floating(weights, name, ndim=2)
  rows, num_classes = np.shape(weights)
  if rows != feature_dim:
    raise ValueError(
        f"{name} must have shape (D, C) = ({feature_dim}, C) to match the features, "
        f"got {tuple(np.shape(weights))}")
  if num_classes < 2:
    raise ValueError(f"{name} must have at least 2 classes (columns), got {num_classes}")
  return num_classes


def check_bias(bias, num_classes: int, name: str = "bias") -> None:
  if bias is None:
    return
  check_floating(bias, name, ndim=1)
  if np.shape(bias)[0] != num_classes:
    raise ValueError(f"{name} must have shape ({num_classes},), got {tuple(np.shape(bias))}")


def check_in(value, allowed: Sequence, name: str) -> None:
  if value not in allowed:
    raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")


def label_guard(labels, num_classes: int) -> jax.Array:
  """Boolean mask of labels inside [0, num_classes).

  Concrete labels outside the range raise a `ValueError` listing them. Traced labels cannot be
  inspected, so the caller multiplies NaN into the rows where the mask is False.
  """
  if not isinstance(labels, jax.core.Tracer):
    values = np.asarray(labels)
    bad = values[(values < 0) | (values >= num_classes)]
    if bad.size:
      raise ValueError(
          f"labels must lie in [0, {num_classes}); found {np.unique(bad)[:10].tolist()}")
  return (labels >= 0) & (labels < num_classes)


def nan_where_invalid(per_example: jax.Array, valid: jax.Array) -> jax.Array:
  return jnp.where(valid, per_example, jnp.nan)
