"""Configs for the sgsl paper's tables (see each module's docstring)."""
