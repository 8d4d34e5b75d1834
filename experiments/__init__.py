"""Entry points (train, eval, plan) and configs of lawm experiments."""
