r"""Runs a multi-host job on this machine: N processes with fake CPU devices, one coordinator.

    python -m experiments.launch_local_multihost --num_processes=2 --devices_per_process=4 -- \
        --config=configs/quickstart.py:mpa --workdir=/tmp/mh

starts `python -m experiments.train --distributed --coordinator_address=127.0.0.1:PORT
--num_processes=2 --process_id=I <the arguments after -->` for I = 0 .. N-1, each with
`XLA_FLAGS=--xla_force_host_platform_device_count=4`, `JAX_PLATFORMS=cpu` and JAX's gloo CPU
collectives, so the run sees 2 processes and 8 devices exactly as on 2 hosts with 4
accelerators each (one global pmap/shard_map axis, per-process data shards, sharded evaluation,
orbax checkpoints written jointly). Output lines are prefixed with `[I]`; the exit status is the
first non-zero one. If one process fails or the timeout passes, the others are killed (a lone
survivor would wait for its peers until JAX's heartbeat timeout).

Prepare the dataset before launching (`python experiments/prepare_data.py --dataset NAME`):
every process would otherwise prepare it into the same directory at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from absl import flags
import portpicker

from experiments import cli


def process_env(devices_per_process: int, base: dict | None = None) -> dict:
  """The environment of one local "host": fake CPU devices, gloo collectives, CPU only."""
  env = dict(os.environ if base is None else base)
  flags = [f for f in env.get("XLA_FLAGS", "").split()
           if not f.startswith("--xla_force_host_platform_device_count")]
  env["XLA_FLAGS"] = " ".join(flags + [
      f"--xla_force_host_platform_device_count={devices_per_process}"])
  env["JAX_PLATFORMS"] = "cpu"
  env["JAX_CPU_COLLECTIVES_IMPLEMENTATION"] = "gloo"
  return env


def launch(args: list[str], *, num_processes: int, devices_per_process: int,
           module: str = "experiments.train", port: int | None = None,
           env: dict | None = None, cwd: str | None = None, stdout=None
           ) -> list[subprocess.Popen]:
  """Starts the `num_processes` processes of `python -m module --distributed ... args`.

  Args:
    args: arguments for every process (config, workdir, overrides).
    num_processes: how many local "hosts".
    devices_per_process: fake CPU devices of each.
    module: the entry point (it must accept experiments.train's distributed flags).
    port: the coordinator's port on 127.0.0.1 (default: a free one from portpicker).
    env: base environment (default: this process's).
    cwd: working directory of the processes.
    stdout: a function `i -> file object or subprocess constant` for process i's output
      (default: a pipe, stderr merged into it).

  Returns:
    The processes, index i being process_id i.
  """
  if num_processes < 1 or devices_per_process < 1:
    raise ValueError(f"num_processes={num_processes} and devices_per_process="
                     f"{devices_per_process} must be >= 1")
  port = port or portpicker.pick_unused_port()
  procs = []
  for i in range(num_processes):
    cmd = [sys.executable, "-m", module, "--distributed",
           f"--coordinator_address=127.0.0.1:{port}", f"--num_processes={num_processes}",
           f"--process_id={i}", *args]
    out = subprocess.PIPE if stdout is None else stdout(i)
    procs.append(subprocess.Popen(cmd, cwd=cwd, env=process_env(devices_per_process, env),
                                  stdout=out, stderr=subprocess.STDOUT, text=True))
  return procs


def kill_all(procs: list[subprocess.Popen]) -> None:
  for p in procs:
    if p.poll() is None:
      p.kill()
  for p in procs:
    p.wait()


def wait_all(procs: list[subprocess.Popen], timeout: float) -> list[int]:
  """Waits for every process; kills all of them when one fails or `timeout` s pass.

  Returns:
    The exit codes (negative: killed by that signal).
  """
  deadline = time.time() + timeout
  while any(p.poll() is None for p in procs):
    if any(p.poll() not in (None, 0) for p in procs) or time.time() > deadline:
      kill_all(procs)
      break
    time.sleep(0.1)
  return [p.wait() for p in procs]


_FLAGS = flags.FlagValues()  # the module's own flags: the test imports this module
flags.DEFINE_integer("num_processes", 2, "processes to start", flag_values=_FLAGS)
flags.DEFINE_integer("devices_per_process", 4, "fake CPU devices of each process",
                     flag_values=_FLAGS)
flags.DEFINE_string("module", "experiments.train", "the program each process runs (python -m)",
                    flag_values=_FLAGS)
flags.DEFINE_float("timeout", 3600.0, "seconds for the whole job", flag_values=_FLAGS)


def main(argv=None) -> int:
  """`-- ARGS` after the launcher's flags are the trainer's arguments."""
  rest = cli.parse_module_flags(_FLAGS, "launch_local_multihost", argv)
  args = rest[1:]
  ns = _FLAGS
  procs = launch(args, num_processes=ns.num_processes,
                 devices_per_process=ns.devices_per_process, module=ns.module)

  def relay(i, proc):
    for line in proc.stdout:
      sys.stdout.write(f"[{i}] {line}")
      sys.stdout.flush()

  threads = [threading.Thread(target=relay, args=(i, p), daemon=True)
             for i, p in enumerate(procs)]
  for t in threads:
    t.start()
  codes = wait_all(procs, ns.timeout)
  for t in threads:
    t.join(timeout=5)
  # A process killed by signal N reads as the shell's 128 + N.
  return next((c if c > 0 else 128 - c for c in codes if c), 0)


if __name__ == "__main__":
  sys.exit(main())
