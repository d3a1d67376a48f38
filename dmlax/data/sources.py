"""Prepared tfds data on disk: where it lives, `prepare`, `info`, and random access to a split.

Reading goes through `tfds.builder(...).as_data_source` (array_record), which needs no
TensorFlow; TensorFlow is imported only by `prepare` (tfds's writers use it). The data
directory is `data_dir`, else `$DMLAX_DATA_DIR`, else `~/tensorflow_datasets` (tfds's own
default).
"""
import os
from collections.abc import Sequence

import numpy as np

from dmlax.data import registry


class DataNotFoundError(FileNotFoundError):
  """A dataset is not prepared, or only partly, in the data directory."""


def default_data_dir(data_dir: str | os.PathLike | None = None) -> str:
  """`data_dir`, else `$DMLAX_DATA_DIR`, else `~/tensorflow_datasets`."""
  if data_dir is not None:
    return os.fspath(data_dir)
  return os.environ.get("DMLAX_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")


def _tfds():
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from dmlax.data import builders  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  return tfds


# Prepared builders by (name, config, data_dir): each construction reads dataset_info.json (tfds
# logs "Load dataset info" every time), and a run opens the same splits at every evaluation.
_PREPARED_BUILDERS: dict = {}


def _builder(entry: registry.Entry, task: registry.Task, data_dir: str):
  key = (entry.tfds_name, task.config, os.fspath(data_dir))
  builder = _PREPARED_BUILDERS.get(key)
  if builder is None:
    builder = _tfds().builder(entry.tfds_name, data_dir=data_dir, config=task.config,
                              file_format="array_record")
    if builder.is_prepared():  # an unprepared one changes when prepare() runs
      _PREPARED_BUILDERS[key] = builder
  return builder


def _prepare_hint(name: str, task: str, entry: registry.Entry, data_dir: str) -> str:
  hint = (f"prepare it with `python experiments/prepare_data.py --dataset {name} --task {task}"
          f" --data_dir {data_dir}")
  if entry.manual:
    return hint + " --manual_dir MANUAL_DIR`, where " + entry.manual
  return hint + "`"


def prepare(name: str, data_dir: str | None = None, manual_dir: str | None = None,
            task: str | None = None) -> str:
  """Downloads (or reads from `manual_dir`) and prepares `name` as array_record; returns its dir.

  The embedded `digits` and generated `multicenter` build offline in seconds. Datasets that
  need a manual download raise `DataNotFoundError` saying what to download and where to put
  it. The label index every protocol needs is computed and cached here too. An already
  prepared dataset returns at once, without importing TensorFlow.

  Example:
    >>> prepare("digits", data_dir="/tmp/tfds")  # doctest: +SKIP
  """
  entry, task_name, task_obj = registry.lookup(name, task)
  data_dir = default_data_dir(data_dir)
  tfds = _tfds()
  builder = _builder(entry, task_obj, data_dir)
  if builder.is_prepared():
    split_labels(name, task=task_name, data_dir=data_dir)
    return os.fspath(builder.data_dir)
  if entry.manual:
    manual = os.fspath(manual_dir or os.path.join(data_dir, "downloads", "manual"))
    missing = [f for f in entry.manual_files if not os.path.exists(os.path.join(manual, f))]
    if missing:
      raise DataNotFoundError(
          f"{name} needs a manual download; {', '.join(missing)} not found in {manual}. "
          f"{entry.manual.replace('MANUAL_DIR', manual)} (pass --manual_dir to look elsewhere)")
    manual_dir = manual
  _tensorflow_off_accelerators()
  config = tfds.download.DownloadConfig(manual_dir=manual_dir)
  try:
    builder.download_and_prepare(download_config=config)
  except ImportError as e:
    # tfds imports some of its dependencies (TensorFlow, importlib_resources) only here.
    raise ImportError(f"preparing {name} needs the module {e.name or str(e)!r}, which is not "
                      "installed; `pip install 'dmlax[data]'` installs what dmlax.data needs"
                      ) from e
  except Exception as e:  # pylint: disable=broad-except
    # tfds surfaces missing/partial files and failed downloads as many exception types
    # (TensorFlow's NotFoundError among them); say what failed and how to retry instead.
    cause = (f"check the manual download: {entry.manual.replace('MANUAL_DIR', manual_dir)}"
             if entry.manual else "tfds downloads public datasets and needs network access "
             "to their host")
    raise DataNotFoundError(
        f"preparing {name} failed ({type(e).__name__}: {str(e)[:500]}). {cause}. An "
        f"interrupted run leaves an incomplete.* directory under "
        f"{os.path.join(data_dir, entry.tfds_name)}; delete it before retrying") from e
  split_labels(name, task=task_name, data_dir=data_dir)  # Caches the label index.
  return os.fspath(builder.data_dir)


def _tensorflow_off_accelerators() -> None:
  """Hides GPUs from TensorFlow (imported by tfds's writers, which only encode records), so that
  preparing never takes accelerator memory from JAX in the same process.

  TensorFlow's own device setting, not CUDA_VISIBLE_DEVICES: the environment is the process's
  (JAX reads it too) and this is a library call.
  """
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
  except ImportError:  # tfds reports what it misses when it needs it
    return
  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError:  # TensorFlow initialised its devices already; nothing left to hide
    pass


