r"""The papers' figures as PNGs, from trained workdirs or from a reproduced table's summary.

    # features of trained runs (each --workdir one run, --label its legend):
    python -m experiments.plots tsne --workdir A --workdir B --label softmax --label type-II \
        --out tsne.png                                   # GSL Fig. 3
    python -m experiments.plots fisher --workdir A --workdir B --label ... --out fisher.png
                                                         # GSL Fig. 4 (Fisher scores, correlations)
    python -m experiments.plots angles --workdir A --workdir B --label ... --out angles.png
                                                         # W-Softmax Fig. 5 (train and test)
    python -m experiments.plots features3d --workdir A --workdir B --label ... --out f3d.png
                                                         # SGSL Fig. 3 (3-d features)
    # a sweep from experiments.reproduce's summary.json:
    python -m experiments.plots sweep --summary workdirs/reproduce/mpa/table7/summary.json \
        --metric R@1 --out k.png                         # MPA Figs. 2-3, W-Softmax Fig. 4,
                                                         # SGSL Fig. 4

Runs are restored with `experiments.trained_features` (nothing is retrained). Statistics come
from `dmlax.metrics` (`fisher_scores`, `feature_correlations`, `mean_class_angles`).
"""

from __future__ import annotations

import json
import math
import os
from typing import Sequence

from absl import app
from absl import flags
import numpy as np

from experiments import tables

KINDS = ("tsne", "fisher", "angles", "features3d", "sweep")
FLAGS = flags.FLAGS


def _plt():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _save(fig, out: str) -> str:
  os.makedirs(os.path.dirname(os.path.abspath(out)) or ".", exist_ok=True)
  fig.tight_layout()
  fig.savefig(out, dpi=110)
  _plt().close(fig)
  return out


def _runs(workdirs: Sequence[str]):
  from experiments import trained_features
  return [trained_features.load(w) for w in workdirs]


def _labels(labels, workdirs):
  labels = list(labels or [])
  if labels and len(labels) != len(workdirs):
    raise ValueError(f"give one --label per --workdir ({len(workdirs)}), got {len(labels)}")
  return labels or [os.path.basename(os.path.normpath(w)) for w in workdirs]


def _split(run, split: str) -> str:
  return {"test": run.info.eval_split, "train": run.info.train_split}.get(split, split)


def tsne(workdirs, labels=None, *, out: str, split: str = "test", max_classes: int = 20,
         max_points: int = 2000, seed: int = 0) -> str:
  """t-SNE of the features of each run's `split`, the first `max_classes` classes (GSL Fig. 3)."""
  from sklearn.manifold import TSNE
  plt = _plt()
  labels = _labels(labels, workdirs)
  fig, axes = plt.subplots(1, len(workdirs), figsize=(4.2 * len(workdirs), 4.0), squeeze=False)
  for ax, run, name in zip(axes[0], _runs(workdirs), labels):
    feats, y = run.embed(_split(run, split))
    keep = y < max_classes
    feats, y = feats[keep][:max_points], y[keep][:max_points]
    emb = TSNE(2, init="pca", random_state=seed, perplexity=min(30.0, (len(y) - 1) / 3)
               ).fit_transform(feats)
    ax.scatter(emb[:, 0], emb[:, 1], c=y, cmap="tab20", s=6)
    ax.set_title(f"{name} ({split})")
    ax.set_xticks([])
    ax.set_yticks([])
  return _save(fig, out)


def features3d(workdirs, labels=None, *, out: str, split: str = "test",
               max_points: int = 3000) -> str:
  """The raw 3-d features of each run (SGSL Fig. 3); the runs need a 3-wide embedding."""
  plt = _plt()
  labels = _labels(labels, workdirs)
  fig = plt.figure(figsize=(4.6 * len(workdirs), 4.4))
  for i, (run, name) in enumerate(zip(_runs(workdirs), labels)):
    feats, y = run.embed(_split(run, split))
    if feats.shape[1] != 3:
      raise ValueError(f"{run.workdir}: features are {feats.shape[1]}-d; features3d needs 3")
    feats, y = feats[:max_points], y[:max_points]
    ax = fig.add_subplot(1, len(workdirs), i + 1, projection="3d")
    ax.scatter(feats[:, 0], feats[:, 1], feats[:, 2], c=y, cmap="tab10", s=4)
    ax.set_title(f"{name} ({split})")
  return _save(fig, out)


def fisher(workdirs, labels=None, *, out: str, split: str = "test") -> str:
  """Histograms of per-feature Fisher scores and of feature correlations (GSL Fig. 4a, 4b)."""
  from dmlax import metrics
  plt = _plt()
  labels = _labels(labels, workdirs)
  fig, (ax_f, ax_c) = plt.subplots(1, 2, figsize=(10, 3.8))
  for run, name in zip(_runs(workdirs), labels):
    feats, y = run.embed(_split(run, split))
    scores = np.asarray(metrics.fisher_scores(feats, y))
    corr = np.asarray(metrics.feature_correlations(feats))
    if corr.ndim == 2:  # a full matrix: its off-diagonal coefficients
      corr = corr[~np.eye(corr.shape[0], dtype=bool)]
    corr = corr[np.isfinite(corr)]
    ax_f.hist(scores[np.isfinite(scores)], bins=30, range=(0, 1), alpha=0.55,
              label=f"{name} (mean {np.nanmean(scores):.2f})")
    ax_c.hist(corr, bins=40, range=(-1, 1), alpha=0.55, density=True, label=name)
  ax_f.set_xlabel("Fisher score of a feature component")
  ax_f.set_ylabel("number of components")
  ax_c.set_xlabel("correlation coefficient between components")
  ax_c.set_ylabel("density")
  ax_f.legend()
  ax_c.legend()
  return _save(fig, out)


