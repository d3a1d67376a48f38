"""`pip install .` as a user gets it: the wheel declares every third-party module dmlax imports,
and installed into a fresh virtual environment that sees only what the wheel requires, every
module imports and the embedded datasets prepare and read.

Installing JAX, TensorFlow & co. from the network would take minutes, so the fresh environment
borrows them from this test environment, but only the distributions that `dmlax[train]`'s
requirements reach (resolved here, versions checked against the wheel's specifiers): their
files are linked into one directory that a `.pth` file of the fresh venv puts on its path. A
dependency the wheel forgets is then missing there, as it would be after a real install.
"""

import ast
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from importlib import metadata

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Imported inside a function and only for one file format; a clear ValueError names it when it
# is missing (dmlax.models.pretrained), so it is deliberately not a requirement.
OPTIONAL_IMPORTS = {"torch": "reading .pth/.pt weights (dmlax.models.pretrained)"}
# Which extra each subpackage's imports must be covered by (the core covers dmlax/*.py).
SUBPACKAGE_EXTRA = {"losses": None, "metrics": "metrics", "models": "models", "data": "data",
                    "train": "train"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
  """The wheel built from a copy of the checkout (building in place would write build/ and
  dmlax.egg-info into it); setuptools from this environment, no network."""
  tmp = tmp_path_factory.mktemp("wheel")
  src = tmp / "src"
  src.mkdir()
  for name in os.listdir(REPO):  # pyproject.toml, README.md and any licence files
    if os.path.isfile(os.path.join(REPO, name)):
      shutil.copy2(os.path.join(REPO, name), src / name)
  shutil.copytree(os.path.join(REPO, "dmlax"), src / "dmlax",
                  ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
  out = subprocess.run(
      [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
       "--wheel-dir", str(tmp / "dist"), str(src)],
      capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
  (path,) = (tmp / "dist").glob("dmlax-*.whl")
  return path


def _requires(wheel_path):
  with zipfile.ZipFile(wheel_path) as z:
    (meta,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
    text = z.read(meta).decode()
  return [Requirement(line.split(":", 1)[1].strip()) for line in text.splitlines()
          if line.startswith("Requires-Dist:")]


def _for_extras(requires, extras):
  """The requirements that apply with `extras`, self-references (`dmlax[x]`) expanded."""
  extras, out, seen = set(extras), [], set()
  while True:
    new = set()
    for req in requires:
      if req.marker is not None:
        applies = [req.marker.evaluate({**default_environment(), "extra": e})
                   for e in extras | {""}]
        if not any(applies):
          continue
      if canonicalize_name(req.name) == "dmlax":
        new |= set(req.extras) - extras
      elif (str(req), req.marker and str(req.marker)) not in seen:
        seen.add((str(req), req.marker and str(req.marker)))
        out.append(req)
    if not new:
      return out
    extras |= new


def _imports(source):
  """Top-level names of the absolute imports in `source`."""
  names = set()
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Import):
      names |= {a.name.split(".")[0] for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      names.add(node.module.split(".")[0])
  return names


def test_wheel_declares_every_third_party_import(wheel):
  requires = _requires(wheel)
  providers = metadata.packages_distributions()
  with zipfile.ZipFile(wheel) as z:
    sources = {n: z.read(n).decode() for n in z.namelist() if n.endswith(".py")}
  assert "dmlax/losses/__init__.py" in sources and "dmlax/train/loop.py" in sources
  problems = []
  for path, source in sorted(sources.items()):
    parts = path.split("/")
    sub = parts[1] if len(parts) > 2 else None
    assert sub is None or sub in SUBPACKAGE_EXTRA, f"{path}: a new subpackage needs an extra"
    extra = SUBPACKAGE_EXTRA.get(sub)
    declared = {canonicalize_name(r.name) for r in _for_extras(requires, [extra] if extra else [])}
    for name in sorted(_imports(source) - set(sys.stdlib_module_names) - {"dmlax", "__future__"}):
      if name in OPTIONAL_IMPORTS:
        continue
      dists = {canonicalize_name(d) for d in providers.get(name, [])}
      if not dists:
        problems.append(f"{path}: imports {name}, which no installed distribution provides")
      elif not dists & declared:
        problems.append(f"{path}: imports {name} (from {sorted(dists)}), not declared in "
                        f"{'dmlax[' + extra + ']' if extra else 'the core dependencies'}")
  assert not problems, "\n".join(problems)
  # The losses need JAX and NumPy, nothing else.
  assert {canonicalize_name(r.name) for r in _for_extras(requires, [])} == {"jax", "numpy"}


def _closure(requires):
  """{distribution: Distribution} that `requires` reaches in this environment, each checked
  against every specifier that asks for it."""
  installed = {canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions()}
  found, todo, problems = {}, [(r, "dmlax[train]") for r in requires], []
  while todo:
    req, by = todo.pop()
    name = canonicalize_name(req.name)
    dist = installed.get(name)
    if dist is None:
      problems.append(f"{req} (required by {by}) is not installed in this environment")
      continue
    if not req.specifier.contains(dist.version, prereleases=True):
      problems.append(f"{req} (required by {by}) but {dist.version} is installed")
    extras = set(req.extras)
    if name in found and extras <= found[name][1]:
      continue
    extras |= found.get(name, (None, set()))[1]
    found[name] = (dist, extras)
    for sub in dist.requires or []:
      sub = Requirement(sub)
      if sub.marker is None or any(sub.marker.evaluate({**default_environment(), "extra": e})
                                   for e in extras | {""}):
        todo.append((sub, name))
  assert not problems, "\n".join(problems)
  return {name: dist for name, (dist, _) in found.items()}


def _top_entries(dist):
  for f in dist.files or ():
    parts = f.parts
    if parts and parts[0] not in ("..", "__pycache__"):
      yield parts[0], parts


def _link_only(dists, directory):
  """Links the files of `dists` (installed here) into `directory`, by top-level entry; a
  top-level directory that other distributions share (a namespace such as `google`) is linked
  one level deeper, so that theirs stay out."""
  owners = {}
  for d in metadata.distributions():
    for top, _ in _top_entries(d):
      owners.setdefault(top, set()).add(canonicalize_name(d.metadata["Name"]))
  wanted = set(dists)
  for name, dist in dists.items():
    assert dist.files is not None, f"{name} has no RECORD; cannot tell its files"
    root = dist.locate_file("")
    for top, parts in _top_entries(dist):
      shared = not owners[top] <= wanted and len(parts) >= 2
      rel = parts[:2] if shared else parts[:1]
      target = directory.joinpath(*rel)
      if target.exists() or target.is_symlink():
        continue
      target.parent.mkdir(parents=True, exist_ok=True)
      target.symlink_to(os.path.join(root, *rel))


def test_wheel_in_a_fresh_venv(wheel, tmp_path):
  requires = _for_extras(_requires(wheel), ["train"])
  deps = _closure(requires)
  assert "tensorflow-datasets" in deps and "dmlax" not in deps
  shared = tmp_path / "deps"
  shared.mkdir()
  _link_only(deps, shared)

  venv = tmp_path / "venv"
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                 timeout=60)
  python = str(venv / "bin" / "python")
  pip = [sys.executable, "-m", "pip", "--python", python]
  out = subprocess.run(pip + ["install", "--no-deps", "--no-index", str(wheel)],
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
  purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                            "['purelib'])"], capture_output=True, text=True, check=True,
                           timeout=60).stdout.strip()
  with open(os.path.join(purelib, "dmlax_test_dependencies.pth"), "w") as f:
    f.write(str(shared) + "\n")
  # pip's own view of the fresh environment: every installed distribution's requirements met.
  out = subprocess.run(pip + ["check"], capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]

  # The main job as a user runs it: the checkout's experiments/ and configs/ (not dmlax/) in
  # the working directory, dmlax from the wheel.
  work = tmp_path / "user"
  for top in ("experiments", "configs"):
    shutil.copytree(os.path.join(REPO, top), work / top,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
  script = textwrap.dedent(f"""
      import importlib, json, pkgutil, runpy, sys
      import dmlax
      assert dmlax.__file__.startswith({purelib!r}), dmlax.__file__  # the wheel, not the tree
      modules = [m.name for m in pkgutil.walk_packages(dmlax.__path__, "dmlax.")]
      for name in modules:
        importlib.import_module(name)
      import tensorflow_datasets as tfds
      from dmlax import data
      offline = [n for n in data.names() if data.registry.REGISTRY[n].manual is None and
                 tfds.builder_cls(data.registry.REGISTRY[n].tfds_name).__module__.startswith(
                     "dmlax.data.builders.")]
      for name in offline:
        data.prepare(name)
        info = data.info(name)
        batch = next(data.train_iterator(name, batch_size=8, seed=0, task=info.task))
        assert batch["image"].shape[0] == 8 and info.num_examples[info.train_split] > 0
      print("modules", len(modules), "prepared", ",".join(offline))
      sys.path.append({str(work)!r})
      sys.argv = ["train", "--config=configs/quickstart.py:mpa,smoke", "--workdir=run",
                  "--config.num_train_steps=2", "--config.parallel=single"]
      try:
        runpy.run_module("experiments.train", run_name="__main__")
      except SystemExit as e:
        assert not e.code, e.code
      results = json.load(open("run/results.json"))
      print("trained", results["steps"], "recall@1", results["final"]["recall@1"])
      """)
  env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
  env.update(DMLAX_DATA_DIR=str(tmp_path / "data"), TF_CPP_MIN_LOG_LEVEL="2",
             JAX_PLATFORMS="cpu")
  out = subprocess.run([python, "-I", "-c", script], cwd=work, env=env, capture_output=True,
                       text=True, timeout=300)
  assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
  match = re.search(r"modules (\d+) prepared (\S+)", out.stdout)
  assert match and int(match.group(1)) >= 40, out.stdout
  assert "digits" in match.group(2).split(","), out.stdout
  match = re.search(r"trained (\d+) recall@1 ([0-9.]+)", out.stdout)
  assert match and int(match.group(1)) == 2 and 0 < float(match.group(2)) <= 1, out.stdout


def test_prepare_names_a_missing_module_not_the_network(tmp_path, monkeypatch):
  from dmlax import data
  from dmlax.data.builders import digits

  def missing(self, **kwargs):
    del self, kwargs
    raise ModuleNotFoundError("No module named 'importlib_resources'", name="importlib_resources")

  monkeypatch.setattr(digits.Digits, "download_and_prepare", missing)
  with pytest.raises(ImportError, match=r"'importlib_resources'.*dmlax\[data\]"):
    data.prepare("digits", data_dir=str(tmp_path))
