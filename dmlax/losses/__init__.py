"""Loss functions of dmlax: pure functions of arrays, usable under jit, vmap, grad, pmap and
shard_map. Shapes: features (B, D), integer labels (B,), classifier weights (D, C), single
proxies (C, D), multi-proxies (C, K, D). See each function's docstring for its formula and paper.

Every loss follows one contract (checked for every loss of ``__all__`` by
``tests/losses/test_contract.py``): the first argument is ``features`` (per-example vectors;
``logits`` for `softmax_cross_entropy`), then ``labels``; hyperparameters are keyword-only;
``reduction`` in {"mean", "sum", "none"}; float64 in gives float64 out and bfloat16 in a
float32-accumulated result; continuous hyperparameters may be traced; an empty batch raises a
``ValueError``; a traced out-of-range label makes the value and the gradient NaN.
"""

from dmlax.losses.group_softmax import discriminative_grouping
from dmlax.losses.group_softmax import group_softmax_loss
from dmlax.losses.hinge import multiclass_hinge_loss
from dmlax.losses.softmax import normalized_softmax_loss
from dmlax.losses.softmax import softmax_cross_entropy
from dmlax.losses.stop_gradient import softmax_sgsl_loss
from dmlax.losses.stop_gradient import stop_gradient_softmax_loss
from dmlax.losses.weights_biased import min_feature_dim
from dmlax.losses.weights_biased import simplex_classifier
from dmlax.losses.weights_biased import weights_biased_softmax_loss
from dmlax.losses.initializers import proxy_anchor_init
from dmlax.losses.initializers import soft_triple_init
from dmlax.losses.margin import annealed_lambda
from dmlax.losses.margin import arcface_loss
from dmlax.losses.margin import cosface_loss
from dmlax.losses.margin import large_margin_softmax_loss
from dmlax.losses.margin import noisy_softmax_loss
from dmlax.losses.margin import sigsoftmax_loss
from dmlax.losses.margin import sphereface_loss
from dmlax.losses.margin import virtual_softmax_loss
from dmlax.losses.pair import contrastive_loss
from dmlax.losses.pair import multi_similarity_loss
from dmlax.losses.pair import triplet_margin_loss
from dmlax.losses.proxy import mpa_ap_loss
from dmlax.losses.proxy import mpa_dw_loss
from dmlax.losses.proxy import mpa_loss
from dmlax.losses.proxy import multi_proxy_similarity
from dmlax.losses.proxy import proxy_anchor_loss
from dmlax.losses.proxy import proxy_nca_loss
from dmlax.losses.proxy import soft_triple_loss
from dmlax.losses.regularizers import center_loss
from dmlax.losses.regularizers import proxy_regularizer
from dmlax.losses.regularizers import ring_loss
# Miners' companions: contrastive-family losses, cross-batch memory, sub-center ArcFace.
from dmlax.losses.contrastive import circle_loss
from dmlax.losses.contrastive import lifted_structure_loss
from dmlax.losses.contrastive import margin_loss
from dmlax.losses.contrastive import ntxent_loss
from dmlax.losses.contrastive import supcon_loss
from dmlax.losses.margin import subcenter_arcface_loss
from dmlax.losses.memory import XBMState
from dmlax.losses.memory import xbm_init
from dmlax.losses.memory import xbm_references
from dmlax.losses.memory import xbm_update

__all__ = [
    "annealed_lambda",
    "arcface_loss",
    "center_loss",
    "circle_loss",
    "contrastive_loss",
    "cosface_loss",
    "discriminative_grouping",
    "group_softmax_loss",
    "large_margin_softmax_loss",
    "lifted_structure_loss",
    "margin_loss",
    "min_feature_dim",
    "mpa_ap_loss",
    "mpa_dw_loss",
    "mpa_loss",
    "multi_proxy_similarity",
    "multi_similarity_loss",
    "multiclass_hinge_loss",
    "noisy_softmax_loss",
    "normalized_softmax_loss",
    "ntxent_loss",
    "proxy_anchor_init",
    "proxy_anchor_loss",
    "proxy_nca_loss",
    "proxy_regularizer",
    "ring_loss",
    "sigsoftmax_loss",
    "simplex_classifier",
    "soft_triple_init",
    "soft_triple_loss",
    "softmax_cross_entropy",
    "softmax_sgsl_loss",
    "sphereface_loss",
    "stop_gradient_softmax_loss",
    "subcenter_arcface_loss",
    "supcon_loss",
    "triplet_margin_loss",
    "virtual_softmax_loss",
    "weights_biased_softmax_loss",
    "xbm_init",
    "xbm_references",
    "xbm_update",
    "XBMState",
]
