"""One training step with the classes sharded over 8 devices: per-device memory and time.

A step is a linear embedding layer (D, D) on a fixed (B, D) batch, the loss, its gradient, and
an optax update of the layer and of the classifier (softmax CE, W-Softmax: (D, C) weights) or
the proxies (MPA: (C, K, D)). The single-device step (``class_axis_name=None``, one device)
is compared with the class-sharded one: `jax.shard_map` over a 1-D mesh axis "model" of
`--devices` devices, each holding its contiguous block of C / devices classes and their
optimiser state, the loss called with ``class_axis_name="model"`` (see
`dmlax.losses.class_sharding`); the batch and the layer are replicated.

Memory is XLA's figure for the compiled step (`Compiled.memory_analysis()`; per device for the
sharded program): arguments, outputs (the parameters and optimiser state are donated, so
those outputs alias their arguments), temporaries, their sum less the aliased bytes as the peak
(XLA CPU's own ``peak_memory_in_bytes`` counts the arguments only), and the classifier +
optimiser-state share (the arguments less the replicated batch, layer and layer state), against
the single-device figure and its ideal 1/devices. A size is executed (timed, and its loss
compared between the two layouts) only where the state of both layouts plus the larger step's
other buffers (XLA's figures) fit in `--memory_gib` (default: half the machine's available
memory, which others share) and, with `--run_classes`, it is one of those listed; when only
one layout at a time fits, the two are timed one after the other (not interleaved; the time
table says so); otherwise the size is compiled only and the output says so.

Times are medians of `--rounds` rounds, the candidates interleaved in the same process
(`experiments/timing.py`): the sharded step against the single-device step, and, for the
single-device path, each dmlax loss (``class_axis_name=None``, forward and backward with respect
to features and classifier) against a straightforward reference of the same formula
(optax's integer-label cross-entropy on the logits; W-Softmax eqs. 11-13 and MPA eqs. 1, 3,
6-7 written out), whose values must agree.

A loss whose dmlax function does not take ``class_axis_name`` has its sharded step skipped,
with the reason in the tables and the JSON (its single-device figures and reference check
still run).

    python -m experiments.bench_scale                                  # C = 10^5 and 10^6
    python -m experiments.bench_scale --classes 100000 --rounds 3 --json scale.json
    python -m experiments.bench_scale --run_classes 100000             # 10^6 compiled only

The fake devices come from ``XLA_FLAGS=--xla_force_host_platform_device_count=8``, set here
before JAX is imported when the variable does not already ask for a device count.
"""

from __future__ import annotations

import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                             + " --xla_force_host_platform_device_count=8").strip()

import dataclasses  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

from absl import flags  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import Mesh, NamedSharding, SingleDeviceSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from experiments import cli  # noqa: E402
from experiments import scale_cases  # noqa: E402
from experiments import timing  # noqa: E402
from experiments.scale_cases import AXIS  # noqa: E402

MIB = 2**20

# ------------------------------------------------------------------------------------ the step


def make_optimizer(name: str) -> optax.GradientTransformation:
  if name == "sgd":
    return optax.sgd(0.01, momentum=0.9)
  if name == "adam":
    return optax.adam(1e-3)
  raise ValueError(f"optimizer must be 'sgd' or 'adam', got {name!r}")


@dataclasses.dataclass
class Layout:
  """One way of running the step: its compiled program, its abstract arguments (each with its
  sharding) and XLA's memory figures (bytes, per device)."""
  name: str
  compiled: Any
  args: tuple
  memory: dict


def _step_fn(case, optimizer, class_axis_name):
  def step(params, opt_state, features, labels):
    def objective(p):
      return scale_cases.call(case, features @ p["embedding"], labels, p["classifier"],
                              class_axis_name)
    loss, grads = jax.value_and_grad(objective)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss
  return step


def _abstract_params(case, dim, num_classes, k):
  classifier = jax.eval_shape(lambda: case.init(0, dim, num_classes, k))
  return {"embedding": jax.ShapeDtypeStruct((dim, dim), jnp.float32), "classifier": classifier}


