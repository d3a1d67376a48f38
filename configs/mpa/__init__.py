"""Configs for the mpa paper's tables (see each module's docstring)."""
