"""Latent statistics (paper §5): what the regularizer leaves in the latents, on held-out clips.

Mean L1 / L2 norms and the fraction of near-zero entries (every regularizer); the KL to the N(0, I) prior
and the posterior std (noisy); code usage (fraction of the codebook picked at least once) and perplexity
(exp of the entropy of code frequencies: V when all codes are used equally, 1 when one code is) (discrete).
Latents are taken in evaluation mode, as the planner and the controllers see them.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from lawm.evals import common


@functools.lru_cache(maxsize=16)
def _stats_fn(system):
    @jax.jit
    def stats(params, video):
        states = system.encode(params, video)
        _, _, metrics, _ = system.regularized_latents(params, states, train=False)
        return metrics

    return stats


def code_usage(counts_V) -> dict:
    counts = np.asarray(counts_V, np.float64)
    p = counts / max(counts.sum(), 1.0)
    entropy = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0))
    return {"code_usage": float((counts > 0).mean()), "code_perplexity": float(np.exp(entropy))}


def evaluate(context: common.Context, batches) -> dict:
    system, params = context.model.system, context.model.params
    sums: dict[str, list] = {}
    counts = None
    for batch in batches:
        metrics = jax.device_get(_stats_fn(system)(params, batch["video"]))
        if "code_counts" in metrics:
            batch_counts = np.asarray(metrics.pop("code_counts"))
            counts = batch_counts if counts is None else counts + batch_counts
        for key, value in metrics.items():
            sums.setdefault(key, []).append(value)
    results = {f"latent/{k}": float(np.mean(v)) for k, v in sums.items()}
    if counts is not None:
        results.update({f"latent/{k}": v for k, v in code_usage(counts).items()})
    return results
