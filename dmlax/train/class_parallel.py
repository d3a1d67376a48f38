"""Class parallelism: the classifier/proxies split over the "model" axis of a (data, model) mesh.

`config.mesh = (data, model)` lays the devices out as a 2-D `Mesh` with axes ("batch", "model")
(`make_mesh`). The batch is split over "batch" as on the 1-D mesh; with model > 1, every array of
the loss that holds one slice per class (`Objective.class_axes`: the classifier (D, C) on axis 1,
proxies (C, D) / (C, K, D) and biases (C,) on axis 0, ...) is split into `model` contiguous
blocks of C / model classes over "model" (device k of the axis holds classes
[k C/model, (k + 1) C/model), the layout of `dmlax.losses.class_sharding`), and so is its
optimiser state (`state_specs`: optax's state mirrors the parameters, `optax.tree_map_params`).
The backbone, its BatchNorm statistics and the optimiser's counters stay replicated. The loss
receives `class_axis_name="model"` and returns the full-class value; no device ever holds the
full classifier, nor a (B, C) array of the full C (`sharded_state` initialises the arrays
directly in their shards, `top1_predictions` evaluates block by block).

The per-device step is `dmlax.train.step.train_step` with `class_axis_name="model"`, driven by
`dmlax.train.step.ShardMapDriver` on the 2-D mesh; tests/train/test_class_parallel.py checks that
2 x 4 and 4 x 2 meshes of 8 devices train to the one-device result.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from dmlax.losses import class_sharding
from dmlax.train import run_config
from dmlax.train.state import TrainState

DATA_AXIS = "batch"   # the step's batch axis (`dmlax.train.step.AXIS`)
MODEL_AXIS = "model"


def mesh_shape(config: ml_collections.ConfigDict, num_devices: int | None = None
               ) -> tuple[int, int]:
  """(data, model) of `config.mesh`, data = -1 resolved to the devices left over.

  Raises:
    ValueError: not two integers, a size below 1 (data may be -1), a product other than the
      device count, or model > 1 on a driver other than "shard_map".
  """
  num_devices = jax.device_count() if num_devices is None else num_devices
  value = config.get("mesh", None)
  value = tuple(run_config.FIELD_DEFAULTS["mesh"]) if value is None else value
  if (not isinstance(value, (tuple, list)) or len(value) != 2 or
      not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)):
    raise ValueError(f"config.mesh must be two integers (data, model), got {value!r}")
  data, model = (int(v) for v in value)
  if model < 1 or (data < 1 and data != -1):
    raise ValueError(f"config.mesh=({data}, {model}): model must be >= 1 and data >= 1 (or -1: "
                     "all the devices the model axis leaves)")
  if data == -1:
    if num_devices % model:
      raise ValueError(f"config.mesh=(-1, {model}): {num_devices} devices do not split into "
                       f"model axes of {model}")
    data = num_devices // model
  if data * model != num_devices:
    raise ValueError(f"config.mesh=({data}, {model}) holds {data * model} devices; the run has "
                     f"{num_devices} (jax.device_count()): data x model must equal it")
  if model > 1 and config.parallel != "shard_map":
    raise ValueError(f"config.mesh=({data}, {model}) splits the classes over a model axis, which "
                     f"only the shard_map driver runs; set config.parallel='shard_map' (got "
                     f"{config.parallel!r})")
  return data, model


def make_mesh(data: int, model: int, devices=None) -> Mesh:
  """The (data, model) `Mesh` with axes ("batch", "model") of `devices` (default: all)."""
  devices = np.asarray(jax.devices() if devices is None else devices)
  return Mesh(devices.reshape(data, model), (DATA_AXIS, MODEL_AXIS))


def _ndim(x) -> int:
  return len(getattr(x, "shape", np.shape(x)))


def _class_spec(ndim: int, axis: int | None) -> P:
  if axis is None:
    return P()
  axes = [None] * ndim
  axes[axis] = MODEL_AXIS
  return P(*axes)


def param_specs(params: dict, class_axes: dict[str, int]) -> dict:
  """`PartitionSpec`s of `{"model": ..., "loss": ...}` params: the arrays of `params["loss"]`
  named in `class_axes` split over "model" along their class axis, all else replicated."""
  loss = {k: _class_spec(_ndim(v), class_axes.get(k)) for k, v in params["loss"].items()}
  return {"model": jax.tree.map(lambda _: P(), params["model"]), "loss": loss}


def state_specs(state: TrainState, class_axes: dict[str, int]) -> TrainState:
  """The train state with a `PartitionSpec` in place of every array (a prefix tree for
  `shard_map`/`NamedSharding`). The optimiser state's copies of the parameter tree (momentum,
  Adam's moments) get the parameters' specs, its other leaves (counts) are replicated."""
  specs = param_specs(state.params, class_axes)
  masked = lambda x: isinstance(x, optax.MaskedNode)  # noqa: E731
  opt_specs = optax.tree_map_params(
      state.tx, lambda value, spec: value if masked(value) else spec, state.opt_state, specs,
      transform_non_params=lambda tree: jax.tree.map(lambda _: P(), tree),
      is_leaf=lambda x: masked(x) or isinstance(x, P))
  replicated = lambda tree: jax.tree.map(lambda _: P(), tree)  # noqa: E731
  return state.replace(step=P(), params=specs, opt_state=opt_specs,
                       batch_stats=replicated(state.batch_stats),
                       memory=None if state.memory is None else replicated(state.memory))


def shardings(mesh: Mesh, specs: Any) -> Any:
  """`NamedSharding`s on `mesh` of a tree of `PartitionSpec`s."""
  return jax.tree.map(lambda s: NamedSharding(mesh, s), specs,
                      is_leaf=lambda x: isinstance(x, P))


def is_sharded(x) -> bool:
  """A `jax.Array` that is not fully replicated (kept as such on the host side of the loop)."""
  return isinstance(x, jax.Array) and not x.sharding.is_fully_replicated


def sharded_state(make_state: Callable[..., TrainState], args: tuple, *, mesh: Mesh,
                  class_axes: dict[str, int]) -> TrainState:
  """`make_state(*args)` (which builds the train state, e.g. initialises the classifier) under
  `jit` with its outputs in their shards: each device computes only its block. Random draws are
  partitionable (`jax_threefry_partitionable`), so the values equal the unsharded ones, up to the
  rounding (1 ulp) of an initialiser's normalisation."""
  abstract = jax.eval_shape(make_state, *args)
  out = shardings(mesh, state_specs(abstract, class_axes))
  return jax.jit(make_state, out_shardings=out)(*args)


