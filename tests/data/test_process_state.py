"""dmlax.data is a library: importing and using it (preparing a dataset from scratch, reading
and iterating it) leaves the process's environment variables and absl flags as they were."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A fresh interpreter, so that nothing imported before (by pytest or other tests) hides a change.
SCRIPT = r"""
import json, os, sys
# TensorFlow, h5py and others set variables of their own when imported: import them first, so
# that only what dmlax does is compared.
import grain, jax, tensorflow, tensorflow_datasets
before = dict(os.environ)
from absl import flags
from dmlax import data
data_dir = sys.argv[1]
data.prepare("digits", data_dir=data_dir)        # builds it: tfds, TensorFlow
data.info("digits", data_dir=data_dir)
batch = next(data.train_iterator("digits", batch_size=8, seed=0, data_dir=data_dir))
try:
  data.train_iterator("digits", batch_size=8, seed=0, data_dir=data_dir, num_workers=1)
  workers_error = ""
except ValueError as e:
  workers_error = str(e)
after = dict(os.environ)
changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
print(json.dumps({"changed": changed, "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
                  "parsed": flags.FLAGS.is_parsed(),
                  "batch": list(batch["image"].shape), "workers_error": workers_error}))
"""


def test_using_dmlax_data_leaves_environment_and_flags_alone(tmp_path):
  env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
  out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "tfds")], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300, check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result["changed"] == [] and result["cuda"] is None, result
  assert result["parsed"] is False
  assert result["batch"][0] == 8
  # Worker processes need parsed flags: a clear error saying how, not grain's own.
  assert "absl.app.run" in result["workers_error"], result