def _is_classifier(path) -> bool:
  """Whether a leaf of the (params, opt_state) tree is the classifier or its optimiser state
  (optax states mirror the params dict, so their paths pass through the key "classifier")."""
  return any(isinstance(p, jax.tree_util.DictKey) and p.key == "classifier" for p in path)


def step_args(case, optimizer, *, batch, dim, num_classes, k, mesh):
  """Abstract (params, opt_state, features, labels) of the step, each leaf with its sharding:
  by class over `mesh` for the classifier and its state, replicated otherwise; every leaf on
  device 0 when `mesh` is None."""
  params = _abstract_params(case, dim, num_classes, k)
  tree = (params, jax.eval_shape(optimizer.init, params),
          jax.ShapeDtypeStruct((batch, dim), jnp.float32),
          jax.ShapeDtypeStruct((batch,), jnp.int32))
  if mesh is None:
    one = SingleDeviceSharding(jax.devices()[0])
    place = lambda path, a: one  # noqa: E731
  else:
    by_class, replicated = NamedSharding(mesh, case.spec), NamedSharding(mesh, P())
    place = lambda path, a: by_class if _is_classifier(path) else replicated  # noqa: E731
  return jax.tree_util.tree_map_with_path(
      lambda path, a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=place(path, a)), tree)


def _local_bytes(args, classifier: bool) -> int:
  """Bytes one device holds of the leaves of `args` that are (or are not) the classifier's."""
  total = 0
  for path, a in jax.tree_util.tree_flatten_with_path(args)[0]:
    if _is_classifier(path) == classifier:
      total += int(np.prod(a.sharding.shard_shape(a.shape))) * a.dtype.itemsize
  return total


def compile_layout(case, optimizer, *, batch, dim, num_classes, k, mesh) -> Layout:
  """Compiles the step (single device when `mesh` is None) and reads XLA's memory figures."""
  args = step_args(case, optimizer, batch=batch, dim=dim, num_classes=num_classes, k=k,
                   mesh=mesh)
  step = _step_fn(case, optimizer, None if mesh is None else AXIS)
  if mesh is not None:
    specs = jax.tree.map(lambda a: a.sharding.spec, args)
    step = jax.shard_map(step, mesh=mesh, in_specs=specs, out_specs=(specs[0], specs[1], P()))
  compiled = jax.jit(step, donate_argnums=(0, 1)).lower(*args).compile()
  stats = compiled.memory_analysis()
  arguments = int(stats.argument_size_in_bytes)
  memory = {
      "arguments": arguments,
      "outputs": int(stats.output_size_in_bytes),
      "aliased": int(stats.alias_size_in_bytes),
      "temporaries": int(stats.temp_size_in_bytes),
      "peak": int(arguments + stats.output_size_in_bytes - stats.alias_size_in_bytes
                  + stats.temp_size_in_bytes),
      # XLA's argument bytes less the replicated rest (batch, layer and its state, counts).
      "classifier_and_state": arguments - _local_bytes(args, classifier=False),
      "classifier_and_state_from_shapes": _local_bytes(args, classifier=True),
  }
  name = "single device" if mesh is None else f"{mesh.size}-way sharded (per device)"
  return Layout(name, compiled, args, memory)


def initializer(case, optimizer, layout: Layout, *, seed: int, k: int):
  """The compiled function making concrete (params, opt_state, features, labels) laid out as
  `layout`, the same values for every layout (the classifier from an index hash, the small
  arrays from partitionable threefry keys)."""
  params_abs, _, x_abs, _ = layout.args
  dim, batch = params_abs["embedding"].shape[0], x_abs.shape[0]
  num_classes = params_abs["classifier"].shape[case.spec.index(AXIS)]

  def make():
    kx, ky, ke = jax.random.split(jax.random.PRNGKey(seed), 3)
    params = {"embedding": jax.random.normal(ke, (dim, dim), jnp.float32) / np.sqrt(dim),
              "classifier": case.init(seed, dim, num_classes, k)}
    return (params, optimizer.init(params), jax.random.normal(kx, (batch, dim), jnp.float32),
            jax.random.randint(ky, (batch,), 0, num_classes, jnp.int32))

  shardings = jax.tree.map(lambda a: a.sharding, layout.args)
  return jax.jit(make, out_shardings=shardings).lower().compile()


