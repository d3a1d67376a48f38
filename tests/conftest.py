"""Suite-wide set-up: 8 fake CPU devices, so multi-device tests run real pmap/shard_map here.

The flag must be set before JAX initialises its backend, which is why it lives in the root
conftest (imported before any test module). Single-device code still runs on device 0.
"""
import os

_FLAG = "--xla_force_host_platform_device_count=8"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()
# Compiling dominates most tests on a CPU. LLVM's optimisation level changes how fast the
# compiled loops run, not what they compute (no fast-math: floating-point operations are kept in
# XLA's order), and at 0 the whole suite ran 986 s -> 654 s here (README). Tests that time code do not
# run here (benchmarks live in experiments/). DMLAX_TEST_OPT_LEVEL=2 tests at XLA's default.
_OPT = f"--xla_backend_optimization_level={os.environ.get('DMLAX_TEST_OPT_LEVEL', '0')}"
if "--xla_backend_optimization_level" not in os.environ["XLA_FLAGS"]:
  os.environ["XLA_FLAGS"] += " " + _OPT
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow (used only to prepare tfds datasets) must never grab an accelerator in tests.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import contextlib  # noqa: E402
import importlib.util  # noqa: E402

import hypothesis  # noqa: E402
import pytest  # noqa: E402

# tests/run.sh collects every module for doctests (--doctest-modules); this PyTorch reference
# imports torch, which only DMLAX_PARITY=1 installs (its tests importorskip torch first).
collect_ignore = [] if importlib.util.find_spec("torch") else ["models/torch_reference.py"]
# Programs the multi-host tests start as subprocesses; each defines absl flags, so importing
# them in one process (as --doctest-modules collection would) defines flags twice.
collect_ignore += ["multihost/worker.py", "multihost/sigterm_worker.py"]
# tests/run.sh enters the repository through experiments/setup_env.sh, which records the
# caller's directory for relative paths; tests (and the commands they start from their own
# working directories) resolve relative paths against their working directory instead.
os.environ.pop("DMLAX_CALLER_DIR", None)

# Compiling a jitted loss dominates each example's time; keep property tests bounded on 2 cores.
hypothesis.settings.register_profile("dmlax", max_examples=40, deadline=None, derandomize=True)
hypothesis.settings.load_profile("dmlax")

# Modules whose module-scoped fixture is a costly reference that all their tests compare with:
# under xdist each goes whole to one worker, so the reference is computed once, not once on every
# worker that runs one of its tests. (xdist's `xdist_group` marks would say this in the modules,
# but xdist 3.8 renames the marked tests through `item._nodeid`, which pytest 9 no longer reads:
# they group nothing.) tests/test_scheduling.py checks that each of them exists.
ONE_WORKER_MODULES = (
    "tests/train/test_multidevice.py",    # every loss trained on 1 device, pmap and shard_map
    "tests/train/test_class_parallel.py",   # every class-sharded loss on two meshes
    "tests/experiments/test_bench_scale.py",   # one run of the scale benchmark
    "tests/train/test_run_lifecycle.py",    # a finished 4-step run, copied by each test
    "tests/train/test_resume_old_workdir.py",   # a finished 2-step run, copied by each test
)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
  """xdist's default `--dist load` (each test to whichever worker is free), except that the
  tests of each module of `ONE_WORKER_MODULES` go to one worker together."""
  if config.getvalue("dist") != "load":
    return None  # a --dist given on the command line keeps its scheduler
  from xdist.scheduler import LoadScopeScheduling  # pylint: disable=g-import-not-at-top

  class Scheduling(LoadScopeScheduling):
    """Work units: a module of ONE_WORKER_MODULES, or a single test. Units go out largest first
    (xdist's --loadscope-reorder), so those modules start at once, on different workers."""

    def _split_scope(self, nodeid):
      module = nodeid.split("::", 1)[0]
      return module if module in ONE_WORKER_MODULES else nodeid

  return Scheduling(config, log)


@pytest.fixture(scope="session")
def _compilation_cache_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("jax_cache")


@contextlib.contextmanager
def _persistent_cache(path):
  """JAX's persistent compilation cache at `path`, in this process and (through the
  environment) in the processes it starts; afterwards this process compiles as a fresh one."""
  import jax  # pylint: disable=g-import-not-at-top
  from jax.experimental.compilation_cache import compilation_cache as cache_lib  # pylint: disable=g-import-not-at-top
  before = (jax.config.jax_compilation_cache_dir,
            jax.config.jax_persistent_cache_min_compile_time_secs)
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv("JAX_COMPILATION_CACHE_DIR", path)
    mp.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    try:
      yield path
    finally:
      jax.config.update("jax_compilation_cache_dir", before[0])
      jax.config.update("jax_persistent_cache_min_compile_time_secs", before[1])
      # JAX opens the cache once per process and keeps reading it after the directory option
      # is reset: drop it.
      cache_lib.reset_cache()


@pytest.fixture
def compilation_cache(_compilation_cache_dir):
  """JAX's persistent compilation cache in a directory of this xdist worker's, for this test and
  the processes it starts: a program compiled before in this worker, by this test or an earlier
  one, is read back instead of compiled again, as the commands that run many cells do
  (experiments.reproduce, experiments.quickstart). Runs that do not share a program compile as
  before."""
  with _persistent_cache(os.fspath(_compilation_cache_dir)) as path:
    yield path


@pytest.fixture(scope="module")
def module_compilation_cache(_compilation_cache_dir):
  """`compilation_cache` for a whole module, its module fixtures included."""
  with _persistent_cache(os.fspath(_compilation_cache_dir)) as path:
    yield path
