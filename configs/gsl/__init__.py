"""Configs for the gsl paper's tables (see each module's docstring)."""