class Stepper:
  """A zero-argument callable running one training step of a layout, carrying its state."""

  def __init__(self, layout: Layout, inputs):
    self.compiled, self.state = layout.compiled, inputs

  def __call__(self):
    params, opt_state, x, y = self.state
    params, opt_state, loss = self.compiled(params, opt_state, x, y)
    self.state = (params, opt_state, x, y)
    return params, opt_state, loss


def available_bytes() -> int:
  """MemAvailable of /proc/meminfo (bytes)."""
  with open("/proc/meminfo") as f:
    for line in f:
      if line.startswith("MemAvailable:"):
        return int(line.split()[1]) * 1024
  raise RuntimeError("no MemAvailable in /proc/meminfo")


def _budget(memory_gib: float | None) -> int:
  return int(memory_gib * 2**30) if memory_gib is not None else int(0.5 * available_bytes())


def _not_run(need: int, budget: int) -> str:
  return (f"not run: needs about {need / 2**30:.1f} GiB, budget {budget / 2**30:.1f} GiB "
          "(memory figures from compilation only)")


def _peak_of(compiled) -> int:
  m = compiled.memory_analysis()
  return int(m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
             + m.temp_size_in_bytes)


def _rel(a, b) -> float:
  return float(abs(float(a) - float(b)) / max(abs(float(b)), 1e-30))


def _single_path_row(case, x, y, w, *, rounds, inner, memory_gib, held: int) -> dict:
  """The dmlax loss (class_axis_name=None) against the plain reference: forward and backward
  w.r.t. (features, classifier) at `w`, timed interleaved, values compared. `held`: bytes
  already in use by the caller's arrays."""
  row = {"dmlax_ms": None, "reference_ms": None, "ratio": None, "value_rel_diff": None,
         "grad_max_abs_diff": None, "note": ""}
  grad = lambda f: jax.jit(jax.value_and_grad(f, argnums=(0, 2)))  # noqa: E731
  fns = {"dmlax": grad(lambda a, b, c: scale_cases.call(case, a, b, c, None)),
         "reference": grad(case.reference)}
  compiled = {name: f.lower(x, y, w).compile() for name, f in fns.items()}
  need, budget = held + max(_peak_of(c) for c in compiled.values()), _budget(memory_gib)
  if need > budget:
    row["note"] = _not_run(need, budget)
    return row
  got, want = (timing.block(c(x, y, w)) for c in compiled.values())
  times = timing.interleaved_medians(
      {name: (lambda c=c: c(x, y, w)) for name, c in compiled.items()},
      rounds=rounds, inner=inner, warmup=1)
  row.update(
      dmlax_ms=1e3 * times["dmlax"], reference_ms=1e3 * times["reference"],
      ratio=times["dmlax"] / times["reference"], value_rel_diff=_rel(got[0], want[0]),
      grad_max_abs_diff=max(float(jnp.max(jnp.abs(a - b)))
                            for a, b in zip(jax.tree.leaves(got[1]), jax.tree.leaves(want[1]))))
  return row


