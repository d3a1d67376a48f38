"""What a run tells its user: a one-screen summary at start, progress lines (steps/s, ETA,
current loss), scalars and hyperparameters to TensorBoard (`workdir/`, clu's summary writer,
process 0 only), and `results.json` / `results.md` at the end. Nothing else goes to the console:
the hyperparameters are in TensorBoard and `workdir/config.json`.
"""

from __future__ import annotations

import json
import logging as py_logging
import os
from typing import Any

from absl import logging
import jax
import numpy as np


def fmt_time(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class _LibraryInfo(py_logging.Filter):
  """Drops the INFO chatter of the libraries under the loop (orbax's per-save lines, tfds's
  "Load dataset info", jax's backend probing); their warnings still show."""
  QUIET = ("/orbax/", "/tensorflow_datasets/", "/jax/_src/", "/grain/", "/clu/", "/etils/")

  def filter(self, record):
    return record.levelno >= py_logging.WARNING or not any(
        q in record.pathname for q in self.QUIET)


def quiet_library_logs() -> None:
  """Installs the library filter on absl's handler (idempotent); entry points call it."""
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _LibraryInfo) for f in handler.filters):
    handler.addFilter(_LibraryInfo())
  for name in ("jax._src.xla_bridge", "jax._src.compiler"):
    py_logging.getLogger(name).setLevel(py_logging.WARNING)


def _flat_hparams(config) -> dict:
  from dmlax.train import run_config  # pylint: disable=g-import-not-at-top
  return {k: v if isinstance(v, (int, float, str, bool)) else str(v)
          for k, v in run_config.flatten(config).items()}


def _mesh_note(run) -> str:
  """", mesh (data 4, model 2): classes split in 2" when the classes are split over devices."""
  mesh = getattr(run, "train_mesh", None)
  shape = dict(mesh.shape) if mesh is not None else {}
  if shape.get("model", 1) <= 1:
    return ""
  return (f"; mesh (data {shape['batch']}, model {shape['model']}): classes split in "
          f"{shape['model']} blocks of {run.data.info.num_classes // shape['model']}")


class Reporter:
  """Console and TensorBoard output of one run (`run` from `dmlax.train.run.setup`)."""

  def __init__(self, run):
    self.run = run
    self._writer = None
    if jax.process_index() == 0:
      from clu import metric_writers  # pylint: disable=g-import-not-at-top
      # The summary writer alone: clu's default writer also logs every scalar and the
      # hyperparameters to the console.
      self._writer = metric_writers.SummaryWriter(run.workdir)

  def summary(self, *, resumed_from: int | None) -> None:
    """The run at a glance, one screen."""
    run, c = self.run, self.run.config
    info = run.data.info
    sizes = ", ".join(f"{k} {v}" for k, v in sorted((info.num_examples or {}).items()))
    loss = c.loss.name + (f" + {c.loss.aux_weight} x {c.loss.aux_name}" if c.loss.aux_name
                          else "")
    kwargs = c.loss.kwargs.to_dict()
    devices = jax.devices()
    lines = [
        f"dataset   {info.name} (task {info.task}, {info.protocol}; {info.num_classes} "
        f"training classes; {sizes})",
        f"model     {c.model.name} {c.model.kwargs.to_dict() or ''}".rstrip(),
        f"loss      {loss} {kwargs or ''}".rstrip(),
        f"optimiser {c.optimizer.name}, lr {c.optimizer.lr}, schedule {c.schedule.name}",
        f"devices   {len(devices)} x {devices[0].platform} in {jax.process_count()} process(es)"
        f", driver {c.parallel}; batch {c.batch_size} ({run.local_batch} per process)" +
        _mesh_note(run),
        f"steps     {run.total_steps} ({run.steps_per_epoch} per epoch)" +
        (f", resuming from step {resumed_from}" if resumed_from else ""),
        f"best by   {run.best_metric} ({run.best_mode})",
        f"results   {run.workdir}/results.json (config.json, checkpoints/, TensorBoard)",
    ]
    logging.info("run\n  %s", "\n  ".join(lines))

  def hparams(self) -> None:
    if self._writer is not None:
      self._writer.write_hparams(_flat_hparams(self.run.config))

  def progress(self, step: int, scalars: dict[str, float], rate: float) -> None:
    total = self.run.total_steps
    logging.info("step %d/%d  loss %.4f  %.2f steps/s  ETA %s", step, total,
                 scalars.get("train/loss", float("nan")), rate,
                 fmt_time((total - step) / max(rate, 1e-9)))
    self.scalars(step, scalars)

  def evaluation(self, step: int, metrics: dict[str, float]) -> None:
    logging.info("eval at step %d: %s", step, _headline(metrics, self.run.best_metric))
    self.scalars(step, {f"eval/{k}": v for k, v in metrics.items()})

  def scalars(self, step: int, scalars: dict[str, float]) -> None:
    if self._writer is not None:
      self._writer.write_scalars(step, scalars)

  def flush(self) -> None:
    if self._writer is not None:
      self._writer.flush()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
      self._writer = None


def _headline(metrics: dict, head: str | None) -> str:
  """The metric that ranks checkpoints, recall@k, MAP@R and top-1 error: one short line (all
  metrics are in TensorBoard and results.json)."""
  keys = [head] + [k for k in metrics if k.startswith("recall@")] + ["map@r", "top1_error"]
  seen = dict.fromkeys(k for k in keys if k in metrics)
  return ", ".join(f"{k} {float(metrics[k]):.4f}" for k in seen)


def log_results(results: dict) -> None:
  """The final lines of a run: its headline metrics and where everything is."""
  logging.info("final (step %s): %s", results.get("steps"),
               _headline(results.get("final") or {}, results.get("best_metric")))
  logging.info("results: %s/results.json; checkpoints: %s", results["workdir"],
               results["checkpoints"])


def jsonable(x):
  if isinstance(x, dict):
    return {str(k): jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [jsonable(v) for v in x]
  if isinstance(x, (np.integer,)):
    return int(x)
  if isinstance(x, (np.floating,)):
    return float(x)
  return x


def read_results(workdir: str) -> dict | None:
  path = os.path.join(workdir, "results.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def write_results(workdir: str, results: dict[str, Any]) -> None:
  """`results.json` (everything) and `results.md` (a short human summary) in `workdir`."""
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(jsonable(results), f, indent=2, sort_keys=True)
  final, best = results["final"], results["best"] or {}
  cfg = results["config"]
  names = [k for k in final if k != "step"]
  lines = [
      f"# {cfg['dataset']['name']} / {cfg['model']['name']} / {cfg['loss']['name']}",
      "",
      f"{results['steps']} steps, {results['wall_time_s']:.1f} s wall time; protocol "
      f"{results['protocol']}; best by `{results['best_metric']}` at step {best.get('step')}.",
      "",
      "| metric | final | best |",
      "|---|---|---|",
  ]
  for k in names:
    lines.append(f"| {k} | {final[k]:.4f} | {best.get(k, float('nan')):.4f} |")
  changes = results.get("config_changes") or []
  if changes:
    lines += ["", "## Config changes on resume", "", "| step | field | from | to |",
              "|---|---|---|---|"]
    lines += [f"| {c['step']} | {c['field']} | {c['from']!r} | {c['to']!r} |" for c in changes]
  lines += ["", f"Checkpoints: `{results['checkpoints']}` (best: `{results['best_checkpoint']}`)",
            "", "## Config", "", "```json", json.dumps(jsonable(cfg), indent=2, sort_keys=True),
            "```", ""]
  with open(os.path.join(workdir, "results.md"), "w") as f:
    f.write("\n".join(lines))
