"""JAX's persistent compilation cache for the entry points that compile the same programs
again and again (`experiments.quickstart`'s seeds, `experiments.reproduce`'s cells).

Imports nothing from JAX: the variables must be set before JAX is imported, which reads them
once; worker processes spawned afterwards inherit them.
"""

import os


def use_persistent_cache(workdir: str) -> None:
  """Caches every compiled program under `workdir`/_jax_cache, unless the environment already
  names a cache directory or a minimum compile time."""
  os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                        os.path.abspath(os.path.join(workdir, "_jax_cache")))
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
