"""One process of tests/multihost/test_sigterm.py: joins the others, runs "steps" under the
trainer's SIGTERM guard, and SIGTERMs itself at `--signal_at` (a negative value: never).

It writes `<out>/stop.<process>` with the step at which the guard told it to stop, as the train
loop would save there and return.
"""

import os
import signal
import time

from absl import app
from absl import flags

flags.DEFINE_bool("distributed", True, "Accepted for the launcher; always joins.")
flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0.")
flags.DEFINE_integer("num_processes", None, "Number of processes.")
flags.DEFINE_integer("process_id", None, "This process's index.")
flags.DEFINE_string("out", None, "Directory for stop.<process>.")
flags.DEFINE_string("signal_at", "", "Comma-separated step of each process's SIGTERM (-1: none).")
flags.DEFINE_integer("steps", 40, "Steps to run without a signal.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  import jax  # pylint: disable=g-import-not-at-top
  jax.distributed.initialize(coordinator_address=FLAGS.coordinator_address,
                             num_processes=FLAGS.num_processes, process_id=FLAGS.process_id)
  from dmlax.train import loop  # pylint: disable=g-import-not-at-top
  signal_at = int(FLAGS.signal_at.split(",")[jax.process_index()])
  stopped = -1
  with loop._Sigterm() as sigterm:  # pylint: disable=protected-access
    for step in range(FLAGS.steps):
      if step == signal_at:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)  # the handler runs between bytecodes of the main thread
      if sigterm.agreed():
        stopped = step
        break
  with open(os.path.join(FLAGS.out, f"stop.{jax.process_index()}"), "w") as f:
    f.write(str(stopped))


if __name__ == "__main__":
  app.run(main)