def bench_size(case, optimizer, *, batch, dim, num_classes, k, mesh, rounds, inner, seed,
               memory_gib, skipped: str | None = None,
               compile_only: str | None = None) -> tuple[list[dict], dict, dict]:
  """Memory rows, the step-time row and the single-device-path row of one (loss, C). With
  `skipped` (the reason the loss cannot be sharded), only the single-device figures; with
  `compile_only` (a reason), the memory figures only."""
  kw = dict(batch=batch, dim=dim, num_classes=num_classes, k=k)
  n = mesh.size
  base = {"loss": case.name, "classes": num_classes}
  single = compile_layout(case, optimizer, mesh=None, **kw)
  mem_rows = [{**base, "layout": single.name, **single.memory, "ideal": None, "to_ideal": None,
               "peak_to_single": 1.0}]
  time_row = {**base, "single_s": None, "sharded_s": None, "ratio": None, "loss_single": None,
              "loss_rel_diff": None, "note": ""}
  if skipped is None:
    sharded = compile_layout(case, optimizer, mesh=mesh, **kw)
    ideal = single.memory["classifier_and_state"] / n
    mem_rows.append({**base, "layout": sharded.name, **sharded.memory, "ideal": ideal,
                     "to_ideal": sharded.memory["classifier_and_state"] / ideal,
                     "peak_to_single": sharded.memory["peak"] / single.memory["peak"]})
  else:
    mem_rows.append({**base, "layout": f"{n}-way sharded", "skipped": skipped})
    time_row["note"] = f"skipped: {skipped}"
  speed_row = {**base, "dmlax_ms": None, "reference_ms": None, "ratio": None,
               "value_rel_diff": None, "grad_max_abs_diff": None, "note": ""}
  if compile_only:
    time_row["note"] = time_row["note"] or compile_only
    speed_row["note"] = compile_only
    return mem_rows, time_row, speed_row
  layouts = {"single": (single, 1)}
  if skipped is None:  # the sharded one first: the single-device state is kept for the check
    layouts = {"sharded": (sharded, n), **layouts}
  inits = {name: initializer(case, optimizer, layout, seed=seed, k=k)
           for name, (layout, _) in layouts.items()}
  # Whole-process bytes of each layout: its state, and the peaks of making it and of a step.
  state = {name: c * layout.memory["arguments"] for name, (layout, c) in layouts.items()}
  make_peak = {name: c * _peak_of(inits[name]) for name, (_, c) in layouts.items()}
  step_peak = {name: c * layout.memory["peak"] for name, (layout, c) in layouts.items()}
  alone = max(max(make_peak[m], step_peak[m]) for m in layouts)
  # Together: made in order (the first's state held while the second is made), then each step
  # runs while the other layout's state is held.
  first_made = next(iter(layouts))
  together = max([make_peak[first_made]]
                 + [state[first_made] + make_peak[m] for m in layouts if m != first_made]
                 + [sum(state.values()) - state[m] + step_peak[m] for m in layouts])
  budget = _budget(memory_gib)
  if skipped is None and together <= budget:
    steppers = {name: Stepper(layout, inits[name]()) for name, (layout, _) in layouts.items()}
    first = {name: float(timing.block(s())[2]) for name, s in steppers.items()}
    times = timing.interleaved_medians(steppers, rounds=rounds, inner=inner, warmup=1)
  elif alone <= budget:
    # One layout at a time: the two are not interleaved (each its own rounds).
    first, times = {}, {}
    for name, (layout, _) in layouts.items():
      stepper = Stepper(layout, inits[name]())
      first[name] = float(timing.block(stepper())[2])
      times.update(timing.interleaved_medians({name: stepper}, rounds=rounds, inner=inner,
                                              warmup=1))
      steppers = {name: stepper}
    if skipped is None:
      time_row["note"] = (f"one layout at a time (both need about {together / 2**30:.1f} GiB, "
                          f"budget {budget / 2**30:.1f} GiB)")
  else:
    note = _not_run(alone, budget)
    time_row["note"] = time_row["note"] or note
    speed_row["note"] = note
    return mem_rows, time_row, speed_row
  if skipped is None:
    time_row.update(single_s=times["single"], sharded_s=times["sharded"],
                    ratio=times["sharded"] / times["single"], loss_single=first["single"],
                    loss_rel_diff=_rel(first["sharded"], first["single"]))
  params, _, x, y = steppers.pop("single").state
  w = params["classifier"]
  del steppers, params  # only the batch and the classifier stay for the single-device check
  speed_row.update(_single_path_row(case, x, y, w, rounds=rounds, inner=inner,
                                    memory_gib=memory_gib,
                                    held=x.nbytes + y.nbytes + w.nbytes))
  return mem_rows, time_row, speed_row


# ----------------------------------------------------------------------------------- reporting


def _mib(b) -> str:
  return "" if b is None else f"{b / MIB:.4g}"


def _fmt(v, spec) -> str:
  return "" if v is None else format(v, spec)


