"""Loss functions of dmlax: pure functions of arrays, usable under jit, vmap, grad, pmap and
shard_map. Shapes: features (B, D), integer labels (B,), classifier weights (D, C), single
proxies (C, D), multi-proxies (C, K, D). See each function's docstring for its formula and paper.
"""

from dmlax.losses.softmax import normalized_softmax_loss
from dmlax.losses.softmax import softmax_cross_entropy
