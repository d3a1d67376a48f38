"""Prepares `digits` and `multicenter` once per test session (shared by xdist workers)."""
import fcntl
import os

import pytest

from dmlax import data


@pytest.fixture(scope="session")
def prepared_dir(tmp_path_factory):
  """A tfds data_dir holding the prepared embedded datasets."""
  # xdist workers each get their own basetemp under one shared parent; prepare there once.
  root = tmp_path_factory.getbasetemp().parent / "dmlax_data"
  root.mkdir(exist_ok=True)
  with open(root / ".lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not (root / ".done").exists():
      for name in ("digits", "multicenter"):
        data.prepare(name, data_dir=os.fspath(root))
      (root / ".done").touch()
  return os.fspath(root)