def markdown(result: dict) -> str:
  n, target = result["config"]["devices"], result["config"]["target"]
  lines = [
      "Per-device memory of one training step (XLA memory_analysis of the compiled step; MiB)",
      "",
      f"| loss | C | layout | classifier + opt. state | / ideal 1/{n} | target | arguments | "
      "outputs | aliased | temporaries | peak | peak / single |",
      "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ]
  for r in result["memory"]:
    if "skipped" in r:
      lines.append(f"| {r['loss']} | {r['classes']} | {r['layout']}: SKIPPED, {r['skipped']} "
                   "| | | | | | | | | |")
      continue
    is_sharded = r["to_ideal"] is not None
    lines.append(
        f"| {r['loss']} | {r['classes']} | {r['layout']} | {_mib(r['classifier_and_state'])} | "
        f"{_fmt(r['to_ideal'], '.3f')}{'x' if is_sharded else ''} | "
        f"{f'<= {target:g}x' if is_sharded else ''} | {_mib(r['arguments'])} | "
        f"{_mib(r['outputs'])} | {_mib(r['aliased'])} | {_mib(r['temporaries'])} | "
        f"{_mib(r['peak'])} | {r['peak_to_single']:.3f}x |")
  lines += [
      "", f"Step time, {n}-way sharded against single device (median of interleaved rounds)", "",
      "| loss | C | single-device step s | sharded step s | sharded / single | first loss | "
      "sharded loss rel. diff | note |",
      "|---|---:|---:|---:|---:|---:|---:|---|",
  ]
  for r in result["time"]:
    lines.append(
        f"| {r['loss']} | {r['classes']} | {_fmt(r['single_s'], '.3f')} | "
        f"{_fmt(r['sharded_s'], '.3f')} | {_fmt(r['ratio'], '.2f')}"
        f"{'' if r['ratio'] is None else 'x'} | {_fmt(r['loss_single'], '.6g')} | "
        f"{_fmt(r['loss_rel_diff'], '.1e')} | {r['note']} |")
  lines += [
      "", "Single-device path (class_axis_name=None): loss forward+backward (features, "
      "classifier) against a plain reference of the same formula", "",
      "| loss | C | dmlax ms | reference ms | dmlax / reference | value rel. diff | "
      "grad max abs diff | note |",
      "|---|---:|---:|---:|---:|---:|---:|---|",
  ]
  for r in result["single_device_speed"]:
    lines.append(
        f"| {r['loss']} | {r['classes']} | {_fmt(r['dmlax_ms'], '.1f')} | "
        f"{_fmt(r['reference_ms'], '.1f')} | {_fmt(r['ratio'], '.2f')}"
        f"{'' if r['ratio'] is None else 'x'} | {_fmt(r['value_rel_diff'], '.1e')} | "
        f"{_fmt(r['grad_max_abs_diff'], '.1e')} | {r['note']} |")
  for s in result["skipped"]:
    lines.append(f"\nSKIPPED {s['loss']}: {s['reason']}")
  return "\n".join(lines)


# ---------------------------------------------------------------------------------------- main

_FLAGS = flags.FlagValues()  # the module's own flags: tests call main(argv) in one process
flags.DEFINE_list("classes", ["100000", "1000000"], "class counts C (multiples of --devices)",
                  flag_values=_FLAGS)
flags.DEFINE_integer("batch", 256, "batch size B", flag_values=_FLAGS)
flags.DEFINE_integer("dim", 512, "feature dimension D", flag_values=_FLAGS)
flags.DEFINE_integer("devices", 8, "devices of the class axis", flag_values=_FLAGS)
flags.DEFINE_integer("mpa_k", 2, "proxies per class of MPA (2: the MPA paper's SOP setting)",
                     flag_values=_FLAGS)
flags.DEFINE_list("losses", None, "only the loss cases whose name contains one of these "
                  "substrings (default: all)", flag_values=_FLAGS)
flags.DEFINE_enum("optimizer", "sgd", ["sgd", "adam"], "optax optimiser of the step (sgd: "
                  "momentum 0.9, one state array per parameter; adam: two)", flag_values=_FLAGS)
flags.DEFINE_integer("rounds", 3, "interleaved timing rounds (median)", flag_values=_FLAGS)
flags.DEFINE_integer("inner", 1, "calls per round", flag_values=_FLAGS)
flags.DEFINE_integer("seed", 0, "seed of the batch and the initial parameters",
                     flag_values=_FLAGS)
flags.DEFINE_float("memory_gib", None, "run (rather than only compile) a size when the state "
                   "of both layouts plus the larger step's other buffers fit in this many GiB "
                   "(default: half of MemAvailable at that moment)", flag_values=_FLAGS)
flags.DEFINE_list("run_classes", None, "the class counts of --classes that are executed (timed "
                  "and compared); the others are compiled only (default: all that fit)",
                  flag_values=_FLAGS)
flags.DEFINE_float("target", 1.2, "target of the per-device classifier + optimiser-state "
                   "bytes over the ideal 1/devices", flag_values=_FLAGS)
flags.DEFINE_string("out", None, "also write the markdown tables here", flag_values=_FLAGS)
flags.DEFINE_string("json", None, "also write the results as JSON here", flag_values=_FLAGS)


def run(args) -> dict:
  """The benchmark for parsed flags `args`: a dict of config, memory, time,
  single_device_speed and skipped rows."""
  n = args.devices
  if n > len(jax.devices()):
    raise ValueError(f"--devices {n} exceeds the {len(jax.devices())} devices JAX sees "
                     "(XLA_FLAGS --xla_force_host_platform_device_count)")
  classes = [int(c) for c in args.classes]
  bad = [c for c in classes if c <= 0 or c % n]
  if bad:
    raise ValueError(f"--classes {bad} must be positive multiples of --devices {n}")
  run_sizes = classes if args.run_classes is None else [int(c) for c in args.run_classes]
  mesh = Mesh(np.array(jax.devices()[:n]), (AXIS,))
  optimizer = make_optimizer(args.optimizer)
  chosen = [c for c in scale_cases.cases(args.mpa_k)
            if not args.losses or any(s in c.name for s in args.losses)]
  if not chosen:
    raise ValueError(f"--losses {args.losses} matches no case of "
                     f"{[c.name for c in scale_cases.cases(args.mpa_k)]}")
  result = {"config": {"batch": args.batch, "dim": args.dim, "devices": n, "classes": classes,
                       "mpa_k": args.mpa_k, "optimizer": args.optimizer, "rounds": args.rounds,
                       "inner": args.inner, "target": args.target, "jax": jax.__version__,
                       "backend": jax.default_backend(), "cpus": os.cpu_count()},
            "memory": [], "time": [], "single_device_speed": [], "skipped": []}
  for case in chosen:
    reason = scale_cases.skip_reason(case)
    if reason is not None:
      result["skipped"].append({"loss": case.name, "reason": reason})
    for c in classes:
      mem, t, speed = bench_size(case, optimizer, batch=args.batch, dim=args.dim, num_classes=c,
                                 k=args.mpa_k, mesh=mesh, rounds=args.rounds, inner=args.inner,
                                 seed=args.seed, memory_gib=args.memory_gib, skipped=reason,
                                 compile_only=None if c in run_sizes else (
                                     f"not run: --run_classes {','.join(args.run_classes)} "
                                     "(memory figures from compilation only)"))
      result["memory"] += mem
      result["time"].append(t)
      result["single_device_speed"].append(speed)
      print(f"done: {case.name} C={c}", file=sys.stderr, flush=True)
  return result


def main(argv=None) -> dict:
  _FLAGS.unparse_flags()  # every call starts from the defaults (tests call main repeatedly)
  cli.parse_module_flags(_FLAGS, "bench_scale", argv)
  args = _FLAGS
  result = run(args)
  header = (f"jax {jax.__version__}, backend {jax.default_backend()}, {os.cpu_count()} CPUs, "
            f"{len(jax.devices())} devices; B={args.batch} D={args.dim} optimizer "
            f"{args.optimizer}; median of {args.rounds} interleaved rounds x {args.inner} calls")
  table = markdown(result)
  print(header + "\n\n" + table)
  missed = [f"{r['loss']} C={r['classes']}" for r in result["memory"]
            if r.get("to_ideal") is not None and r["to_ideal"] > args.target]
  if missed:
    print(f"targets missed (classifier + state over ideal > {args.target:g}x): {missed}")
  if args.out:
    with open(args.out, "w") as f:
      f.write(header + "\n\n" + table + "\n")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(result, f, indent=1)
  return result


if __name__ == "__main__":
  main()
