"""Inverse dynamics model g_phi: z_t = g(s_t, s_{t+1}), one raw latent per consecutive pair of states.

Dimension keys: B batch, T state steps, N tokens per step (an h x w grid), E state dim, D width, R raw dim.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from lawm.models import layers

PAIRINGS = ("tokens", "channels")


class InverseDynamics(nnx.Module):
    """A ViT over the tokens of (s_t, s_{t+1}) plus one learned readout token.

    `pairing` says how the two states become tokens (the paper does not say, paper §4):
      "tokens"    2N tokens, each state's own, with a learned "which step" embedding; comparing s_t with
                  s_{t+1} at a place takes attention between the two tokens of that place.
      "channels"  N tokens, each the embedding of the concatenation (s_t[n], s_{t+1}[n]): the local change
                  is in every token from the first layer, and the sequence is half as long.
    Tokens get spatial RoPE (their (h, w) position); the readout token's final feature -> Linear -> the
    raw latent (R dims; the regularizer decides what R is, e.g. 2 x latent_dim for mean and
    log-variance). All T-1 pairs of a clip run as one batch, so z_t can depend on s_t and s_{t+1} only.

    Size (ViT-B unless given: 12 x 768, 12 heads) and compute options: `layers.TransformerSpec` keywords.
    """

    def __init__(
        self,
        *,
        state_dim: int,
        out_dim: int,
        pairing: str = "tokens",
        rngs: nnx.Rngs,
        **transformer,
    ):
        layers.check_one_of("pairing", pairing, PAIRINGS)
        self.spec = spec = layers.TransformerSpec.of(transformer, width=768, depth=12, num_heads=12)
        self.pairing = pairing
        token = lambda shape: nnx.Param(layers.embedding_init()(rngs.params(), shape, spec.param_dtype))
        if pairing == "tokens":
            self.embed = spec.linear(state_dim, spec.width, rngs)
            self.step_embed = token((2, spec.width))
        else:
            self.embed = spec.linear(2 * state_dim, spec.width, rngs)
        self.readout_token = token((1, spec.width))
        self.blocks, self.norm = spec.trunk(rngs)
        self.head = spec.linear(spec.width, out_dim, rngs)

    def __call__(self, states_BTNE, grid_hw: tuple[int, int]):
        """States (B, T, N, E) -> raw latents (B, T-1, R); output t is inferred from s_t and s_{t+1} only."""
        B, T, N, _ = states_BTNE.shape
        layers.check_grid(N, grid_hw)
        # (N, 3) grid positions at time 0: the step embedding or the concat order tells s_t from s_{t+1}.
        grid = layers.token_positions(1, *grid_hw)
        if self.pairing == "tokens":
            pairs = jnp.stack([states_BTNE[:, :-1], states_BTNE[:, 1:]], axis=2)  # (B, T-1, 2, N, E)
            x = self.embed(pairs)
            x = x + self.step_embed[None, None, :, None, :].astype(x.dtype)
            x, positions = x.reshape(B * (T - 1), 2 * N, -1), np.concatenate([grid, grid])
        else:
            pairs = jnp.concatenate([states_BTNE[:, :-1], states_BTNE[:, 1:]], axis=-1)  # (B, T-1, N, 2E)
            x, positions = self.embed(pairs).reshape(B * (T - 1), N, -1), grid
        readout = jnp.broadcast_to(self.readout_token[None], (x.shape[0], 1, x.shape[-1])).astype(x.dtype)
        x = jnp.concatenate([readout, x], axis=1)
        positions = np.concatenate([np.zeros((1, 3), np.int32), positions])  # the readout token's first
        rope = layers.rope_tables(positions, self.spec.head_dim)
        x = self.spec.run(self.blocks, x, rope)
        # The regularizer works in float32 whatever the compute dtype.
        return self.head(self.norm(x[:, 0])).astype(jnp.float32).reshape(B, T - 1, -1)
