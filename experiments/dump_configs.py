r"""Every config cell of every paper table, built and written as one JSON file.

    python -m experiments.dump_configs --out configs.json

For each `configs/<paper>/<table>.py` that declares a `TABLE`, every (row, column) cell is built
as `TABLE.config(arg)` for arg `row=R,col=C,seed=0`, `row=R,col=C,seed=1` (tables may derive
fields from the seed) and `row=R,col=C,seed=0,smoke`; a cell that cannot run records the
`ValueError` it raises instead. Two dumps compare with `cmp` or `diff`: a refactoring of the
configs or of the table machinery is behaviour-preserving when the dumps are identical.

The tables are found by walking `configs/` and importing modules here, independently of
`experiments.tables`, so the same file can dump an older checkout: from that checkout's root,
`PYTHONPATH=. python /path/to/experiments/dump_configs.py --out before.json`.
"""

from __future__ import annotations

import importlib
import json
import os
import sys

from absl import app
from absl import flags

_OUT = flags.DEFINE_string("out", None, "the JSON file to write", required=True)

ARGS = ("seed=0", "seed=1", "seed=0,smoke")


def _jsonable(x):
  if isinstance(x, dict):
    return {str(k): _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  return x


def table_modules(root: str = "configs") -> list[str]:
  """Every "<paper>/<table>" under `root` whose module declares a TABLE."""
  names = []
  for paper in sorted(os.listdir(root)):
    pdir = os.path.join(root, paper)
    if not os.path.isdir(pdir) or paper.startswith("_"):
      continue
    for f in sorted(os.listdir(pdir)):
      if f.endswith(".py") and not f.startswith("_"):
        module = importlib.import_module(f"configs.{paper}.{f[:-3]}")
        if hasattr(module, "TABLE"):
          names.append(f"{paper}/{f[:-3]}")
  return names


def dump(root: str = "configs") -> dict[str, object]:
  """"<table> row=..,col=..,<arg>" -> the built config as a dict, or {"error": message}."""
  out = {}
  for name in table_modules(root):
    paper, table_name = name.split("/")
    table = importlib.import_module(f"configs.{paper}.{table_name}").TABLE
    for row in table.rows:
      for col in table.cols:
        for arg in ARGS:
          cell = f"row={row},col={col},{arg}"
          try:
            out[f"{name} {cell}"] = _jsonable(table.config(cell).to_dict())
          except ValueError as e:
            out[f"{name} {cell}"] = {"error": str(e)}
  return out


def main(argv) -> int:
  del argv
  sys.path.insert(0, os.getcwd())
  configs = dump()
  with open(_OUT.value, "w") as f:
    json.dump(configs, f, indent=1, sort_keys=True)
  print(f"{len(configs)} configs written to {_OUT.value}")
  return 0


if __name__ == "__main__":
  app.run(main)