def _check_files(builder, split: str, name: str, hint: str) -> None:
  """Raises DataNotFoundError if a prepared split's shard files are missing."""
  info = builder.info.splits.get(split) if hasattr(builder.info.splits, "get") else None
  if info is None:
    raise DataNotFoundError(f"{name}: the prepared data in {builder.data_dir} has no split "
                            f"{split!r}; {hint}")
  missing = [os.fspath(p) for p in info.filepaths if not os.path.exists(os.fspath(p))]
  if missing:
    raise DataNotFoundError(f"{name} is only partly prepared in {builder.data_dir}: "
                            f"{len(missing)} shard file(s) of split {split!r} are missing "
                            f"(e.g. {missing[0]}); delete that directory and {hint}")


def open_parts(name: str, task: str | None, parts: Sequence[str], data_dir: str | None):
  """Random-access sources (image left as encoded bytes) of tfds splits `parts`."""
  entry, task_name, task_obj = registry.lookup(name, task)
  data_dir = default_data_dir(data_dir)
  tfds = _tfds()
  builder = _builder(entry, task_obj, data_dir)
  hint = _prepare_hint(name, task_name, entry, data_dir)
  if builder.is_prepared():
    for part in parts:
      _check_files(builder, part, name, hint)
  else:
    root = os.path.join(data_dir, entry.tfds_name)
    if os.path.isdir(root) and any("incomplete" in d for d in os.listdir(root)):
      hint = f"an earlier preparation in {root} was interrupted; delete it and {hint}"
  decoders = {"image": tfds.decode.SkipDecoding()}
  try:
    return [builder.as_data_source(split=part, decoders=decoders) for part in parts]
  except (AssertionError, NotImplementedError, FileNotFoundError, KeyError, ValueError):
    raise DataNotFoundError(f"{name} (task {task_name}) is not prepared in {data_dir}; "
                            f"{hint}") from None


def _raw_labels(source, label_key: str, chunk: int = 1024) -> np.ndarray:
  out = np.empty(len(source), dtype=np.int64)
  many = getattr(source, "__getitems__", None) or (lambda keys: [source[k] for k in keys])
  for lo in range(0, len(source), chunk):
    rows = many(list(range(lo, min(lo + chunk, len(source)))))
    out[lo:lo + len(rows)] = [int(r[label_key]) for r in rows]
  return out


def raw_labels(name: str, task: str | None, data_dir: str | None) -> dict[str, np.ndarray]:
  """Raw labels of every tfds split `task` reads, cached as .npy beside prepared data."""
  entry, _, task_obj = registry.lookup(name, task)
  data_dir = default_data_dir(data_dir)
  parts = task_obj.parts
  sources = open_parts(name, task, parts, data_dir)
  builder = _builder(entry, task_obj, data_dir)
  out = {}
  for part, source in zip(parts, sources):
    cache = os.path.join(os.fspath(builder.data_dir), f"dmlax-labels-{part}.npy")
    if builder.is_prepared() and os.path.exists(cache):
      labels = np.load(cache)
      if len(labels) == len(source):
        out[part] = labels
        continue
    out[part] = _raw_labels(source, entry.label_key)
    if builder.is_prepared():
      try:  # A read-only data_dir only costs recomputing next time.
        tmp = cache + f".tmp{os.getpid()}.npy"
        np.save(tmp, out[part])
        os.replace(tmp, cache)
      except OSError:
        pass
  return out


def split_labels(name: str, *, task: str | None = None, data_dir: str | None = None):
  """{protocol split: `protocols.Selection`} of `name`/`task` (reads labels, not images).

  Example:
    >>> int(split_labels("digits", task="retrieval")["train"].labels.max())
    4
  """
  _, _, task_obj = registry.lookup(name, task)
  return task_obj.make(raw_labels(name, task, data_dir))


def info(name: str, data_dir: str | None = None, *, task: str | None = None
         ) -> registry.DatasetInfo:
  """A `DatasetInfo` for `name`/`task`; split sizes filled in where the data is prepared.

  Example:
    >>> info("digits").num_classes
    10
  """
  entry, task_name, task_obj = registry.lookup(name, task)
  try:
    num_examples = {k: len(v) for k, v in split_labels(name, task=task,
                                                         data_dir=data_dir).items()}
  except DataNotFoundError:
    num_examples = None
  return registry.DatasetInfo(
      name=name, task=task_name, num_classes=task_obj.num_classes,
      image_shape=entry.image_shape, protocol=task_obj.protocol,
      train_split=task_obj.train_split, eval_split=task_obj.eval_split,
      eval_query_split=task_obj.eval_query_split,
      eval_gallery_split=task_obj.eval_gallery_split, splits=task_obj.splits,
      tfds_name=entry.tfds_name, tfds_config=task_obj.config, num_examples=num_examples)
