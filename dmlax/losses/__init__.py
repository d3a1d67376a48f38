"""Loss functions of dmlax: pure functions of arrays, usable under jit, vmap, grad, pmap and
shard_map. Shapes: features (B, D), integer labels (B,), classifier weights (D, C), single
proxies (C, D), multi-proxies (C, K, D). See each function's docstring for its formula and paper.
"""

from dmlax.losses.group_softmax import discriminative_grouping
from dmlax.losses.group_softmax import group_softmax_loss
from dmlax.losses.softmax import normalized_softmax_loss
from dmlax.losses.softmax import softmax_cross_entropy
from dmlax.losses.stop_gradient import softmax_sgsl_loss
from dmlax.losses.stop_gradient import stop_gradient_softmax_loss
from dmlax.losses.weights_biased import min_feature_dim
from dmlax.losses.weights_biased import simplex_classifier
from dmlax.losses.weights_biased import weights_biased_softmax_loss
# Proxy, pair and margin losses, regularisers, proxy initialisers (issue 3).
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
