"""Argument checks, dtype rule and reductions shared by `dmlax.losses` and `dmlax.metrics`.

Shapes and dtypes are static under `jax.jit`, so these checks raise a `ValueError` at trace time
naming the offending argument. Label *values* are data: they are checked eagerly when concrete,
and under tracing `label_guard` returns a mask with which a loss turns out-of-range rows into NaN,
value and gradient alike (`nan_where_invalid`), rather than silently gathering a clamped (wrong)
class. Continuous hyperparameters (margins, scales, temperatures) may be traced scalars: their
ranges are checked only when they are concrete (`check_scalar`).

One dtype rule (`compute_dtype`): computations run in the inputs' common floating dtype promoted
to at least float32, so float64 stays float64 and bfloat16/float16 inputs accumulate in float32.
One normalisation epsilon (`NORM_EPS`) for every ``x / max(||x||, eps)``.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

REDUCTIONS = ("mean", "sum", "none")

# x / max(||x||, NORM_EPS), like torch.nn.functional.normalize: the all-zero vector stays zero.
NORM_EPS = 1e-12


def compute_dtype(*arrays) -> jnp.dtype:
  """The dtype losses and metrics compute in: the inputs' common dtype, at least float32.

  float64 inputs (under ``jax_enable_x64``) stay float64; bfloat16 and float16 inputs give
  float32, so sums over a batch or over thousands of classes do not lose the target logit.
  """
  return jnp.promote_types(jnp.result_type(*arrays), jnp.float32)


def as_compute(*arrays) -> tuple[jax.Array, ...]:
  """`arrays` as jax arrays cast to their common `compute_dtype`."""
  dtype = compute_dtype(*arrays)
  return tuple(jnp.asarray(a).astype(dtype) for a in arrays)


def is_traced(value) -> bool:
  return isinstance(value, jax.core.Tracer)


def check_scalar(
    value,
    name: str,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    below: float | None = None,
) -> None:
  """A continuous hyperparameter: a real scalar (Python number or 0-d array, possibly traced).

  Its range is checked when it is concrete; a traced value (``jit`` argument, ``vmap`` over a
  sweep) cannot be inspected and is used as it is.
  """
  if np.ndim(value) != 0:
    raise ValueError(f"{name} must be a scalar, got shape {np.shape(value)}")
  if not jnp.issubdtype(jnp.result_type(value), jnp.number) or isinstance(value, bool):
    raise ValueError(f"{name} must be a real number, got {value!r}")
  if is_traced(value):
    return
  v = float(value)
  if positive and not v > 0:
    raise ValueError(f"{name} must be positive, got {v}")
  if nonnegative and not v >= 0:
    raise ValueError(f"{name} must be >= 0, got {v}")
  if below is not None and not v < below:
    raise ValueError(f"{name} must be < {below}, got {v}")


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


def check_nonempty(batch: int, name: str = "features") -> None:
  if batch == 0:
    raise ValueError(f"{name} is an empty batch (B = 0): at least one example is needed")


def check_features_labels(features, labels, name: str = "features") -> tuple[int, int]:
  """features (B, D) floating with B >= 1, labels (B,) integer; returns (B, D)."""
  check_floating(features, name, ndim=2)
  batch, dim = np.shape(features)
  check_labels(labels, batch)
  check_nonempty(batch, name)
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


def check_proxies(proxies, feature_dim: int, name: str = "proxies") -> int:
  """Single proxies (C, D), one row per class, D matching the features; returns C."""
  shape = np.shape(proxies)
  if len(shape) != 2:
    raise ValueError(
        f"{name} must have shape (C, D) (one proxy per class), got shape {tuple(shape)}")
  check_floating(proxies, name)
  num_classes, dim = shape
  if dim != feature_dim:
    raise ValueError(
        f"{name} must have shape (C, {feature_dim}) to match the feature dimension, "
        f"got {tuple(shape)}")
  if num_classes < 1:
    raise ValueError(f"{name} must have at least one class, got shape {tuple(shape)}")
  return num_classes


def check_multi_proxies(proxies, feature_dim: int | None = None, name: str = "proxies") -> tuple:
  """Multi-proxies (C, K, D), floating, K >= 1, D matching the features; returns (C, K, D)."""
  shape = np.shape(proxies)
  if len(shape) != 3:
    raise ValueError(
        f"{name} must have shape (C, K, D) (classes, proxies per class, feature dim), "
        f"got shape {tuple(shape)}")
  check_floating(proxies, name)
  num_classes, k, dim = shape
  if num_classes < 1:
    raise ValueError(f"{name} must have at least one class, got shape {tuple(shape)}")
  if k < 1:
    raise ValueError(f"{name} must have K >= 1 proxies per class, got K = {k}")
  if feature_dim is not None and dim != feature_dim:
    raise ValueError(
        f"{name} must have shape (C, K, {feature_dim}) to match the feature dimension, "
        f"got {tuple(shape)}")
  return shape


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
  inspected, so the caller passes the mask to `nan_where_invalid`.
  """
  if not isinstance(labels, jax.core.Tracer):
    values = np.asarray(labels)
    bad = values[(values < 0) | (values >= num_classes)]
    if bad.size:
      raise ValueError(
          f"labels must lie in [0, {num_classes}); found {np.unique(bad)[:10].tolist()}")
  return (labels >= 0) & (labels < num_classes)


def class_mask(labels: jax.Array, num_classes: int) -> jax.Array:
  """(B, C) boolean one-hot of integer labels (all False for an out-of-range label).

  A mask rather than a label gather: its gradient is elementwise, where a gather's is a
  scatter-add.
  """
  return jnp.asarray(labels)[:, None] == jnp.arange(num_classes)[None, :]


def nan_where_invalid(values: jax.Array, valid: jax.Array) -> jax.Array:
  """`values` where `valid`, NaN elsewhere, in the value AND in every gradient through it.

  ``jnp.where(valid, v, nan)`` would give a NaN value but a zero (finite, wrong) cotangent, so
  ``optax.apply_if_finite`` would keep the step. Multiplying by ``where(valid, 1, nan)`` sends a
  NaN cotangent into the invalid rows' inputs instead (``nan * 0`` is NaN).
  `valid` broadcasts against `values` (a scalar for batch-coupled losses).
  """
  values = jnp.asarray(values)
  return values * jnp.where(valid, 1.0, jnp.nan).astype(values.dtype)
