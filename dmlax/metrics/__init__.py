"""Evaluation metrics: exact retrieval on the accelerator, clustering, embedding statistics,
classification and verification.

Retrieval (`knn`, `retrieval_metrics`) runs jit-compiled blocked matrix products with an exact
two-stage top-k, large searches screened by bfloat16 products with a certified error bound and
rescored in float32; see `dmlax.metrics.neighbours`, `dmlax.metrics.tiles`,
`dmlax.metrics.screen` and `dmlax.metrics.retrieval`. With `mesh=` and `axis_name=` both search
with the references sharded over a mesh axis and merge the exact top-k across shards
(`dmlax.metrics.sharded`).
"""

from dmlax.metrics.classification import topk_error
from dmlax.metrics.clustering import ami, nmi
from dmlax.metrics.embedding_stats import (class_separability, feature_correlations,
                                           fisher_scores, mean_class_angles)
from dmlax.metrics.neighbours import knn
from dmlax.metrics.retrieval import retrieval_metrics
from dmlax.metrics.verification import verification_accuracy

__all__ = [
    "knn", "retrieval_metrics", "nmi", "ami", "class_separability", "fisher_scores",
    "feature_correlations", "mean_class_angles", "topk_error", "verification_accuracy",
]
