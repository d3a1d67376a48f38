"""SGSL Table 5: class separability, softmax vs softmax + SGSL, 2048-d (tr S_b, tr S_w, CSC).

Paper: L. Yang, P. Wang, Y. Zhang, "Stop-Gradient Softmax Loss for Deep Metric Learning",
AAAI 2023, Table 5 and eq. 9: `CSC = trace(S_b) / trace(S_w)`, the between-class and
within-class scatter matrices of the test features, weighted by the class frequencies
(`dmlax.metrics.class_separability`). "The default dimension is 2,048": the cells are the
2048-d runs of Tables 1 (CUB-200-2011, Cars196, SOP) and 2 (In-shop), with the same configs
(tests/configs/test_sgsl_recipes.py checks that they are identical). The R@1 column is for
reference: the paper prints no retrieval numbers in Table 5; for the SGSL rows it holds the
2048-d numbers of Tables 1-2, for the softmax rows none (Table 3's softmax numbers are Boudiaf et
al.'s published ones, not necessarily these runs).

    python -m experiments.reproduce --table sgsl/table5
    python -m experiments.train --config configs/sgsl/table5.py:row=softmax,col=cub200 --workdir W

The separability columns are computed from a trained workdir's test features by
`experiments.reproduce` (keys "csc_trace_sb", "csc_trace_sw", "csc"), not by the trainer.
Reported numbers: `_REPORTED` below. Hardware: as Tables 1-2 (2, SOP 4, GTX 2080Ti GPUs).
"""

from configs import paper_tables
from configs.sgsl import recipes

_DATASETS = ("cub200", "cars196", "sop", "inshop")
# (trace S_b, trace S_w, CSC) as printed; R@1 from Tables 1-2 for SGSL (see the docstring).
_REPORTED = {
    ("softmax", "cub200"): ("492.3", "14.9", "33.0", "-"),
    ("softmax_sgsl", "cub200"): ("456.5", "12.7", "36.0", "75.9"),
    ("softmax", "cars196"): ("437.1", "11.1", "39.4", "-"),
    ("softmax_sgsl", "cars196"): ("375.9", "9.1", "41.3", "94.7"),
    ("softmax", "sop"): ("841.2", "111.2", "7.6", "-"),
    ("softmax_sgsl", "sop"): ("772.1", "86.7", "8.9", "83.1"),
    ("softmax", "inshop"): ("450.2", "33.6", "13.4", "-"),
    ("softmax_sgsl", "inshop"): ("440.7", "31.0", "14.2", "93.0"),
}

TABLE = paper_tables.Table(
    name="sgsl/table5",
    base=lambda: recipes.retrieval("cub200", 2048),
    metrics=(paper_tables.Metric("trace{S_b}", "csc_trace_sb", scale=1.0),
             paper_tables.Metric("trace{S_w}", "csc_trace_sw", scale=1.0,
                                 higher_is_better=False),
             paper_tables.Metric("CSC", "csc", scale=1.0),
             paper_tables.Metric("R@1", "recall@1")),
    rows={"softmax_sgsl": recipes.SGSL, "softmax": recipes.LOSS_ROWS["softmax"]},
    cols={d: recipes.col(d, 2048) for d in _DATASETS},
    reported=_REPORTED,
    hardware=recipes.HARDWARE,
)


def get_config(arg=None):
  """`arg`: "row=<softmax_sgsl|softmax>,col=<cub200|cars196|sop|inshop>,seed=<n>[,smoke]"."""
  return TABLE.config(arg)
