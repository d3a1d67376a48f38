r"""The main job: a paper's loss and its softmax baseline on `glyphs`, beside two references.

`bash experiments/quickstart.sh` sets up .venv and runs this; directly:
`python -m experiments.quickstart [--loss mpa] [--baseline softmax] [--workdir workdirs/quickstart]`.
Each loss trains `configs/quickstart.py:<loss>` in `<workdir>/<loss>/seed<s>` (started afresh)
on the glyphs training classes 0-63 and is evaluated on the 36 held-out classes 64-99. Two
reference rows are computed on the same test split with the same metrics: the cosine of the raw
pixels (the 16x16 images the network sees) and the same network at a random initialisation. The
table gives Recall@1, MAP@R and nDCG@4; one progress line is printed per run.

`--seeds N` (N >= 2) trains both losses with seeds 0..N-1 (a seed fixes the initialisation and
the order of the training data, so the two losses' runs of one seed are a pair) and adds the
paired comparison of the loss against the baseline for each metric: mean difference, its 95%
interval and the paired t-test's p-value (`experiments.stats.paired_claim`). `--task
validation` trains on classes 0-39 and evaluates on 40-63 (all training classes of the test
protocol): the split on which hyperparameters are chosen. `--loss` and `--baseline` take the
config's arguments, e.g. `--loss mpa,head_lr=0.01`.

The runs train side by side in `--jobs` (default 2) spawned processes, while this process
computes the reference rows: compiling a program keeps about one core busy, so on a 2-core
machine two runs at once take little more wall time than one. Compiled programs are cached on
disk (`<workdir>/_jax_cache`), so later seeds and later runs of the job compile nothing.
"""

import concurrent.futures
import multiprocessing
import os
import shutil
import time

from absl import app
from absl import flags
from absl import logging

from experiments import jax_cache


def _define_flags():
  """The command's flags (defined when run, so that importing this module defines none)."""
  flags.DEFINE_string("workdir", "workdirs/quickstart", "Parent directory of the runs.")
  flags.DEFINE_string("loss", "mpa", "The paper's loss: configs/quickstart.py's argument "
                      "(a name in its LOSSES, optionally with ',head_lr=<rate>').")
  flags.DEFINE_string("baseline", "softmax", "The baseline loss (the same form as --loss).")
  flags.DEFINE_integer("seeds", 1, "Seeds 0..N-1 per loss; N >= 2 adds the paired statistics.")
  from configs import quickstart  # pylint: disable=g-import-not-at-top  (imports no JAX)
  flags.DEFINE_enum("task", "retrieval", list(quickstart.TASKS),
                    "retrieval: train 0-63, test 64-99; validation: train 0-39, test 40-63; "
                    "train40: train 0-39, test 64-99.")
  flags.DEFINE_integer("jobs", 2, "Runs trained side by side in spawned processes.")
  flags.DEFINE_bool("smoke", False, "A few steps on the 8x8 digits (the machinery, for tests).")
  flags.DEFINE_bool("fresh", True, "Delete earlier runs in the workdir first (else resume them).")


FLAGS = flags.FLAGS

METRICS = (("Recall@1", "recall@1"), ("MAP@R", "map@r"), ("nDCG@4", "ndcg@4"))


def _row(name, f, steps="-", seconds="-"):
  cells = " | ".join(f"{100 * f[key]:.2f}" for _, key in METRICS)
  return f"| {name} | {cells} | {steps} | {seconds} |"


def _config_arg(loss: str, seed: int) -> str:
  arg = f"{loss},seed={seed}"
  if FLAGS.task != "retrieval":
    arg += f",task={FLAGS.task}"
  return arg + (",smoke" if FLAGS.smoke else "")


def _dirname(loss: str) -> str:
  return loss.replace(",", "_").replace("=", "")


def train_one(arg: str, workdir: str) -> dict:
  """Trains and evaluates `configs/quickstart.py:<arg>` in `workdir` (also in a worker)."""
  from configs import quickstart  # pylint: disable=g-import-not-at-top
  from dmlax.train import loop  # pylint: disable=g-import-not-at-top
  config = quickstart.get_config(arg)
  config.lock()
  return loop.train_and_evaluate(config, workdir)


def _worker_init():
  from dmlax.train import loop  # pylint: disable=g-import-not-at-top
  loop.quiet_library_logs()
  logging.set_verbosity(logging.WARNING)


def _pool(jobs: int):
  """`jobs` spawned training processes (None for one): a run compiles mostly on one core, so
  two runs side by side keep both cores of a small machine busy."""
  if jobs <= 1:
    return None
  return concurrent.futures.ProcessPoolExecutor(
      jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init)


