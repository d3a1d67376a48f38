"""Configs that split the classifier/proxies over a (data, model) device mesh (see each module)."""
