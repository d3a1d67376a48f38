r"""The main job: a paper's loss and its softmax baseline on `digits`, then the comparison.

`bash experiments/quickstart.sh` sets up .venv and runs this; directly:
`python -m experiments.quickstart [--loss mpa] [--baseline softmax] [--workdir workdirs/quickstart]`.
Each loss trains `configs/quickstart.py:<loss>` in `<workdir>/<loss>` (started afresh) and is
evaluated on the held-out digits 5-9; the table gives Recall@1, MAP@R and nDCG@4.
"""

import os
import shutil
import time

from absl import app
from absl import flags

flags.DEFINE_string("workdir", "workdirs/quickstart", "Parent directory of the two runs.")
flags.DEFINE_string("loss", "mpa", "The paper's loss (a name in configs/quickstart.py LOSSES).")
flags.DEFINE_string("baseline", "softmax", "The baseline loss.")
flags.DEFINE_bool("fresh", True, "Delete earlier runs in the workdir first (else resume them).")
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from configs import quickstart  # pylint: disable=g-import-not-at-top
  from dmlax.train import loop  # pylint: disable=g-import-not-at-top
  loop.quiet_library_logs()
  start = time.time()
  rows = []
  for loss in (FLAGS.loss, FLAGS.baseline):
    config = quickstart.get_config(loss)
    config.lock()
    workdir = os.path.abspath(os.path.join(FLAGS.workdir, loss))
    if FLAGS.fresh and os.path.isdir(workdir):
      shutil.rmtree(workdir)
    results = loop.train_and_evaluate(config, workdir)
    rows.append((loss, results))
  lines = ["", "digits, metric learning: train on digits 0-4, retrieve among the held-out 5-9 "
           f"({int(rows[0][1]['final']['num_queries'])} test images)", "",
           "| loss | Recall@1 | MAP@R | nDCG@4 | steps | train+eval s |",
           "|---|---|---|---|---|---|"]
  for loss, r in rows:
    f = r["final"]
    lines.append(f"| {loss} | {100 * f['recall@1']:.2f} | {100 * f['map@r']:.2f} | "
                 f"{100 * f['ndcg@4']:.2f} | {r['steps']} | {r['wall_time_s']:.0f} |")
  lines.append("")
  for loss, r in rows:
    lines.append(f"{loss}: results {r['workdir']}/results.json (and results.md), "
                 f"checkpoints {r['checkpoints']}, best {r['best_checkpoint']}, "
                 f"TensorBoard logs {r['workdir']}")
  lines.append(f"total {time.time() - start:.0f} s")
  print("\n".join(lines), flush=True)


if __name__ == "__main__":
  app.run(main)
