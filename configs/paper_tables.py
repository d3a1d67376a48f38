"""What every paper-table config shares: the table declaration, the argument parser, `smoke`.

A table module (`configs/<paper>/<table>.py`) opens with a docstring (paper, table, command,
reported numbers, hardware) and declares one `Table`:

    TABLE = paper_tables.Table(
        name="gsl/table1a", base=recipe.food101,
        metrics=(paper_tables.Metric("Error (%)", "top1_error", scale=100.0),),
        rows={"softmax": {"loss.name": "softmax"}, ...},   # dotted-key config overrides
        cols={"resnet50": {}},                               # the table's columns, same form
        reported={("softmax", "resnet50"): ("19.67 ± 0.48",), ...})

    def get_config(arg=None):
      return TABLE.config(arg)

`arg` is big_vision style, comma-separated `key=value` pairs and bare flags, in any order:
`row=<row>`, `col=<col>`, `seed=<int>`, `smoke`, and `pretrained=<weights file>`:

    python -m experiments.train --config configs/gsl/table1a.py:row=type2_124,seed=1 --workdir W
    python -m experiments.reproduce --table gsl/table1a --seeds 3

`smoke` shrinks any config to two steps of a small CNN on the embedded `digits` data (or
`multicenter`, when the table trains on it) on one CPU device, keeping the loss, its
hyperparameters and the head options: a test runs every table this way.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping

import ml_collections

# Keyword arguments of small_cnn's head that a smoke config keeps from the paper's model.
_SMOKE_HEAD_KEYS = ("pooling", "gem_p", "extra_bn_relu", "bn_neck", "l2_normalize",
                    "feature_dropout", "embedding_dim")
_SMOKE_MAX_DIM = 16


@dataclasses.dataclass(frozen=True)
class Metric:
  """A column of the paper's table and how to read it from the trainer's final metrics.

  `value = scale * metrics[key]`, or `scale * (1 - metrics[key])` with `complement` (accuracy
  from `top1_error`). `key` may also name an extra statistic that `experiments.tables`
  computes from the trained workdir ("mean_class_angle").
  """
  name: str
  key: str
  scale: float = 100.0
  complement: bool = False
  higher_is_better: bool = True

  def read(self, metrics: Mapping[str, float]) -> float:
    if self.key not in metrics:
      return math.nan
    v = float(metrics[self.key])
    return self.scale * ((1.0 - v) if self.complement else v)


@dataclasses.dataclass(frozen=True)
class Claim:
  """A paper's claim, checked on our seed means of `metric` over `cells` ((row, col) pairs).

  `relation`: "<" or ">" (the first cell's mean below / above the second's), "increasing" or
  "decreasing" (strictly monotone along the cells), or "within:<tol>" (the two means differ by
  less than `tol`).
  """
  text: str
  metric: str
  cells: tuple[tuple[str, str], ...]
  relation: str

  def __post_init__(self):
    ok = self.relation in ("<", ">", "increasing", "decreasing") or (
        self.relation.startswith("within:"))
    if not ok:
      raise ValueError(f"Claim.relation {self.relation!r}: expected <, >, increasing, "
                       "decreasing or within:<tol>")


@dataclasses.dataclass(frozen=True)
class Table:
  """One table or figure of a paper as configs.

  Attributes:
    name: "<paper>/<table>", the module path under `configs/`.
    base: `() -> ConfigDict`, the paper's recipe for this table.
    metrics: the table's columns of numbers.
    rows: row name -> overrides (dotted keys of the config -> values; a dict value replaces a
      whole ConfigDict field such as `loss.kwargs`).
    cols: column name -> overrides (datasets, backbones, embedding widths); one unnamed column
      when the table has none.
    reported: (row, col) -> the paper's numbers for `metrics`, as printed ("19.67 ± 0.48"; "-"
      where the paper prints none).
    unavailable: (row or col) -> why dmlax cannot run it (a dataset it does not register, a
      method the trainer lacks); `experiments.tables` reports these instead of running them.
    seed_field: extra config field set from the seed ("dataset.task" with a format string such as
      "trial{seed3}" for tables averaged over the protocol's trials).
    claims: checks of the paper's claims (the CPU suite).
    hardware: what the paper's runs need.
    default_row: the row when `arg` names none (default: the first).
    x, x_label: for sweeps (figures), the x value of each row or column and its axis label.
  """
  name: str
  base: Callable[[], ml_collections.ConfigDict]
  metrics: tuple[Metric, ...]
  rows: Mapping[str, Mapping[str, Any]]
  cols: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=lambda: {"-": {}})
  reported: Mapping[tuple[str, str], tuple[str, ...]] = dataclasses.field(default_factory=dict)
  unavailable: Mapping[str, str] = dataclasses.field(default_factory=dict)
  seed_field: tuple[str, str] | None = None
  claims: tuple[Claim, ...] = ()
  hardware: str = ""
  default_row: str | None = None
  x: Mapping[str, float] = dataclasses.field(default_factory=dict)
  x_label: str = ""

  def __post_init__(self):
    for (row, col) in self.reported:
      if row not in self.rows or col not in self.cols:
        raise ValueError(f"{self.name}: reported numbers for unknown cell ({row!r}, {col!r})")

  def config(self, arg: str | None = None) -> ml_collections.ConfigDict:
    """The config of one cell: `arg` = "row=..,col=..,seed=..[,smoke][,pretrained=..]"."""
    a = parse_arg(arg, row=self.default_row or next(iter(self.rows)),
                  col=next(iter(self.cols)), seed=0, smoke=False, pretrained="")
    if a.row not in self.rows:
      raise ValueError(f"configs/{self.name}.py: row={a.row!r} is not a row of this table; "
                       f"rows: {', '.join(self.rows)}")
    if a.col not in self.cols:
      raise ValueError(f"configs/{self.name}.py: col={a.col!r} is not a column of this table; "
                       f"columns: {', '.join(self.cols)}")
    why = self.why_unavailable(a.row, a.col)
    if why and not a.smoke:
      raise ValueError(f"configs/{self.name}.py row={a.row}, col={a.col} cannot run in dmlax: "
                       f"{why} (the smoke argument still runs its loss on embedded data)")
    c = self.base()
    apply_overrides(c, self.cols[a.col], f"configs/{self.name}.py col={a.col}")
    apply_overrides(c, self.rows[a.row], f"configs/{self.name}.py row={a.row}")
    c.seed = a.seed
    if self.seed_field is not None:
      field, fmt = self.seed_field
      apply_overrides(c, {field: fmt.format(seed=a.seed, seed3=a.seed % 3)}, "seed")
    if a.pretrained:
      c.model.pretrained = a.pretrained
    if a.smoke:
      smoke(c)
    return c

  def cells(self, rows=None, cols=None) -> list[tuple[str, str]]:
    rows = list(rows or self.rows)
    cols = list(cols or self.cols)
    for r in rows:
      if r not in self.rows:
        raise ValueError(f"{self.name}: unknown row {r!r}; rows: {', '.join(self.rows)}")
    for c in cols:
      if c not in self.cols:
        raise ValueError(f"{self.name}: unknown column {c!r}; columns: {', '.join(self.cols)}")
    return [(r, c) for c in cols for r in rows]

  def why_unavailable(self, row: str, col: str) -> str | None:
    return self.unavailable.get(row) or self.unavailable.get(col)

  def x_of(self, row: str, col: str) -> float | None:
    return self.x.get(row, self.x.get(col))


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """big_vision-style `"k1=v1,k2=v2,flag"` -> ConfigDict, values typed like `defaults`.

  Raises:
    ValueError: a key that `defaults` does not have, or a value of the wrong type.

  Example:
    >>> parse_arg("row=softmax,smoke", row="x", seed=0, smoke=False).smoke
    True
  """
  out = dict(defaults)
  for item in (arg or "").split(","):
    item = item.strip()
    if not item:
      continue
    key, sep, value = item.partition("=")
    if key not in defaults:
      raise ValueError(f"config argument {key!r} is not one of {sorted(defaults)} (in {arg!r})")
    kind = type(defaults[key])
    if not sep:
      if kind is not bool:
        raise ValueError(f"config argument {key!r} needs a value: {key}=...")
      out[key] = True
    elif kind is bool:
      if value.lower() not in ("true", "false", "1", "0"):
        raise ValueError(f"config argument {key}={value!r}: expected true/false")
      out[key] = value.lower() in ("true", "1")
    else:
      try:
        out[key] = kind(value)
      except ValueError as e:
        raise ValueError(f"config argument {key}={value!r}: expected {kind.__name__}") from e
  return ml_collections.ConfigDict(out)


def apply_overrides(config: ml_collections.ConfigDict, overrides: Mapping[str, Any],
                    where: str) -> None:
  """Sets dotted `overrides` in `config`; a key the config lacks is an error naming it."""
  for dotted, value in overrides.items():
    *parents, leaf = dotted.split(".")
    node = config
    for p in parents:
      if p not in node:
        raise ValueError(f"{where}: config has no field {dotted!r}")
      node = node[p]
    if leaf not in node and parents[-1:] not in (["kwargs"], ["aux_kwargs"]):
      raise ValueError(f"{where}: config has no field {dotted!r}")
    if isinstance(value, Mapping):
      value = ml_collections.ConfigDict(dict(value))
    node[leaf] = value


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Shrinks `c` in place to two steps of small_cnn on embedded data on one CPU device.

  Kept: the loss and its hyperparameters, the auxiliary loss, the head options small_cnn takes
  (pooling, GeM, extra BN-ReLU, BN neck, L2, feature DropOut, embedding width up to 16), the
  optimiser and schedule kinds, the sampler. Changed: dataset -> `digits` (`multicenter` stays),
  with the table's protocol; model -> small_cnn; 2 steps of batch 16; one step per "epoch", so
  that a softmax-first phase of one epoch (W-Softmax) switches losses at step 1.
  """
  retrieval = c.dataset.task == "retrieval" or c.dataset.name in (
      "cub200", "cars196", "sop", "inshop") or (c.dataset.name == "multicenter" and
                                                c.dataset.task != "classification")
  if c.dataset.name != "multicenter":
    c.dataset.name = "digits"
  c.dataset.task = "retrieval" if retrieval else "classification"
  c.dataset.image_size = None
  c.dataset.augment = "none"
  c.dataset.data_dir = None
  kwargs = {k: v for k, v in c.model.kwargs.to_dict().items() if k in _SMOKE_HEAD_KEYS}
  if kwargs.get("pooling") == "none":
    kwargs["pooling"] = "avg"
  dim = kwargs.get("embedding_dim")
  kwargs["embedding_dim"] = min(int(dim), _SMOKE_MAX_DIM) if dim else _SMOKE_MAX_DIM
  c.model.name = "small_cnn"
  c.model.kwargs = ml_collections.ConfigDict(kwargs)
  c.model.pretrained = None
  c.optimizer.new_layers = ""
  c.parallel = "single"
  c.half_precision = False
  c.batch_size = 16
  c.num_epochs = 0.0
  c.num_train_steps = 2
  c.steps_per_epoch = 1
  if c.loss.softmax_epochs:
    c.loss.softmax_epochs = 1.0
  c.optimizer.warmup_epochs = min(c.optimizer.warmup_epochs, 1.0)
  c.schedule.warmup_steps = min(c.schedule.warmup_steps, 1)
  c.eval.verification_dataset = None  # the smoke run evaluates on digits
  c.log_every_steps = 1
  c.checkpoint.every_steps = 2
  c.checkpoint.async_save = False
  c.eval.every_steps = 0
  c.eval.batch_size = 256
  c.eval.ks = tuple(k for k in c.eval.ks if k <= 8) or (1,)
  return c
