"""World model p_psi: predicts s_{t+1} from s_{0..t} and the latent actions z_{0..t}.

Dimension keys: B batch, T steps, N tokens per step (an h x w grid), E state dim, D width, L latent dim,
Y conditioning width (cond_dim).
"""

from __future__ import annotations

import jax
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

    Its size (24 x 1024, 16 heads unless given) and compute options are `layers.TransformerSpec` keywords.
    """

    def __init__(
        self,
        *,
        state_dim: int,
        latent_dim: int = 128,
        cond_dim: int = 128,
        residual: bool = False,
        rngs: nnx.Rngs,
        **transformer,
    ):
        self.spec = spec = layers.TransformerSpec.of(transformer, width=1024, depth=24, num_heads=16)
        self.residual = residual
        self.embed = spec.linear(state_dim, spec.width, rngs)
        self.latent_embed1 = spec.linear(latent_dim, cond_dim, rngs)
        self.latent_embed2 = spec.linear(cond_dim, cond_dim, rngs)
        self.blocks, self.norm = spec.trunk(rngs, cond_dim)
        zero = nnx.initializers.zeros_init() if residual else None  # residual: training starts from copy-last
        self.head = spec.linear(spec.width, state_dim, rngs, kernel_init=zero)

    def __call__(self, states_BTNE, latents_BTL, grid_hw: tuple[int, int]):
        """States s_0..s_{T-1} (B, T, N, E) and latents z_0..z_{T-1} (B, T, L) -> predictions of s_1..s_T."""
        B, T, N, E = states_BTNE.shape
        layers.check_one_per_step(states_BTNE, latents_BTL, "latent")
        layers.check_grid(N, grid_hw)
        cond_BTY = self.latent_embed2(jax.nn.silu(self.latent_embed1(latents_BTL)))
        rope, mask = layers.grid_rope_and_mask(T, grid_hw, self.spec.head_dim)
        x = self.embed(states_BTNE.reshape(B, T * N, E))
        x = self.spec.run(self.blocks, x, cond_BTY, rope, mask)
        out = self.head(self.norm(x)).reshape(B, T, N, E)
        return states_BTNE.astype(out.dtype) + out if self.residual else out
