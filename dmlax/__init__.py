"""dmlax: discriminative feature learning in JAX/Flax.

Subpackages: `dmlax.losses` (pure loss functions), `dmlax.metrics`, `dmlax.models`,
`dmlax.data`, `dmlax.train`. Import what you need: `from dmlax import losses`.
"""

__version__ = "0.1.0"
