"""The frozen video encoder: a V-JEPA 2 ViT that turns clips into states.

Dimension keys: B batch, F frames, Hp/Wp pixels, T state steps, N tokens per step, D width.

`causal` decides what a state may see:
  "tubelet"    block-causal attention over tubelet steps: state t sees frames of tubelets <= t only
               (the "frame causal" encoder of the paper); F frames -> T = F / tubelet_size states.
  "per_frame"  each frame duplicated into a tubelet and encoded alone (V-JEPA 2-AC style); T = F.
  "none"       bidirectional attention, as the released V-JEPA 2. It leaks the future into every state;
               for ablations and for numerical parity with the reference only.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from lawm.models import layers

CAUSAL_MODES = ("tubelet", "per_frame", "none")
# V-JEPA 2 expects RGB in [0, 1] normalised with the ImageNet statistics.
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def normalize_video(video_BFHWC):
    """uint8 RGB (or floats in [0, 255]) -> encoder input. Runs on device, so host batches stay uint8."""
    video = jnp.asarray(video_BFHWC, jnp.float32) / 255.0
    return (video - IMAGENET_MEAN) / IMAGENET_STD


class VideoEncoder(nnx.Module):
    """V-JEPA 2 vision transformer (defaults: ViT-L, 24 x 1024, 16 heads, patch 16, tubelet 2)."""

    def __init__(
        self,
        *,
        width: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        patch_size: int = 16,
        tubelet_size: int = 2,
        in_channels: int = 3,
        causal: str = "tubelet",
        attention: str = "auto",
        remat: str = "none",
        scan: bool = False,
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        if causal not in CAUSAL_MODES:
            raise ValueError(f"encoder.causal must be one of {CAUSAL_MODES}, got {causal!r}")
        self.causal = causal
        self.patch_size = patch_size
        self.tubelet_size = tubelet_size
        self.head_dim = width // num_heads
        self.remat, self.scan = remat, scan
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        # Kernel = stride = (tubelet, patch, patch): one token per tubelet x patch x patch cube.
        self.patch_embed = nnx.Conv(
            in_channels,
            width,
            kernel_size=(tubelet_size, patch_size, patch_size),
            strides=(tubelet_size, patch_size, patch_size),
            padding="VALID",
            **kw,
        )
        self.blocks = nnx.List(
            [
                layers.Block(width, num_heads, mlp_ratio=mlp_ratio, attention=attention, **kw)
                for _ in range(depth)
            ]
        )
        self.norm = layers.layer_norm(width, **kw)

    def __call__(self, video_BFHWC):
        """Normalised video (B, F, Hp, Wp, 3) -> states (B, T, N, D)."""
        B, F, Hp, Wp, _ = video_BFHWC.shape
        if Hp % self.patch_size or Wp % self.patch_size:
            raise ValueError(f"frame size {Hp}x{Wp} is not a multiple of the patch size {self.patch_size}")
        if self.causal == "per_frame":
            frames = video_BFHWC.reshape(B * F, 1, Hp, Wp, -1)
            states = self._encode(jnp.repeat(frames, self.tubelet_size, axis=1), causal=False)
            return states.reshape(B, F, *states.shape[2:])
        if F % self.tubelet_size:
            raise ValueError(f"{F} frames do not split into tubelets of {self.tubelet_size}")
        return self._encode(video_BFHWC, causal=self.causal == "tubelet")

    def _encode(self, video_BFHWC, causal: bool):
        tokens = self.patch_embed(video_BFHWC)  # (B, T, h, w, D)
        B, T, h, w, D = tokens.shape
        positions = layers.token_positions(T, h, w)
        rope = layers.rope_tables(positions, self.head_dim)
        mask = layers.block_causal_mask(positions[:, 0]) if causal else None
        x = tokens.reshape(B, T * h * w, D)
        x = layers.run_blocks(self.blocks, x, rope, mask, remat=self.remat, scan=self.scan)
        return self.norm(x).reshape(B, T, h * w, D)
