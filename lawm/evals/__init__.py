"""Evaluators over trained models: one small module each, chosen by name in the eval config.

Each is `evaluate(context: common.Context, batches, **options) -> dict[str, float]` (see common.py).
"""

from __future__ import annotations

import importlib


def _latent_actions(context, batches, **options):
    from lawm.evals import latent_actions

    params = context.model.params
    return latent_actions.evaluate(
        context.model.system, params, batches, action_names=context.action_names, **options
    )


EVALUATORS = ("latent_actions", "latent_stats", "probes", "capacity", "scene_cut", "transfer")


def get(name: str):
    """The evaluate function of evaluator `name`; unknown names raise ValueError listing the known ones."""
    if name not in EVALUATORS:
        raise ValueError(f"unknown evaluator {name!r} (known: {', '.join(EVALUATORS)})")
    if name == "latent_actions":
        return _latent_actions
    return importlib.import_module(f"lawm.evals.{name}").evaluate
