"""Entry points: training, evaluation, table reproduction, benchmarks. Run as `python -m experiments.NAME`."""