def top1_predictions(logits_fn: Callable[[jax.Array, dict], jax.Array], features: np.ndarray,
                     loss_params: dict, *, mesh: Mesh, class_axes: dict[str, int],
                     block: int = 1024) -> np.ndarray:
  """(N,) global class of each row's largest test-time logit, the classes split over "model".

  Each device scores its rows (split over "batch") against its own block of classes with
  `logits_fn(features, local params)` (N_local, C_local), takes its best class, and the shards'
  bests merge by `dmlax.losses.class_sharding.argmax` (ties to the lowest class index, as
  `jnp.argmax` and `dmlax.metrics.topk_error`). Rows go `block` at a time per data shard, so a
  device holds at most a (block, C_local) array of logits.
  """
  data = mesh.shape[DATA_AXIS]
  params_specs = {k: _class_spec(_ndim(v), class_axes.get(k)) for k, v in loss_params.items()}

  def per_device(x, params):
    best = class_sharding.argmax(logits_fn(x, params), MODEL_AXIS).astype(jnp.int32)
    return jax.lax.all_gather(best, DATA_AXIS, tiled=True)

  fn = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(P(DATA_AXIS), params_specs),
                             out_specs=P(), check_vma=False))
  placed = jax.device_put(loss_params, shardings(mesh, params_specs))
  features = np.asarray(features, np.float32)
  n = len(features)
  rows = min(block, -(-n // data)) * data  # one compiled shape for every block
  row_sharding = NamedSharding(mesh, P(DATA_AXIS))
  out = []
  for start in range(0, n, rows):
    chunk = features[start:start + rows]
    pad = rows - len(chunk)
    if pad:
      chunk = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], chunk.dtype)])
    # Every process holds all the features; each device takes its rows.
    x = jax.make_array_from_callback(chunk.shape, row_sharding, lambda index, c=chunk: c[index])
    pred = fn(x, placed)
    out.append(np.asarray(pred.addressable_data(0))[:rows - pad])
  return np.concatenate(out) if out else np.zeros((0,), np.int32)


def bytes_per_device(tree: Any) -> dict[Any, int]:
  """{device: bytes of `tree`'s `jax.Array` shards that device holds} (what a state costs each
  device before any step; XLA's peak memory of a step adds the activations and logits)."""
  out: dict[Any, int] = {}
  for leaf in jax.tree.leaves(tree):
    if isinstance(leaf, jax.Array):
      for shard in leaf.addressable_shards:
        out[shard.device] = out.get(shard.device, 0) + shard.data.nbytes
  return out
