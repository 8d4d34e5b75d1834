"""The frame-causal video decoder (paper §7): states back to frames, for inspection and LPIPS only.

Dimension keys: B batch, T state steps, N tokens per step (an h x w grid), E state dim, D width,
F frames (F = T * k, k the tubelet size), H/W pixels, C channels (3), G values per token (k*p*p*3),
S tokens in the attention sequence (S = T*N).

The paper reuses the encoder's ViT with RoPE and adds a linear patch-to-pixels layer; we do the same with
the shared blocks:

    Linear(E->D) -> Blocks (3D RoPE over the (t, h, w) token grid, block-causal over steps)
                 -> LayerNorm -> Linear(D -> k*p*p*3) -> unpatchify

Each token becomes the k x p x p pixel cube its encoder token came from, so the frames of step t are a
function of states s_0..s_t only (the attention mask lets step t see steps <= t). Frames come out in the
encoder's normalised pixel space (`lawm.models.encoder.normalize_video`), where the decoder's L1 is taken;
`pixels_0_255` and `to_uint8` map them back to images.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from lawm.models import layers
from lawm.models.encoder import IMAGENET_MEAN, IMAGENET_STD


def pixels_0_255(frames, clip: bool = True):
    """Normalised frames (any shape, channels last) -> float32 RGB on the 0..255 scale, not rounded.

    clip=False keeps values outside [0, 255] (and their gradient), for losses.
    """
    rgb = (jnp.asarray(frames, jnp.float32) * IMAGENET_STD + IMAGENET_MEAN) * 255.0
    return jnp.clip(rgb, 0.0, 255.0) if clip else rgb


def psnr(x, y, max_value: float = 255.0):
    """Peak signal-to-noise ratio per example, 10 log10(max^2 / MSE) over all non-batch axes: (B,).

    Identical examples give +inf. Pass pixels in [0, max_value] (e.g. 0..255 RGB).
    """
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    mse = jnp.square(x - y).reshape(x.shape[0], -1).mean(axis=1)
    return 10.0 * jnp.log10(max_value**2 / mse)


def to_uint8(frames):
    """Normalised frames -> uint8 RGB images: the inverse of `normalize_video`, clipped and rounded."""
    return jnp.round(pixels_0_255(frames)).astype(jnp.uint8)


class FrameDecoder(nnx.Module):
    """Frame-causal ViT decoder: states (B, T, N, E) -> normalised frames (B, T * tubelet_size, H, W, 3).

    Size and compute options are `layers.TransformerSpec` keywords; the size defaults to the encoder's ViT-L.
    """

    def __init__(
        self,
        *,
        state_dim: int,
        patch_size: int = 16,
        tubelet_size: int = 2,
        out_channels: int = 3,
        rngs: nnx.Rngs,
        **transformer,
    ):
        self.spec = spec = layers.TransformerSpec.of(transformer, width=1024, depth=24, num_heads=16)
        self.patch_size = patch_size
        self.tubelet_size = tubelet_size
        self.out_channels = out_channels
        self.embed = spec.linear(state_dim, spec.width, rngs)
        self.blocks, self.norm = spec.trunk(rngs)
        self.head = spec.linear(spec.width, tubelet_size * patch_size * patch_size * out_channels, rngs)

    def __call__(self, states_BTNE, grid_hw: tuple[int, int]):
        """States (B, T, N, E) on an h x w token grid -> float32 frames (B, T * k, h * p, w * p, C)."""
        B, T, N, E = states_BTNE.shape
        layers.check_grid(N, grid_hw)
        rope, mask = layers.grid_rope_and_mask(T, grid_hw, self.spec.head_dim)
        x_BSD = self.spec.run(self.blocks, self.embed(states_BTNE.reshape(B, T * N, E)), rope, mask)
        out_BSG = self.head(self.norm(x_BSD)).astype(jnp.float32)
        (h, w), k, p, C = grid_hw, self.tubelet_size, self.patch_size, self.out_channels
        # Token (t, i, j) holds the pixel cube frames t*k.., rows i*p.., columns j*p.. (as the Conv3d).
        cubes = out_BSG.reshape(B, T, h, w, k, p, p, C)
        return cubes.transpose(0, 1, 4, 2, 5, 3, 6, 7).reshape(B, T * k, h * p, w * p, C)
