"""ml_collections configs: `common.py` and one module per paper experiment."""
