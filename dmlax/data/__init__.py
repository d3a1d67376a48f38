"""dmlax.data: every dataset of the four papers through tfds, and a deterministic grain pipeline.

  info(name, data_dir=None, *, task=None) -> DatasetInfo
  prepare(name, data_dir=None, manual_dir=None, task=None) -> prepared directory
  train_iterator(name, *, batch_size, seed, ...) -> resumable iterator of batches
  eval_batches(name, *, split, batch_size, ...) -> padded, masked evaluation batches
  verification_pairs("lfw", ...) -> the 6,000 LFW pairs as evaluation positions
  names() -> registered dataset names

Data lives in `data_dir`, else `$DMLAX_DATA_DIR`, else `~/tensorflow_datasets`. TensorFlow is
imported only by `prepare`; reading prepared data does not import it.
"""
from dmlax.data.pipeline import eval_batches
from dmlax.data.pipeline import train_iterator
from dmlax.data.pipeline import TrainIterator
from dmlax.data.pipeline import verification_pairs
from dmlax.data.registry import DatasetInfo
from dmlax.data.registry import names
from dmlax.data.sources import DataNotFoundError
from dmlax.data.sources import default_data_dir
from dmlax.data.sources import info
from dmlax.data.sources import prepare
from dmlax.data.sources import split_labels
