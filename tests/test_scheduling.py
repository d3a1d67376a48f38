"""tests/conftest.py's xdist scheduling: the modules it keeps on one worker exist."""
import os

from tests import conftest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_one_worker_modules_exist():
  missing = [m for m in conftest.ONE_WORKER_MODULES if not os.path.isfile(os.path.join(REPO, m))]
  assert not missing, f"tests/conftest.py ONE_WORKER_MODULES names no file: {missing}"
