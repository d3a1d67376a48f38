r"""Trains and evaluates a config: `python -m experiments.train --config configs/X.py[:arg] --workdir DIR`.

Any field can be overridden on the command line (`--config.optimizer.lr=3e-4`); the config is
locked, so a misspelt field is an error that names it. Re-running with the same workdir resumes
from its latest checkpoint. Multi-host: set `--config.distributed=True` (or pass
`--distributed`), and each process runs this same command; `jax.distributed.initialize` reads the
coordinator from the cluster environment (SLURM, Cloud TPU, or JAX_COORDINATOR_ADDRESS etc.).
"""

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results.")
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() before anything else.")
flags.DEFINE_string("coordinator_address", None, "With --distributed: HOST:PORT of process 0's "
                    "coordinator (default: detected from the cluster, or JAX_COORDINATOR_ADDRESS).")
flags.DEFINE_integer("num_processes", None, "With --distributed: the number of processes "
                     "(default: detected from the cluster).")
flags.DEFINE_integer("process_id", None, "With --distributed: this process's index in "
                     "[0, num_processes) (default: detected from the cluster).")
config_flags.DEFINE_config_file("config", None, "Config file (configs/X.py[:arg]).",
                                lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  import jax  # pylint: disable=g-import-not-at-top
  config = FLAGS.config
  if FLAGS.distributed or config.distributed:
    try:
      jax.distributed.initialize(coordinator_address=FLAGS.coordinator_address,
                                 num_processes=FLAGS.num_processes, process_id=FLAGS.process_id)
    except ValueError as e:  # JAX names the missing value, not where it could come from
      hint = ("" if None not in (FLAGS.coordinator_address, FLAGS.num_processes,
                                 FLAGS.process_id) else
              " No cluster was detected (SLURM, Open MPI, Cloud TPU, Kubernetes); pass "
              "--coordinator_address=HOST:PORT --num_processes=N --process_id=I")
      raise app.UsageError(f"--distributed: {e}{hint}") from e
  from dmlax.train import loop  # pylint: disable=g-import-not-at-top
  loop.quiet_library_logs()
  logging.info("JAX: %d process(es), %d device(s): %s", jax.process_count(), jax.device_count(),
               jax.devices())
  results = loop.train_and_evaluate(config, FLAGS.workdir)
  if results.get("status") == "done":
    logging.info("final metrics: %s", results["final"])
    logging.info("results: %s/results.json; checkpoints: %s", results["workdir"],
                 results["checkpoints"])


if __name__ == "__main__":
  app.run(main)
