"""World model p_psi: predicts s_{t+1} from s_{0..t} and the latent actions z_{0..t}.

Dimension keys: B batch, T steps, N tokens per step (an h x w grid), E state dim, D width, L latent dim,
C conditioning dim.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lawm.models import layers


class WorldModel(nnx.Module):
    """Linear(E->D) -> AdaLN-zero ViT blocks (3D RoPE, block-causal over steps) -> LayerNorm -> Linear(D->E).

    Step t's tokens are modulated by an MLP embedding of z_t (frame-wise AdaLN-zero), and the output at
    step t is the prediction of s_{t+1}. Alignment invariant: output t depends on s_{0..t} and z_{0..t} only
    (block-causal attention; modulation is per step).

    `residual=True` (not the paper's predictor) predicts the change: output = s_t + head(...), with the head
    zero-initialised so training starts from copy-last. Small models then spend their capacity on what
    moves rather than on re-drawing the static scene (the synthetic-world evaluation models use it).
    """

    def __init__(
        self,
        *,
        state_dim: int,
        latent_dim: int = 128,
        width: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        cond_dim: int = 128,
        residual: bool = False,
        attention: str = "auto",
        remat: str = "none",
        scan: bool = False,
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.head_dim = width // num_heads
        self.remat, self.scan = remat, scan
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        init = layers.default_kernel_init()
        self.embed = nnx.Linear(state_dim, width, kernel_init=init, **kw)
        self.latent_embed1 = nnx.Linear(latent_dim, cond_dim, kernel_init=init, **kw)
        self.latent_embed2 = nnx.Linear(cond_dim, cond_dim, kernel_init=init, **kw)
        self.blocks = nnx.List(
            [
                layers.AdaLNZeroBlock(
                    width, num_heads, cond_dim, mlp_ratio=mlp_ratio, attention=attention, **kw
                )
                for _ in range(depth)
            ]
        )
        self.norm = layers.layer_norm(width, **kw)
        self.residual = residual
        head_init = nnx.initializers.zeros_init() if residual else init
        self.head = nnx.Linear(width, state_dim, kernel_init=head_init, **kw)

    def __call__(self, states_BTNE, latents_BTL, grid_hw: tuple[int, int]):
        """States s_0..s_{T-1} (B, T, N, E) and latents z_0..z_{T-1} (B, T, L) -> predictions of s_1..s_T."""
        B, T, N, E = states_BTNE.shape
        if latents_BTL.shape[:2] != (B, T):
            raise ValueError(
                f"need one latent per state step: states {states_BTNE.shape}, latents {latents_BTL.shape}"
            )
        if N != grid_hw[0] * grid_hw[1]:
            raise ValueError(f"{N} tokens per state do not form the grid {grid_hw}")
        cond_BTC = self.latent_embed2(jax.nn.silu(self.latent_embed1(latents_BTL)))
        positions = layers.token_positions(T, *grid_hw)
        rope = layers.rope_tables(positions, self.head_dim)
        mask = layers.block_causal_mask(positions[:, 0])
        x = self.embed(states_BTNE.reshape(B, T * N, E))
        x = layers.run_blocks(self.blocks, x, cond_BTC, rope, mask, remat=self.remat, scan=self.scan)
        out = self.head(self.norm(x)).reshape(B, T, N, E)
        return states_BTNE.astype(out.dtype) + out if self.residual else out
