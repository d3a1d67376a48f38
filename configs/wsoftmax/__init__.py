"""Configs for the wsoftmax paper's tables (see each module's docstring)."""
