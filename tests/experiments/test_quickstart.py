"""The main job (`python -m experiments.quickstart`, what experiments/quickstart.sh runs): its
configs, its paired statistics against SciPy, and one smoke run end to end as a user runs it."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as scipy_stats

from configs import quickstart
from experiments import quickstart as quickstart_main
from experiments import reference_rows

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_configs_rates_tasks_and_bad_arguments():
  mpa = quickstart.get_config("mpa")
  # MPA section 4.2 and ProxyAnchor's code: proxies at 100x the backbone's rate.
  assert mpa.optimizer.head_lr == pytest.approx(100 * mpa.optimizer.lr)
  assert (mpa.loss.name, mpa.loss.num_proxies, mpa.dataset.task) == ("mpa", 2, "retrieval")
  soft = quickstart.get_config("softmax")
  same = ("batch_size", "num_train_steps", "seed")
  assert [soft[k] for k in same] == [mpa[k] for k in same]
  assert soft.model.to_dict() == mpa.model.to_dict() and soft.optimizer.lr == mpa.optimizer.lr
  val = quickstart.get_config("mpa,task=validation,head_lr=0.01,seed=3")
  assert (val.dataset.task, val.optimizer.head_lr, val.seed) == ("validation", 0.01, 3)
  longer = quickstart.get_config("softmax,task=train40,steps=600")
  assert (longer.dataset.task, longer.num_train_steps) == ("train40", 600)
  with pytest.raises(ValueError, match="steps must be > 0"):
    quickstart.get_config("mpa,steps=-3")
  with pytest.raises(ValueError, match="task must be one of"):
    quickstart.get_config("mpa,task=test")
  with pytest.raises(ValueError, match="head_lr must be > 0"):
    quickstart.get_config("mpa,head_lr=-1")
  with pytest.raises(ValueError, match="must be one of"):
    quickstart.get_config("triplet")


def test_paired_lines_match_scipy():
  a = {0: 0.61, 1: 0.55, 2: 0.70}
  b = {0: 0.60, 1: 0.542, 2: 0.69}
  runs = {"x": {s: {"recall@1": v, "map@r": v / 2, "ndcg@4": v} for s, v in a.items()},
          "y": {s: {"recall@1": v, "map@r": v / 2 + 0.01, "ndcg@4": v} for s, v in b.items()}}
  runs["y"][3] = runs["y"][0]  # an unpaired seed is left out
  lines = quickstart_main.paired_lines("x", "y", runs)
  assert "n = 3 seeds [0, 1, 2]" in lines[0]
  r1 = next(line for line in lines if line.startswith("| Recall@1"))
  cells = [c.strip() for c in r1.strip("|").split("|")]
  d = 100 * (np.array(list(a.values())) - np.array(list(b.values())))
  half = scipy_stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
  p = scipy_stats.ttest_rel(100 * np.array(list(a.values())),
                            100 * np.array(list(b.values()))).pvalue
  assert cells[3] == f"{d.mean():+.2f}"
  assert cells[4] == f"[{d.mean() - half:+.2f}, {d.mean() + half:+.2f}]"
  assert cells[5] == f"{p:.3f}" and cells[6] == "x higher"
  mapr = next(line for line in lines if line.startswith("| MAP@R"))
  assert mapr.rstrip(" |").endswith("x lower")


def test_smoke_job_prints_runs_references_and_paired_statistics(tmp_path):
  out = subprocess.run(
      [sys.executable, "-m", "experiments.quickstart", "--smoke", "--seeds", "2",
       "--workdir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600,
      check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  text = out.stdout
  # One progress line per run: preparing, 2 losses x 2 seeds, the references.
  progress = [line for line in text.splitlines() if line.startswith("[")]
  assert [p.split("]")[0] for p in progress if "training" in p or "preparing" in p
          or "references" in p] == ["[0/5", "[1/5", "[2/5", "[3/5", "[4/5", "[5/5"]
  runs = {}
  for loss in ("mpa", "softmax"):
    for seed in (0, 1):
      with open(tmp_path / loss / f"seed{seed}" / "results.json") as f:
        r = json.load(f)
      assert r["status"] == "done" and r["config"]["seed"] == seed
      runs.setdefault(loss, {})[seed] = r["final"]
      assert f"| {loss} (seed {seed}) | {100 * r['final']['recall@1']:.2f} |" in text
  # The printed comparison is the paired statistics of the runs' own results.
  for line in quickstart_main.paired_lines("mpa", "softmax", runs)[2:]:
    assert line in text
  # The raw-pixel row: Recall@1 of the cosine of the flattened test images, in float64 NumPy.
  config = quickstart.get_config("mpa,smoke")
  images, labels = reference_rows.split_arrays(config, "test")
  x = images.reshape(len(images), -1).astype(np.float64)
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  sim = x @ x.T
  np.fill_diagonal(sim, -np.inf)
  r1 = 100 * np.mean(labels[np.argmax(sim, axis=1)] == labels)
  assert f"| raw pixels (reference) | {r1:.2f} |" in text
  assert "| untrained network (reference) |" in text
