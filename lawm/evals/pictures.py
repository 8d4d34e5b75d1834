"""Decoded pictures for the evaluators: states -> frames through the frame-causal decoder, pixel metrics,
and picture grids (one row per clip: the true frames, then each rollout, side by side).

Frames are shown and scored one per state step: the last frame of each tubelet, the newest the state saw.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from lawm import config as config_lib
from lawm import files
from lawm.evals import common

GAP = 4  # pixels between panels
GAP_VALUE = 255


def frames_per_state(system) -> int:
    encoder = system.config.model.encoder if hasattr(system.config, "model") else system.config.encoder
    return config_lib.frames_per_state(encoder)


def frames_of_steps(video_BFHWC, steps: int, decoder: common.Model):
    """The frame each state step is scored on: (B, steps, H, W, 3) uint8."""
    k = frames_per_state(decoder.system)
    return np.asarray(video_BFHWC)[:, k - 1 : k * steps : k]


@functools.lru_cache(maxsize=8)
def _decode_fn(system):
    from lawm.models.decoder import to_uint8

    return jax.jit(lambda params, states: to_uint8(system.decode(params, states)))


def decode_rollouts(decoder: common.Model, context_BTNE, rollouts: dict) -> dict:
    """{name: predicted states (B, P, N, E) or None} -> {name: decoded frames (B, P, H, W, 3) uint8}.

    The decoder sees the true context first, as it is frame-causal and was trained on whole clips."""
    k = frames_per_state(decoder.system)
    out = {}
    for name, rolled in rollouts.items():
        if rolled is None:
            continue
        states = jnp.concatenate([context_BTNE, rolled.astype(context_BTNE.dtype)], axis=1)
        frames = np.asarray(_decode_fn(decoder.system)(decoder.params, states))
        out[name] = frames[:, k - 1 :: k][:, context_BTNE.shape[1] :]
    return out


def psnr(frames, truth):
    """Per-clip PSNR (B,) over all frames of the clip, on 0..255 pixels."""
    from lawm.models import decoder as pixels

    return np.asarray(pixels.psnr(jnp.asarray(frames, jnp.float32), jnp.asarray(truth, jnp.float32)))


def lpips(params, frames, truth):
    """Per-clip mean LPIPS (B,) over the clip's frames."""
    from lawm.models import lpips as lpips_lib

    b, h = frames.shape[:2]
    as_signed = lambda x: jnp.asarray(x, jnp.float32).reshape(b * h, *x.shape[2:]) / 127.5 - 1.0  # noqa: E731
    return np.asarray(lpips_lib.distance(params, as_signed(frames), as_signed(truth))).reshape(b, h).mean(1)


def clip_rows(truth, rollouts: dict, limit: int) -> list[np.ndarray]:
    """One picture row per clip: the true frames, then each rollout's frames, panels separated by a gap."""
    rows = []
    for b in range(min(limit, len(truth))):
        panels = [truth[b], *(frames[b] for frames in rollouts.values())]
        rows.append(_hstack([_hstack(list(panel), gap=1) for panel in panels], gap=GAP))
    return rows


def save_grid(path, rows: list[np.ndarray]) -> None:
    """Stacks rows (padding narrower ones) with a gap between them and writes a PNG."""
    import io

    from PIL import Image

    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=GAP_VALUE) for r in rows]
    grid = _vstack(padded, gap=GAP)
    png = io.BytesIO()
    Image.fromarray(grid).save(png, format="PNG")
    files.write_atomic(path, png.getvalue())


def _hstack(images, gap):
    h = images[0].shape[0]
    spacer = np.full((h, gap, 3), GAP_VALUE, np.uint8)
    parts = [x for image in images for x in (image, spacer)][:-1]
    return np.concatenate(parts, axis=1)


def _vstack(images, gap):
    w = images[0].shape[1]
    spacer = np.full((gap, w, 3), GAP_VALUE, np.uint8)
    parts = [x for image in images for x in (image, spacer)][:-1]
    return np.concatenate(parts, axis=0)
