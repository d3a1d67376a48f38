r"""Restores a run's checkpoint and evaluates it:
`python -m experiments.evaluate --config configs/X.py[:arg] --workdir DIR [--which best]`.

The config must be the one the run was trained with (same model, loss and dataset); overrides
as in `experiments.train`. Prints the metrics as JSON on stdout.
"""

import json

from absl import app
from absl import flags
from ml_collections import config_flags

flags.DEFINE_string("workdir", None, "The run's directory (holds checkpoints/ and best/).")
flags.DEFINE_enum("which", "latest", ["latest", "best"], "Which checkpoint to evaluate.")
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() before anything else.")
config_flags.DEFINE_config_file("config", None, "Config file (configs/X.py[:arg]).",
                                lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  import jax  # pylint: disable=g-import-not-at-top
  if FLAGS.distributed or FLAGS.config.distributed:
    jax.distributed.initialize()
  from dmlax.train import loop  # pylint: disable=g-import-not-at-top
  loop.quiet_library_logs()
  metrics = loop.evaluate_checkpoint(FLAGS.config, FLAGS.workdir, which=FLAGS.which)
  if jax.process_index() == 0:
    print(json.dumps(metrics, indent=2, sort_keys=True))


if __name__ == "__main__":
  app.run(main)
