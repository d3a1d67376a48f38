"""Flax Linen backbones and heads for discriminative feature learning, and pretrained-weight import.

`get_model(name, **kwargs)` builds a backbone plus an `EmbeddingHead`; `load_pretrained` imports
torchvision-layout ImageNet weights (and Cadene's BN-Inception) into its variables;
`ClassifierWeights` and `Proxies` hold the loss-side parameters outside the backbone.
"""

from dmlax.models.heads import EmbeddingHead
from dmlax.models.heads import adversarial_dropout_mask
from dmlax.models.heads import gem_pool
from dmlax.models.heads import global_pool
from dmlax.models.heads import l2_normalize
from dmlax.models.params import ClassifierBias
from dmlax.models.params import ClassifierWeights
from dmlax.models.params import ClassifierWeightsModule
from dmlax.models.params import Proxies
from dmlax.models.params import ProxiesModule
from dmlax.models.pretrained import load_pretrained
from dmlax.models.pretrained import save_converted
from dmlax.models.pretrained import state_dict_to_variables
from dmlax.models.registry import MODEL_NAMES
from dmlax.models.registry import Embedder
from dmlax.models.registry import get_model
