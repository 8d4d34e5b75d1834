"""Evaluators: small functions over a trained system and held-out batches, each returning a dict of numbers."""
