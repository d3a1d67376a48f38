"""`python -m experiments.train` for the multi-host tests, with two test-only additions.

  * `DMLAX_TEST_HOLD_AFTER_SAVE=S`: after the checkpoint of step S is saved, write
    `<workdir>/held.<process>` and sleep, so that the test can SIGKILL every process at the same
    point of the run (a checkpoint in the middle, none after it).
  * Each process writes what `train_and_evaluate` returned to `<workdir>/process<i>.json`, so
    that the test sees every process's evaluation, not only process 0's `results.json`.

Everything else is experiments/train.py's `main`, flags and all.
"""

import json
import os
import time

from absl import app

from experiments import train


def _install_hooks():
  import jax  # pylint: disable=g-import-not-at-top
  from dmlax.train import checkpoints
  from dmlax.train import loop

  hold = os.environ.get("DMLAX_TEST_HOLD_AFTER_SAVE")
  if hold:
    save = checkpoints.Checkpoints.save

    def save_then_hold(self, step, *args, **kwargs):
      save(self, step, *args, **kwargs)
      if int(step) == int(hold):
        self.wait()
        path = os.path.join(os.path.dirname(self.directory), f"held.{jax.process_index()}")
        with open(path, "w") as f:
          f.write(str(step))
        time.sleep(3600)

    checkpoints.Checkpoints.save = save_then_hold

  run = loop.train_and_evaluate

  def run_and_record(config, workdir, *args, **kwargs):
    results = run(config, workdir, *args, **kwargs)
    path = os.path.join(os.path.abspath(workdir), f"process{jax.process_index()}.json")
    with open(path, "w") as f:
      json.dump({"process_count": jax.process_count(), "device_count": jax.device_count(),
                 "final": results.get("final"), "history": results.get("history"),
                 "steps": results.get("steps")}, f)
    return results

  loop.train_and_evaluate = run_and_record


def main(argv):
  import jax  # pylint: disable=g-import-not-at-top
  initialize = jax.distributed.initialize

  def initialize_then_hook(*args, **kwargs):
    # The trainer's modules are imported only after jax.distributed.initialize, as
    # experiments/train.py does (importing them may start the JAX backend).
    initialize(*args, **kwargs)
    _install_hooks()

  jax.distributed.initialize = initialize_then_hook
  train.main(argv)


if __name__ == "__main__":
  app.run(main)  # experiments.train defined every flag at import.
