"""Pixel-space metrics: small pure functions of (batch, ...) arrays, one number per example."""

from __future__ import annotations

import jax.numpy as jnp


def psnr(x, y, max_value: float = 255.0):
    """Peak signal-to-noise ratio per example, 10 log10(max^2 / MSE) over all non-batch axes: (B,).

    Identical examples give +inf. Pass pixels in [0, max_value] (e.g. 0..255 RGB).
    """
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    mse = jnp.square(x - y).reshape(x.shape[0], -1).mean(axis=1)
    return 10.0 * jnp.log10(max_value**2 / mse)
