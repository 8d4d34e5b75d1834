"""What every evaluator receives, and the helpers they share.

An evaluator is a module under lawm/evals/ with

    evaluate(context: Context, batches: list[dict], **options) -> dict[str, float]

`batches` are held-out clips (dicts with uint8 `video` (B, F, H, W, 3) and, where the data has them, frame
`actions` (B, F-1, A)); `options` come from the eval config (`config.evaluators.<name>`). Metric names are
prefixed with the evaluator's name. Pictures go to `context.picture_dir` when it is set and a decoder is
given.

Dimension keys: B clips, F frames, H/W pixels, A action dim, T state steps, N tokens per step, E state dim,
L latent dim, P rollout steps (the horizon).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import numpy as np

from lawm.systems.base import Model


@dataclasses.dataclass
class Context:
    model: Model  # the latent action world model under evaluation
    reference: Model | None = None  # a deterministic world model trained with the same recipe
    decoder: Model | None = None  # a frame-causal decoder of this model's states (pictures, PSNR, LPIPS)
    lpips: dict | None = None  # LPIPS params (lawm.models.lpips.load), for perceptual pixel metrics
    action_names: list[str] | None = None
    picture_dir: Any = None  # epath.Path or None


def l1_per_step(prediction_BPNE, target_BPNE):
    """Mean absolute error per clip and step: (B, P)."""
    return jnp.abs(prediction_BPNE.astype(jnp.float32) - target_BPNE.astype(jnp.float32)).mean(axis=(-2, -1))


def partner(x):
    """Clip b's partner is clip b-1 (a derangement for B >= 2): the "other video" of a pair."""
    return jnp.roll(x, 1, axis=0)


def mean_over(values: list) -> float:
    return float(np.mean(np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in values])))


def usable(batches):
    """Batches with at least two clips (pairs and shuffles need another clip)."""
    return [b for b in batches if len(b["video"]) >= 2]


def ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator > 0 else float("nan")