def angles(workdirs, labels=None, *, out: str) -> str:
  """Per-class mean angle between features and the class's classifier column, train and test
  (W-Softmax eq. 14, Fig. 5)."""
  from dmlax import metrics
  plt = _plt()
  labels = _labels(labels, workdirs)
  runs = _runs(workdirs)
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
  width = 0.8 / len(runs)
  for split, ax in zip(("train", "test"), axes):
    for i, (run, name) in enumerate(zip(runs, labels)):
      feats, y = run.embed(_split(run, split))
      w = run.loss_params.get("classifier")
      if w is None:
        raise ValueError(f"{run.workdir}: the loss owns no classifier; angles need one")
      a = np.degrees(np.asarray(metrics.mean_class_angles(feats, y, w), np.float64))
      ax.bar(np.arange(len(a)) + i * width, a, width, label=f"{name} ({np.nanmean(a):.1f})")
    ax.set_title(f"{split} split")
    ax.set_xlabel("class")
  axes[0].set_ylabel("mean angle to its classifier column (deg)")
  axes[1].legend(fontsize=8)
  return _save(fig, out)


def sweep(summary: str | dict, *, metric: str, out: str, vline: float | None = None,
          title: str | None = None, logx: bool | None = None) -> str:
  """A metric against the table's x (K, M, extra BN-ReLU, alpha), one line per series.

  The x of a cell comes from its row or its column (`Table.x`); the other one names the series.
  Error bars: the sample standard deviation over seeds.
  """
  plt = _plt()
  if isinstance(summary, str):
    with open(summary) as f:
      summary = json.load(f)
  table = tables.load_table(summary["table"])
  series: dict[str, list] = {}
  for cell in summary["cells"]:
    x = cell.get("x")
    if x is None or metric not in cell["metrics"]:
      continue
    name = cell["col"] if cell["row"] in table.x else cell["row"]
    m = cell["metrics"][metric]
    series.setdefault(name, []).append((x, m["mean"], 0.0 if math.isnan(m["std"]) else m["std"]))
  if not series:
    raise ValueError(f"{summary['table']}: no cell has an x value and metric {metric!r}")
  fig, ax = plt.subplots(figsize=(5.2, 3.8))
  xs_all = []
  for name, pts in series.items():
    pts.sort()
    xs, ys, es = map(np.asarray, zip(*pts))
    xs_all += list(xs)
    ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=name)
  if logx is None:
    logx = min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 16
  if logx:
    ax.set_xscale("log", base=2)
  if vline is not None:
    ax.axvline(vline, color="gray", linestyle="--", linewidth=1)
  ax.set_xlabel(table.x_label or "x")
  ax.set_ylabel(metric)
  ax.set_title(title or summary["table"])
  if len(series) > 1:
    ax.legend()
  return _save(fig, out)


def define_flags() -> None:
  """The command's flags; defined only when this module is the program, since the CPU suite
  imports it into `experiments.reproduce`, whose own --workdir would clash."""
  flags.DEFINE_multi_string("workdir", [], "a trained run (repeat)")
  flags.DEFINE_multi_string("label", [], "its legend (repeat)")
  flags.DEFINE_string("split", "test", "the protocol split to embed")
  flags.DEFINE_string("summary", None, "summary.json of experiments.reproduce (sweep)")
  flags.DEFINE_string("metric", None, "the table's metric name (sweep), e.g. R@1")
  flags.DEFINE_float("vline", None, "a vertical marker (sweep), e.g. M_min")
  flags.DEFINE_string("out", None, "the PNG to write", required=True)


def main(argv) -> int:
  if len(argv) != 2 or argv[1] not in KINDS:
    raise app.UsageError(f"give one kind of figure, of {', '.join(KINDS)}; got {argv[1:]}")
  kind = argv[1]
  if kind == "sweep":
    if not (FLAGS.summary and FLAGS.metric):
      raise app.UsageError("sweep needs --summary and --metric")
    path = sweep(FLAGS.summary, metric=FLAGS.metric, out=FLAGS.out, vline=FLAGS.vline)
  else:
    if not FLAGS.workdir:
      raise app.UsageError(f"{kind} needs at least one --workdir")
    fn = {"tsne": tsne, "fisher": fisher, "angles": angles, "features3d": features3d}[kind]
    kwargs = {} if kind == "angles" else {"split": FLAGS.split}
    path = fn(FLAGS.workdir, FLAGS.label, out=FLAGS.out, **kwargs)
  print(path)
  return 0


if __name__ == "__main__":
  define_flags()
  app.run(main)
