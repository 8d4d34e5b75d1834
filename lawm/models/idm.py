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

    `pairing` says how the two states become tokens (the paper does not say, PAPER.md section 4):
      "tokens"    2N tokens, each state's own, with a learned "which step" embedding; comparing s_t with
                  s_{t+1} at a place takes attention between the two tokens of that place.
      "channels"  N tokens, each the embedding of the concatenation (s_t[n], s_{t+1}[n]): the local change
                  is in every token from the first layer, and the sequence is half as long.
    Tokens get spatial RoPE (their (h, w) position); the readout token's final feature -> Linear -> the
    raw latent (R dims; the regularizer decides what R is, e.g. 2 x latent_dim for mean and
    log-variance). All T-1 pairs of a clip run as one batch, so z_t can depend on s_t and s_{t+1} only.
    """

    def __init__(
        self,
        *,
        state_dim: int,
        out_dim: int,
        width: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        pairing: str = "tokens",
        attention: str = "auto",
        remat: str = "none",
        scan: bool = False,
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        if pairing not in PAIRINGS:
            raise ValueError(f"pairing must be one of {PAIRINGS}, got {pairing!r}")
        self.head_dim = width // num_heads
        self.remat, self.scan, self.pairing = remat, scan, pairing
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        init = layers.default_kernel_init()
        if pairing == "tokens":
            self.embed = nnx.Linear(state_dim, width, kernel_init=init, **kw)
            self.step_embed = nnx.Param(layers.embedding_init()(rngs.params(), (2, width), param_dtype))
        else:
            self.embed = nnx.Linear(2 * state_dim, width, kernel_init=init, **kw)
        self.readout_token = nnx.Param(layers.embedding_init()(rngs.params(), (1, width), param_dtype))
        self.blocks = nnx.List(
            [
                layers.Block(width, num_heads, mlp_ratio=mlp_ratio, attention=attention, **kw)
                for _ in range(depth)
            ]
        )
        self.norm = layers.layer_norm(width, **kw)
        self.head = nnx.Linear(width, out_dim, kernel_init=init, **kw)

    def __call__(self, states_BTNE, grid_hw: tuple[int, int]):
        """States (B, T, N, E) -> raw latents (B, T-1, R); output t is inferred from s_t and s_{t+1} only."""
        B, T, N, _ = states_BTNE.shape
        if N != grid_hw[0] * grid_hw[1]:
            raise ValueError(f"{N} tokens per state do not form the grid {grid_hw}")
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
        rope = layers.rope_tables(np.concatenate([np.zeros((1, 3), np.int32), positions]), self.head_dim)
        x = layers.run_blocks(self.blocks, x, rope, remat=self.remat, scan=self.scan)
        # The regularizer works in float32 whatever the compute dtype.
        return self.head(self.norm(x[:, 0])).astype(jnp.float32).reshape(B, T - 1, -1)
