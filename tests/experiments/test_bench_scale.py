"""The scale benchmark at a tiny size: its rows, its memory accounting and its checks.

One run of `experiments.bench_scale.main` (C = 64 on the 8 fake devices, one round): every loss
case has a single-device row and a class-sharded row (or a skip with its reason, in the table
too); XLA's classifier + optimiser-state bytes are exactly those of the arrays (momentum SGD: two
(D, C)-sized arrays) and 1/8 of them per device when sharded; the sharded step's loss equals the
single-device one and every dmlax loss equals its plain reference.
"""

import json

import numpy as np
import pytest

from experiments import bench_scale
from experiments import scale_cases

B, D, C, K = 8, 16, 64, 2


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  path = tmp_path_factory.mktemp("scale") / "scale.json"
  md = path.with_suffix(".md")
  result = bench_scale.main(["--classes", str(C), "--batch", str(B), "--dim", str(D),
                             "--mpa_k", str(K), "--rounds", "1", "--json", str(path),
                             "--out", str(md)])
  return result, json.loads(path.read_text()), md.read_text()


def test_rows_and_per_device_classifier_bytes(run):
  result, from_json, table = run
  assert from_json == json.loads(json.dumps(result))
  skipped = {s["loss"]: s["reason"] for s in result["skipped"]}
  for case in scale_cases.cases(K):
    rows = [r for r in result["memory"] if r["loss"] == case.name and r["classes"] == C]
    assert [r["layout"] for r in rows][0] == "single device"
    single, sharded = rows
    # Momentum SGD: the classifier (or proxies) and one momentum array of its size, float32.
    assert single["classifier_and_state"] == 2 * C * D * (K if "MPA" in case.name else 1) * 4
    if case.name in skipped:
      assert "class_axis_name" in skipped[case.name] and sharded["skipped"] == skipped[case.name]
      assert f"SKIPPED {case.name}: {skipped[case.name]}" in table
      continue
    assert sharded["layout"] == "8-way sharded (per device)"
    assert sharded["classifier_and_state"] == sharded["classifier_and_state_from_shapes"]
    assert 8 * sharded["classifier_and_state"] == single["classifier_and_state"]
    assert sharded["to_ideal"] <= 1.2
    assert f"| {case.name} | {C} | 8-way sharded (per device) |" in table
  # softmax CE takes class_axis_name today, so at least one case is measured sharded.
  assert "softmax CE" not in skipped


def test_sharded_loss_and_references_agree(run):
  result, _, _ = run
  for row in result["time"]:
    if row["note"].startswith("skipped"):
      assert row["sharded_s"] is None
      continue
    assert row["single_s"] > 0 and row["sharded_s"] > 0
    assert row["loss_rel_diff"] < 1e-5, row
  assert [r["loss"] for r in result["single_device_speed"]] == [
      c.name for c in scale_cases.cases(K)]
  for row in result["single_device_speed"]:
    assert row["dmlax_ms"] > 0 and row["reference_ms"] > 0, row
    assert row["value_rel_diff"] < 1e-5 and row["grad_max_abs_diff"] < 1e-4, row
    assert np.isfinite(row["ratio"])


def test_classes_must_divide_over_devices():
  with pytest.raises(ValueError, match="multiples of --devices"):
    bench_scale.main(["--classes", "60", "--batch", "4", "--dim", "8", "--losses", "softmax"])
