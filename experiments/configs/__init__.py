"""ml_collections configs: `get_config(arg)` returns a ConfigDict; each docstring says how to run it."""
