r"""The main job: a paper's loss and its softmax baseline on `glyphs`, beside two references.

`bash experiments/quickstart.sh` sets up .venv and runs this; directly:
`python -m experiments.quickstart [--loss mpa] [--baseline softmax] [--workdir workdirs/quickstart]`.
Each loss trains `configs/quickstart.py:<loss>` in `<workdir>/<loss>` (started afresh) on the
glyphs training classes 0-63 and is evaluated on the 36 held-out classes 64-99. Two reference
rows are computed on the same test split with the same metrics: the cosine of the raw pixels
(the 16x16 images the network sees) and the same network at a random initialisation. The
table gives Recall@1, MAP@R and nDCG@4; one progress line is printed per run.
"""

import os
import shutil
import time

from absl import app
from absl import flags
from absl import logging

flags.DEFINE_string("workdir", "workdirs/quickstart", "Parent directory of the runs.")
flags.DEFINE_string("loss", "mpa", "The paper's loss (a name in configs/quickstart.py LOSSES).")
flags.DEFINE_string("baseline", "softmax", "The baseline loss.")
flags.DEFINE_bool("fresh", True, "Delete earlier runs in the workdir first (else resume them).")
FLAGS = flags.FLAGS


def _row(name, f, steps="-", seconds="-"):
  return (f"| {name} | {100 * f['recall@1']:.2f} | {100 * f['map@r']:.2f} | "
          f"{100 * f['ndcg@4']:.2f} | {steps} | {seconds} |")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from configs import quickstart  # pylint: disable=g-import-not-at-top
  from dmlax import data  # pylint: disable=g-import-not-at-top
  from dmlax.train import loop  # pylint: disable=g-import-not-at-top
  from experiments import reference_rows  # pylint: disable=g-import-not-at-top
  loop.quiet_library_logs()
  logging.set_verbosity(logging.WARNING)  # the progress lines below replace the trainer's log
  start = time.time()
  losses = (FLAGS.loss, FLAGS.baseline)
  total = len(losses) + 1
  print(f"[0/{total}] preparing glyphs (generated offline, once)", flush=True)
  data.prepare("glyphs", data_dir=quickstart.get_config(FLAGS.loss).dataset.data_dir)
  rows = []
  for i, loss in enumerate(losses, 1):
    config = quickstart.get_config(loss)
    config.lock()
    workdir = os.path.abspath(os.path.join(FLAGS.workdir, loss))
    if FLAGS.fresh and os.path.isdir(workdir):
      shutil.rmtree(workdir)
    print(f"[{i}/{total}] training {loss}: {config.num_train_steps} steps of "
          f"{config.batch_size} ({time.time() - start:.0f} s so far)", flush=True)
    results = loop.train_and_evaluate(config, workdir)
    rows.append((loss, results))
    f = results["final"]
    print(f"[{i}/{total}] {loss} done in {results['wall_time_s']:.0f} s: Recall@1 "
          f"{100 * f['recall@1']:.2f}, MAP@R {100 * f['map@r']:.2f}", flush=True)
  print(f"[{total}/{total}] references: raw pixels and the untrained network on the same "
        f"test split ({time.time() - start:.0f} s so far)", flush=True)
  refs = reference_rows.compute(quickstart.get_config(FLAGS.loss), seed=0)
  final = rows[0][1]["final"]
  lines = ["", "glyphs, metric learning: train on classes 0-63, retrieve among the 36 held-out "
           f"classes 64-99 ({int(final['num_queries'])} test images)", "",
           "| loss | Recall@1 | MAP@R | nDCG@4 | steps | train+eval s |",
           "|---|---|---|---|---|---|"]
  for loss, r in rows:
    lines.append(_row(loss, r["final"], r["steps"], f"{r['wall_time_s']:.0f}"))
  for name, f in refs.items():
    lines.append(_row(f"{name} (reference)", f))
  lines.append("")
  for loss, r in rows:
    lines.append(f"{loss}: results {r['workdir']}/results.json (and results.md), "
                 f"checkpoints {r['checkpoints']}, best {r['best_checkpoint']}, "
                 f"TensorBoard logs {r['workdir']}")
  lines.append(f"total {time.time() - start:.0f} s")
  print("\n".join(lines), flush=True)


if __name__ == "__main__":
  app.run(main)