def paired_lines(loss: str, baseline: str, runs: dict) -> list[str]:
  """The paired comparison `loss - baseline` over the seeds both finished, one row a metric."""
  from experiments import stats  # pylint: disable=g-import-not-at-top
  seeds = sorted(set(runs[loss]) & set(runs[baseline]))
  lines = [f"{loss} - {baseline}, paired by seed over n = {len(seeds)} seeds {seeds} (paired "
           "t-test, two-sided; x100):", "",
           f"| metric | {loss} mean | {baseline} mean | mean difference | 95% CI | p | "
           "verdict |", "|---|---|---|---|---|---|---|"]
  for name, key in METRICS:
    a = [100 * runs[loss][s][key] for s in seeds]
    b = [100 * runs[baseline][s][key] for s in seeds]
    r = stats.paired_claim(a, b, ">")
    p = f"{r['p']:.1e}" if r["p"] < 1e-3 else f"{r['p']:.3f}"
    verdict = {stats.HOLDS: f"{loss} higher", stats.CONTRADICTED: f"{loss} lower"}.get(
        r["verdict"], "not decided (p >= 0.05)")
    lines.append(f"| {name} | {sum(a) / len(a):.2f} | {sum(b) / len(b):.2f} | "
                 f"{r['estimate']:+.2f} | [{r['ci'][0]:+.2f}, {r['ci'][1]:+.2f}] | {p} | "
                 f"{verdict} |")
  return lines


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if FLAGS.seeds < 1:
    raise app.UsageError(f"--seeds must be >= 1, got {FLAGS.seeds}")
  # Set before anything imports JAX, which reads it once.
  jax_cache.use_persistent_cache(FLAGS.workdir)
  from configs import quickstart  # pylint: disable=g-import-not-at-top
  from dmlax import data  # pylint: disable=g-import-not-at-top
  from dmlax.train import loop  # pylint: disable=g-import-not-at-top
  from experiments import reference_rows  # pylint: disable=g-import-not-at-top
  loop.quiet_library_logs()
  logging.set_verbosity(logging.WARNING)  # the progress lines below replace the trainer's log
  start = time.time()
  losses = (FLAGS.loss, FLAGS.baseline)
  if len(set(losses)) != 2:
    raise app.UsageError(f"--loss and --baseline must differ, got {FLAGS.loss!r} twice")
  configs = {(loss, s): quickstart.get_config(_config_arg(loss, s))
             for loss in losses for s in range(FLAGS.seeds)}
  first = configs[(FLAGS.loss, 0)]
  total = len(configs) + 1
  print(f"[0/{total}] preparing {first.dataset.name} (generated offline, once)", flush=True)
  data.prepare(first.dataset.name, data_dir=first.dataset.data_dir)
  runs = {loss: {} for loss in losses}
  results = {}
  pool = _pool(FLAGS.jobs) if len(configs) > 1 else None
  pending = {}
  for i, ((loss, seed), config) in enumerate(configs.items(), 1):
    workdir = os.path.abspath(os.path.join(FLAGS.workdir, _dirname(loss), f"seed{seed}"))
    if FLAGS.fresh and os.path.isdir(workdir):
      shutil.rmtree(workdir)
    arg = _config_arg(loss, seed)
    print(f"[{i}/{total}] training {loss} seed {seed}: {config.num_train_steps} steps of "
          f"{config.batch_size}{' (in parallel)' if pool else ''} "
          f"({time.time() - start:.0f} s so far)", flush=True)
    if pool is None:
      pending[(loss, seed)] = (i, train_one(arg, workdir))
    else:
      pending[(loss, seed)] = (i, pool.submit(train_one, arg, workdir))
  if pool is not None:  # the references are computed here while the runs train
    print(f"[{total}/{total}] references: raw pixels and the untrained network on the same "
          f"test split ({time.time() - start:.0f} s so far)", flush=True)
    refs = reference_rows.compute(first, seed=0)
  for (loss, seed), (i, r) in pending.items():
    r = r if pool is None else r.result()
    if r.get("status") != "done":
      raise RuntimeError(f"{loss} seed {seed}: training stopped ({r.get('status')})")
    results[(loss, seed)] = r
    runs[loss][seed] = r["final"]
    f = r["final"]
    print(f"[{i}/{total}] {loss} seed {seed} done in {r['wall_time_s']:.0f} s: Recall@1 "
          f"{100 * f['recall@1']:.2f}, MAP@R {100 * f['map@r']:.2f} "
          f"({time.time() - start:.0f} s so far)", flush=True)
  if pool is None:
    print(f"[{total}/{total}] references: raw pixels and the untrained network on the same "
          f"test split ({time.time() - start:.0f} s so far)", flush=True)
    refs = reference_rows.compute(first, seed=0)
  else:
    pool.shutdown()
  info = data.info(first.dataset.name, data_dir=first.dataset.data_dir, task=first.dataset.task)
  test_classes = set(data.split_labels(first.dataset.name, task=first.dataset.task,
                                       data_dir=first.dataset.data_dir)[info.eval_split].labels)
  final0 = runs[FLAGS.loss][0]
  lines = ["", f"{first.dataset.name} ({first.dataset.task}), metric learning: train on "
           f"{info.num_classes} classes, retrieve among {len(test_classes)} held-out classes "
           f"({int(final0['num_queries'])} test images)", "",
           "| loss | " + " | ".join(n for n, _ in METRICS) + " | steps | train+eval s |",
           "|---|---|---|---|---|---|"]
  for (loss, seed), r in results.items():
    name = loss if FLAGS.seeds == 1 else f"{loss} (seed {seed})"
    lines.append(_row(name, r["final"], r["steps"], f"{r['wall_time_s']:.0f}"))
  for name, f in refs.items():
    lines.append(_row(f"{name} (reference)", f))
  if FLAGS.seeds >= 2:
    lines += [""] + paired_lines(FLAGS.loss, FLAGS.baseline, runs)
  lines.append("")
  for (loss, seed), r in results.items():
    lines.append(f"{loss} seed {seed}: results {r['workdir']}/results.json (and results.md), "
                 f"checkpoints {r['checkpoints']}, best {r['best_checkpoint']}, "
                 f"TensorBoard logs {r['workdir']}")
  lines.append(f"total {time.time() - start:.0f} s")
  print("\n".join(lines), flush=True)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
