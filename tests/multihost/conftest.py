"""A digits data_dir of these tests' own, prepared once for all xdist workers (a file lock makes
the others wait), so that no other test prepares into the same directory at the same time."""
import fcntl
import os

import pytest

from dmlax import data


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
  base = tmp_path_factory.getbasetemp()
  root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "multihost_data"
  root.mkdir(exist_ok=True)
  with open(root / ".lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not (root / ".done").exists():
      data.prepare("digits", data_dir=os.fspath(root))
      (root / ".done").touch()
  return os.fspath(root)
