"""SIGTERM reaching one process of a multi-process run stops every process at the same step.

A checkpoint save is collective (orbax: every process writes its shards and they meet at
barriers), so one process saving alone would wait forever for the others. The trainer's guard
(`dmlax.train.loop._Sigterm.agreed`, called once per step) all-gathers the flags: here 2 real
processes joined by `jax.distributed.initialize` (gloo), only process 1 is signalled, and both
must stop at that step.
"""

import os

from experiments import launch_local_multihost as launcher

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(tmp_path, signal_at):
  procs = launcher.launch([f"--out={tmp_path}", f"--signal_at={signal_at}"], num_processes=2,
                          devices_per_process=1, module="tests.multihost.sigterm_worker",
                          cwd=REPO)
  codes = launcher.wait_all(procs, timeout=180)
  logs = [p.stdout.read() for p in procs]
  assert codes == [0, 0], "\n".join(log[-2000:] for log in logs)
  return [int((tmp_path / f"stop.{i}").read_text()) for i in range(2)]


def test_sigterm_on_one_process_stops_both_at_the_same_step(tmp_path):
  assert _run(tmp_path, "-1,3") == [3, 3]
