"""A decoder run on held-out clips: how close its reconstructions come to the true frames.

decoder/l1 (normalised pixel space, the training loss's), decoder/psnr (of the uint8 frames) and, when
the decoder is trained with LPIPS weights, decoder/lpips; means over clips. The trainer's periodic
evaluation of a decoder run (`DecoderSystem.evaluator`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from lawm.evals import common
from lawm.models.decoder import psnr, to_uint8
from lawm.models.encoder import normalize_video


def evaluate(context: common.Context, batches) -> dict:
    system, params = context.model.system, context.model.params
    per_batch = _eval_fn(system)
    values = {}
    for batch in batches:
        for key, value in jax.device_get(per_batch(params, batch["video"])).items():
            values.setdefault(key, []).append(value)
    return {f"decoder/{k}": float(np.concatenate(v).mean()) for k, v in values.items()}


@functools.lru_cache(maxsize=8)
def _eval_fn(system):
    """Per-clip metrics of one batch, jitted once per system."""

    @jax.jit
    def metrics(params, video):
        frames = system.decode(params, system.encode(params, video))
        targets = normalize_video(video)
        out = {
            "l1": jnp.abs(frames - targets).mean(axis=(1, 2, 3, 4)),
            "psnr": psnr(to_uint8(frames), jnp.asarray(video, jnp.float32)),
        }
        if system.lpips_weights:
            out["lpips"] = system.lpips(params, frames, targets)
        return out

    return metrics
