"""Evaluators over trained models: one small module each, chosen by name (the eval config's
`evaluators`, or a system's `evaluator` for the trainer's periodic evaluation).

Each is `evaluate(context: Context, batches, **options) -> dict[str, float]` (see common.py).

  latent_actions  own vs shuffled latents, copy-last, ridge probe z -> true action  (world model)
  latent_stats    norms, sparsity, KL to the prior, code usage
  probes          MLP probes on (z, previous state) -> true action, and on the state alone
  capacity        one-step and rollout error with IDM latents vs the deterministic model
  scene_cut       future leakage: error at a stitched scene cut / the same step without it
  transfer        A's latents applied to B and cycled back
  decoder         held-out L1, PSNR (and LPIPS) of a decoder run's reconstructions       (decoder)
  controller      controller latents vs the IDM's, and the world model driven by each    (controller)
"""

from __future__ import annotations

import importlib

from lawm.evals.common import Context

EVALUATORS = (
    "latent_actions",
    "latent_stats",
    "probes",
    "capacity",
    "scene_cut",
    "transfer",
    "decoder",
    "controller",
)


def _latent_actions(context: Context, batches, **options):
    from lawm.evals import latent_actions

    model = context.model
    return latent_actions.evaluate(
        model.system, model.params, batches, action_names=context.action_names, **options
    )


def get(name: str):
    """The evaluate function of evaluator `name`; unknown names raise ValueError listing the known ones."""
    if name not in EVALUATORS:
        raise ValueError(f"unknown evaluator {name!r} (known: {', '.join(EVALUATORS)})")
    if name == "latent_actions":
        return _latent_actions
    return importlib.import_module(f"lawm.evals.{name}").evaluate


__all__ = ["EVALUATORS", "Context", "get"]
