r"""Restores a run's checkpoint and evaluates it:
`python -m experiments.evaluate --config configs/X.py[:arg] --workdir DIR [--which best]`.

The config must be the one the run was trained with (same model, loss and dataset); overrides
and paths as in `experiments.train`. Prints the metrics as JSON on stdout.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from configs import common  # noqa: E402

flags.DEFINE_string("workdir", None, "The run's directory (holds checkpoints/ and best/).")
flags.DEFINE_enum("which", "latest", ["latest", "best"], "Which checkpoint to evaluate.")
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() before anything else.")
config_flags.DEFINE_config_file("config", None, "Config file (configs/X.py[:arg]).",
                                lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS
_OVERRIDES = []


# `--config.X=V` overrides, applied after the config file loads (`common.flags_parser`).
parse_flags = common.flags_parser(_OVERRIDES)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  import jax  # pylint: disable=g-import-not-at-top
  from dmlax.train import loop  # pylint: disable=g-import-not-at-top
  loop.quiet_library_logs()
  try:
    config = common.resolve_paths(common.apply_overrides(FLAGS.config, _OVERRIDES))
    if FLAGS.distributed or config.distributed:
      jax.distributed.initialize()
    metrics = loop.evaluate_checkpoint(config, common.caller_path(FLAGS.workdir),
                                       which=FLAGS.which)
  except (ValueError, FileNotFoundError, RuntimeError) as e:
    sys.exit(f"error: {e}")
  if jax.process_index() == 0:
    print(json.dumps(metrics, indent=2, sort_keys=True))


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
