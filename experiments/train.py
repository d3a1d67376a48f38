r"""Trains and evaluates a config: `python -m experiments.train --config configs/X.py[:arg] --workdir DIR`.

Any field can be overridden on the command line (`--config.optimizer.lr=3e-4`,
`--config.loss.kwargs.margin=0.2`); a misspelt field is an error naming it and its neighbours
(`configs.common.apply_overrides`). Re-running with the same workdir resumes from its latest
checkpoint, or prints the results of a finished run; a larger `--config.num_epochs` continues a
finished run. Resuming with other training fields is an error listing them, unless
`--allow_config_change` (recorded in results.json). Relative paths (`--workdir`,
`--config.dataset.data_dir`, `--config.model.pretrained`) are taken from the directory the
command was run from (`configs.common.caller_path`: `$DMLAX_CALLER_DIR`, which
`experiments/setup_env.sh` sets before it changes into the repository, else the current
directory).

Multi-host: set `--config.distributed=True` (or pass `--distributed`), and each process runs this
same command; `jax.distributed.initialize` reads the coordinator from the cluster environment
(SLURM, Cloud TPU, or JAX_COORDINATOR_ADDRESS etc.).
"""

import os
import sys

# Before TensorFlow (tfds, clu's summary writer) is imported: no C++ INFO banners.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # its banner; TF computes nothing here

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from configs import common  # noqa: E402

flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results.")
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() before anything else.")
flags.DEFINE_string("coordinator_address", None, "With --distributed: HOST:PORT of process 0's "
                    "coordinator (default: detected from the cluster, or JAX_COORDINATOR_ADDRESS).")
flags.DEFINE_integer("num_processes", None, "With --distributed: the number of processes "
                     "(default: detected from the cluster).")
flags.DEFINE_integer("process_id", None, "With --distributed: this process's index in "
                     "[0, num_processes) (default: detected from the cluster).")
flags.DEFINE_bool("allow_config_change", False,
                  "Resume a workdir although training fields of the config changed (each change "
                  "and its step are recorded in results.json).")
config_flags.DEFINE_config_file("config", None, "Config file (configs/X.py[:arg]).",
                                lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS
_OVERRIDES = []


# `--config.X=V` overrides, applied after the config file loads (`common.flags_parser`).
parse_flags = common.flags_parser(_OVERRIDES)


def load_config(config=None):
  """The config of the command line: the file, its overrides, and paths from the caller."""
  config = FLAGS.config if config is None else config
  common.apply_overrides(config, _OVERRIDES)
  return common.resolve_paths(config)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from dmlax.train import checkpoints  # pylint: disable=g-import-not-at-top
  from dmlax.train import loop  # pylint: disable=g-import-not-at-top
  loop.quiet_library_logs()
  try:
    config = load_config()
    import jax  # pylint: disable=g-import-not-at-top
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
    loop.train_and_evaluate(config, common.caller_path(FLAGS.workdir),
                            allow_config_change=FLAGS.allow_config_change)
  except (ValueError, FileNotFoundError, checkpoints.UnreadableCheckpointError) as e:
    # Config and data mistakes, refused config changes, unreadable checkpoints: the message
    # names the field or file; a traceback would only hide it.
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
