"""Evaluators: small functions over a trained system and held-out batches, returning dicts of numbers."""
