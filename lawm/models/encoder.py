"""The frozen video encoder: a V-JEPA 2 ViT that turns clips into states.

Dimension keys: B batch, F frames, H/W pixels (Hp/Wp in code), C channels, T state steps, N tokens per step,
D width (the states' E).

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
    """V-JEPA 2 vision transformer (defaults: ViT-L, 24 x 1024, 16 heads, patch 16, tubelet 2).

    Keywords not named here go to `layers.TransformerSpec`: the size (width, depth, num_heads, mlp_ratio)
    and the compute options (attention, remat, scan, dtype, param_dtype).
    """

    def __init__(
        self,
        *,
        patch_size: int = 16,
        tubelet_size: int = 2,
        in_channels: int = 3,
        causal: str = "tubelet",
        rngs: nnx.Rngs,
        **transformer,
    ):
        layers.check_one_of("encoder.causal", causal, CAUSAL_MODES)
        self.spec = spec = layers.TransformerSpec.of(transformer, width=1024, depth=24, num_heads=16)
        self.causal = causal
        self.patch_size = patch_size
        self.tubelet_size = tubelet_size
        # Kernel = stride = (tubelet, patch, patch): one token per tubelet x patch x patch cube.
        self.patch_embed = nnx.Conv(
            in_channels,
            spec.width,
            kernel_size=(tubelet_size, patch_size, patch_size),
            strides=(tubelet_size, patch_size, patch_size),
            padding="VALID",
            **spec.layer(rngs),
        )
        self.blocks, self.norm = spec.trunk(rngs)

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
        rope, mask = layers.grid_rope_and_mask(T, (h, w), self.spec.head_dim, causal)
        x = self.spec.run(self.blocks, tokens.reshape(B, T * h * w, D), rope, mask)
        return self.norm(x).reshape(B, T, h * w, D)
