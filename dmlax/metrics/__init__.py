from dmlax.metrics.neighbours import knn
from dmlax.metrics.retrieval import retrieval_metrics
