"""The training step, written once per device against the axis name "batch", and its drivers.

`train_step` is what one device does with its share of the global batch. With
`axis_name="batch"`, gradients are averaged over devices (`lax.pmean`), BatchNorm statistics are
cross-replica (the model was built with `bn_axis_name="batch"`), and batch-coupled losses see the
global batch (see `dmlax.train.objectives`). With `axis_name=None` the same function is the
single-device step on the whole batch. Three drivers run it:

  * `PmapDriver`: `jax.pmap` over the local devices (the classic data-parallel loop);
  * `ShardMapDriver`: `jax.shard_map` over a 1-D `Mesh` of all devices (pmap is in maintenance
    mode in current JAX; this is the same per-device program under `jit`), or over a 2-D
    (data, model) mesh whose "model" axis splits the loss's classes (`class_axis_name="model"`,
    `dmlax.train.class_parallel`);
  * `SingleDeviceDriver`: `jax.jit` on one device, `axis_name=None`.

All of them give the single-device result on the global batch (tests/train/test_multidevice.py,
tests/train/test_class_parallel.py). `shard_map` runs with `check_vma=False`, so that
`psum`/`all_gather` transpose exactly as under `pmap` and the per-device code is literally the
same.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from dmlax import losses
from dmlax.train import class_parallel
from dmlax.train.objectives import Objective
from dmlax.train.state import TrainState

AXIS = "batch"
DRIVERS = ("pmap", "shard_map", "single")


def train_step(
    state: TrainState,
    batch: dict,
    *,
    model: nn.Module,
    objective: Objective,
    rng: jax.Array,
    axis_name: str | None = None,
    frozen_bn: bool = False,
    class_axis_name: str | None = None,
    class_axes: Sequence[str] = (),
) -> tuple[TrainState, dict]:
  """One optimiser step on this device's share of the batch.

  loss = objective(model(images), labels); grads = pmean over `axis_name` of d loss / d params;
  params <- tx(grads). With a cross-batch memory in the state (`config.loss.memory_size`), the
  global batch is enqueued first (`dmlax.losses.xbm_update`) and the loss compares this device's
  anchors with the whole memory (`xbm_references`), as pml's `CrossBatchMemory`. The step key
  is `fold_in(rng, step)`, split into the loss's key (the same on every device: random grouping
  must agree) and the dropout key (folded with the device index). A non-finite loss or gradient norm leaves the state unchanged and sets
  `metrics["finite"]` to False, so the caller can stop with the last good state.

  Class parallelism (`class_axis_name`, a 2-D (data, model) mesh): `params["loss"][name]` for the
  names in `class_axes` is this device's block of classes, the rest of the state is replicated.
  Every device computes the same global loss L; with the transposes of `pmap` (`check_vma=False`)
  a replicated leaf's gradient summed over all D x M devices is D M dL/dtheta, and a class block's
  gradient on each device is M dL/dW_block after the mean over the data axis (its M model
  neighbours each add the same share). So replicated leaves are averaged over both axes and the
  blocks over the data axis and divided by M; the gradient norm adds the blocks' squares over the
  model axis.

  Args:
    state: the replicated train state.
    batch: {"image": (b, H, W, C) float32, "label": (b,) int32}, this device's share.
    model: the backbone+head, built with `bn_axis_name=axis_name`.
    objective: from `dmlax.train.objectives.build_objective`.
    rng: base PRNG key of the run.
    axis_name: "batch" inside pmap/shard_map, None on one device.
    frozen_bn: run the model in inference mode (running BatchNorm statistics, not updated).
    class_axis_name: the mesh axis that splits the loss's classes ("model"), or None.
    class_axes: the names of `params["loss"]` split over `class_axis_name`
      (`Objective.class_axes`).

  Returns:
    The new state and scalar metrics (loss, grad_norm, finite, the objective's aux), identical on
    every device.
  """
  key = jax.random.fold_in(rng, state.step)
  dropout_key, loss_key = jax.random.split(key)
  if axis_name is not None:
    dropout_key = jax.random.fold_in(dropout_key, jax.lax.axis_index(axis_name))
  has_stats = bool(jax.tree.leaves(state.batch_stats))

  def loss_fn(params):
    variables = {"params": params["model"]}
    if has_stats:
      variables["batch_stats"] = state.batch_stats
    rngs = {"dropout": dropout_key}
    if has_stats and not frozen_bn:
      features, updates = model.apply(variables, batch["image"], train=True,
                                      mutable=["batch_stats"], rngs=rngs)
      new_stats = updates["batch_stats"]
    else:
      features = model.apply(variables, batch["image"], train=not frozen_bn, rngs=rngs)
      new_stats = state.batch_stats
    features = features.astype(jnp.float32)
    memory, references = state.memory, None
    if memory is not None:
      # Cross-batch memory: enqueue the global batch, then its anchors meet the whole memory.
      memory = losses.xbm_update(memory, features, batch["label"], axis_name=axis_name)
      references = losses.xbm_references(memory, features.shape[0], axis_name=axis_name)
    extra = {} if class_axis_name is None else {"class_axis_name": class_axis_name}
    loss, aux = objective.apply(features, batch["label"], params["loss"], step=state.step,
                                rng=loss_key, axis_name=axis_name, references=references,
                                **extra)
    return loss, (aux, new_stats, memory)

  (loss, (aux, new_stats, memory)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params)
  metrics = {"loss": loss, **aux}
  if axis_name is not None:
    grads = jax.lax.pmean(grads, axis_name)
    metrics = jax.lax.pmean(metrics, axis_name)
  if class_axis_name is None:
    grad_norm = optax.tree.norm(grads)
  else:
    grads, grad_norm = _class_parallel_grads(grads, class_axis_name, class_axes)
  finite = jnp.isfinite(metrics["loss"]) & jnp.isfinite(grad_norm)
  new_state = state.apply_gradients(grads=grads, batch_stats=new_stats, memory=memory)
  new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, state)
  metrics.update(grad_norm=grad_norm, finite=finite)
  return new_state, metrics


def _class_parallel_grads(grads, class_axis_name: str, class_axes: Sequence[str]):
  """(grads, global norm) of a class-parallel step (see `train_step`)."""
  m = jax.lax.psum(1, class_axis_name)
  blocks = {k: v / m for k, v in grads["loss"].items() if k in class_axes}
  rest = jax.lax.pmean({"model": grads["model"],
                        "loss": {k: v for k, v in grads["loss"].items() if k not in class_axes}},
                       class_axis_name)
  sq = optax.tree.norm(rest, squared=True) + jax.lax.psum(
      optax.tree.norm(blocks, squared=True), class_axis_name)
  loss = {k: blocks[k] if k in blocks else rest["loss"][k] for k in grads["loss"]}
  return {**grads, "model": rest["model"], "loss": loss}, jnp.sqrt(sq)


def _donate() -> tuple[int, ...]:
  # CPU cannot reuse donated buffers and warns on every call.
  return () if jax.default_backend() == "cpu" else (0,)


class SingleDeviceDriver:
  """`jax.jit` of the step on one device with the whole batch (`axis_name=None`)."""
  name = "single"

  def __init__(self, make_model: Callable[[str | None], nn.Module], objective: Objective, *,
               rng: jax.Array, frozen_bn: bool = False, mesh: Mesh | None = None):
    del mesh
    self.num_devices = 1
    step = functools.partial(train_step, model=make_model(None), objective=objective, rng=rng,
                             axis_name=None, frozen_bn=frozen_bn)
    self._step = jax.jit(step, donate_argnums=_donate())

  def put_state(self, state):
    return jax.device_put(state, jax.local_devices()[0])

  def get_state(self, device_state):
    return jax.device_get(device_state)

  def put_batch(self, batch: dict):
    return batch

  def step(self, device_state, device_batch):
    return self._step(device_state, device_batch)


class PmapDriver:
  """`jax.pmap` of the per-device step over this process's devices.

  The state lives replicated (leading device axis); the process's batch is split into equal
  consecutive shares, one per local device.
  """
  name = "pmap"

  def __init__(self, make_model, objective: Objective, *, rng: jax.Array, frozen_bn: bool = False,
               mesh: Mesh | None = None):
    del mesh
    self.devices = jax.local_devices()
    self.num_devices = len(self.devices)
    step = functools.partial(train_step, model=make_model(AXIS), objective=objective, rng=rng,
                             axis_name=AXIS, frozen_bn=frozen_bn)
    # The mapped axis spans every process's devices (jax.devices(), the same list on every
    # process), so that pmean averages over the global batch; each process feeds its own.
    self._step = jax.pmap(step, axis_name=AXIS, devices=jax.devices(),
                          donate_argnums=_donate())

  def put_state(self, state):
    return flax.jax_utils.replicate(state, self.devices)

  def get_state(self, device_state):
    return jax.device_get(flax.jax_utils.unreplicate(device_state))

  def put_batch(self, batch: dict):
    n = self.num_devices
    return jax.tree.map(lambda x: np.reshape(x, (n, x.shape[0] // n) + x.shape[1:]), batch)

  def step(self, device_state, device_batch):
    state, metrics = self._step(device_state, device_batch)
    return state, jax.tree.map(lambda m: m[0], metrics)


class ShardMapDriver:
  """`jax.shard_map` of the same per-device step over a `Mesh`, under `jit`.

  On a 1-D mesh of all devices (axis "batch", the default) the state is replicated (`P()`) and
  the global batch split along "batch" (`P("batch")`); each process contributes its own rows
  (`jax.make_array_from_process_local_data`). On a 2-D mesh ("batch", "model")
  (`dmlax.train.class_parallel.make_mesh`) with a "model" axis of size M > 1, the batch is split
  over "batch" (replicated over "model") and the loss's class arrays (`objective.class_axes`) and
  their optimiser state are split into M blocks of classes over "model"
  (`class_parallel.state_specs`); the step runs with `class_axis_name="model"`.

  `put_state` places a state (host arrays, or arrays already in their shards) on the mesh;
  `get_state` returns replicated arrays as host NumPy and class-split arrays as global
  `jax.Array`s (a copy where the step donates its input), so no host or device gathers the
  whole classifier.
  """
  name = "shard_map"

  def __init__(self, make_model, objective: Objective, *, rng: jax.Array, frozen_bn: bool = False,
               mesh: Mesh | None = None):
    self.mesh = mesh if mesh is not None else Mesh(np.asarray(jax.devices()), (AXIS,))
    self.num_devices = self.mesh.size
    model = dict(self.mesh.shape).get(class_parallel.MODEL_AXIS, 1)
    self.class_axis_name = class_parallel.MODEL_AXIS if model > 1 else None
    self.class_axes = dict(objective.class_axes) if self.class_axis_name else {}
    self._sharded = NamedSharding(self.mesh, P(AXIS))
    self._per_device = functools.partial(
        train_step, model=make_model(AXIS), objective=objective, rng=rng, axis_name=AXIS,
        frozen_bn=frozen_bn, class_axis_name=self.class_axis_name,
        class_axes=tuple(self.class_axes))
    self._step = self._state_shardings = None

  def _build(self, state) -> None:
    """The jitted step for `state`'s tree (its specs follow the parameters and optimiser)."""
    specs = (class_parallel.state_specs(state, self.class_axes) if self.class_axis_name
             else P())
    mapped = jax.shard_map(self._per_device, mesh=self.mesh, in_specs=(specs, P(AXIS)),
                           out_specs=(specs, P()), check_vma=False)
    self._state_shardings = class_parallel.shardings(self.mesh, specs)
    self._step = jax.jit(mapped, donate_argnums=_donate())

  def put_state(self, state):
    if self._step is None:
      self._build(state)
    return jax.device_put(state, self._state_shardings)

  def get_state(self, device_state):
    copy = bool(_donate())  # the next step would delete the buffers the caller holds

    def host(x):
      if class_parallel.is_sharded(x):
        return jnp.copy(x) if copy else x
      return np.asarray(x.addressable_data(0))

    return jax.tree.map(host, device_state)

  def put_batch(self, batch: dict):
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(self._sharded, np.asarray(x)), batch)

  def step(self, device_state, device_batch):
    return self._step(device_state, device_batch)


def make_driver(name: str, make_model, objective: Objective, *, rng: jax.Array,
                frozen_bn: bool = False, mesh: Mesh | None = None) -> Any:
  """The driver `name` ("pmap", "shard_map" or "single"; `config.parallel`).

  `make_model(bn_axis_name)` builds the model for the driver's axis name; `mesh` (default: all
  devices along "batch"; a 2-D ("batch", "model") mesh splits the classes) is the shard_map
  driver's.
  """
  drivers = {"pmap": PmapDriver, "shard_map": ShardMapDriver, "single": SingleDeviceDriver}
  if name not in drivers:
    raise ValueError(f"config.parallel must be one of {DRIVERS}, got {name!r}")
  return drivers[name](make_model, objective, rng=rng, frozen_bn=frozen_bn, mesh=mesh)
