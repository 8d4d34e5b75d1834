"""Controllers c: real action (+ the previous state) -> latent action, so a latent world model can plan with
real actions (paper §8.5).

Trained by L2 regression onto the IDM's latents: c(a_t, s_t) ~ z_t, where z_t = g(s_t, s_{t+1}) and a_t is the
real action taking frame t to t+1, so the output at step t uses state t and action t, never later ones. Two
variants with one call signature, `controller(states_BTNE, actions_BTA, grid_hw) -> latents_BTL`, so callers
(controller training, the planner's rollout ŝ_{i+1} = p(ŝ_i, c(a_i, ŝ_i))) can swap them:

  ActionMlp              actions only: an MLP of a_t. It cannot see the state, so for camera-relative latents
                         it tends to the latent of "no movement" (paper §8.5).
  CrossAttentionAdapter  Linear(E->D) + 2 self-attention blocks (spatial RoPE) over the tokens of s_t;
                         a 3-layer MLP embeds a_t to one query token; 1 pre-LN cross-attention block
                         (query: the action token; keys / values: the processed state tokens) + MLP;
                         LayerNorm -> Linear(D->L) on that single token.

Each step is independent: T is folded into the batch, so step t sees exactly (s_t, a_t).

Dimension keys: B batch, T steps, N tokens per step (an h x w grid), E state dim, A action dim, D width,
L latent dim, M heads, K head dim, S context tokens of the cross-attention (its keys: a state's N tokens);
its queries are the one action token (B, 1, D).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lawm.models import layers


class _Mlp(nnx.Module):
    """`depth` Linear layers in -> width -> ... -> out, with exact GELU between them (not after the last)."""

    def __init__(self, in_dim, width, out_dim, *, depth, dtype=None, param_dtype=jnp.float32, rngs):
        if depth < 1:
            raise ValueError(f"an MLP needs depth >= 1, got {depth}")
        dims = [in_dim] + [width] * (depth - 1) + [out_dim]
        kw = dict(dtype=dtype, param_dtype=param_dtype, kernel_init=layers.default_kernel_init(), rngs=rngs)
        self.linears = nnx.List([nnx.Linear(a, b, **kw) for a, b in zip(dims[:-1], dims[1:], strict=True)])

    def __call__(self, x):
        for i, linear in enumerate(self.linears):
            x = linear(x)
            if i < len(self.linears) - 1:
                x = jax.nn.gelu(x, approximate=False)
        return x


class ActionMlp(nnx.Module):
    """Actions-only controller: a `depth`-layer MLP a_t (A) -> z_t (L). It never sees the state."""

    def __init__(
        self,
        *,
        action_dim: int,
        latent_dim: int,
        width: int = 256,
        depth: int = 3,
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.mlp = _Mlp(
            action_dim, width, latent_dim, depth=depth, dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )

    def __call__(self, states_BTNE, actions_BTA, grid_hw=None):
        """(states ignored; may be None), actions (B, T, A) -> latents (B, T, L)."""
        del states_BTNE, grid_hw
        return self.mlp(actions_BTA)


class CrossAttention(nnx.Module):
    """Multi-head attention of query tokens over context tokens (B, S, D); no RoPE, no mask.

    The queries are named x_B1D: the adapter has one (the action token); any number of them works alike.
    """

    def __init__(
        self,
        width: int,
        num_heads: int,
        *,
        qkv_bias: bool = True,
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        if width % num_heads:
            raise ValueError(f"width {width} is not divisible by num_heads {num_heads}")
        self.num_heads, self.head_dim = num_heads, width // num_heads
        linear = dict(
            dtype=dtype, param_dtype=param_dtype, kernel_init=layers.default_kernel_init(), rngs=rngs
        )
        self.query = nnx.Linear(width, width, use_bias=qkv_bias, **linear)
        self.key = nnx.Linear(width, width, use_bias=qkv_bias, **linear)
        self.value = nnx.Linear(width, width, use_bias=qkv_bias, **linear)
        self.proj = nnx.Linear(width, width, **linear)

    def __call__(self, x_B1D, context_BSD):
        B, queries, D = x_B1D.shape
        S = context_BSD.shape[1]
        q_B1MK = self.query(x_B1D).reshape(B, queries, self.num_heads, self.head_dim)
        k_BSMK = self.key(context_BSD).reshape(B, S, self.num_heads, self.head_dim)
        v_BSMK = self.value(context_BSD).reshape(B, S, self.num_heads, self.head_dim)
        out_B1MK = layers.dot_product_attention(q_B1MK, k_BSMK, v_BSMK)
        return self.proj(out_B1MK.reshape(B, queries, D))


class CrossAttentionBlock(nnx.Module):
    """Pre-LN: x + CrossAttn(LN(x), LN(context)), then x + MLP(LN(x))."""

    def __init__(
        self, width: int, num_heads: int, *, mlp_ratio: float = 4.0, dtype=None, param_dtype=jnp.float32, rngs
    ):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.norm_query = layers.layer_norm(width, **kw)
        self.norm_context = layers.layer_norm(width, **kw)
        self.attention = CrossAttention(width, num_heads, **kw)
        self.norm_mlp = layers.layer_norm(width, **kw)
        self.mlp = layers.Mlp(width, int(width * mlp_ratio), **kw)

    def __call__(self, x_B1D, context_BSD):
        x_B1D = x_B1D + self.attention(self.norm_query(x_B1D), self.norm_context(context_BSD))
        return x_B1D + self.mlp(self.norm_mlp(x_B1D))


class CrossAttentionAdapter(nnx.Module):
    """Controller c(a_t, s_t): an action query token cross-attending to the tokens of the previous state.

    Self-attention blocks over s_t's N tokens use the spatial RoPE of their (h, w) grid position (time
    position 0, as the IDM does). The cross-attention carries no RoPE: the single query has no position,
    and the keys already hold theirs from the self-attention blocks.

    The self-attention blocks' size (2 x 1024, 16 heads unless given) and compute options are
    `layers.TransformerSpec` keywords; the cross-attention block and the MLPs share width, heads and dtypes.
    """

    def __init__(
        self,
        *,
        state_dim: int,
        action_dim: int,
        latent_dim: int,
        action_mlp_depth: int = 3,
        rngs: nnx.Rngs,
        **transformer,
    ):
        self.spec = spec = layers.TransformerSpec.of(transformer, width=1024, depth=2, num_heads=16)
        kw = spec.layer(rngs)
        self.embed = spec.linear(state_dim, spec.width, rngs)
        self.blocks = spec.blocks(rngs)
        self.action_embed = _Mlp(action_dim, spec.width, spec.width, depth=action_mlp_depth, **kw)
        self.cross_block = CrossAttentionBlock(spec.width, spec.num_heads, mlp_ratio=spec.mlp_ratio, **kw)
        self.norm = layers.layer_norm(spec.width, **kw)
        self.head = spec.linear(spec.width, latent_dim, rngs)

    def __call__(self, states_BTNE, actions_BTA, grid_hw: tuple[int, int]):
        """States s_t (B, T, N, E), actions a_t (B, T, A) -> latents z_t (B, T, L); step t uses (s_t, a_t)."""
        B, T, N, E = states_BTNE.shape
        layers.check_one_per_step(states_BTNE, actions_BTA, "action")
        layers.check_grid(N, grid_hw)
        rope = layers.rope_tables(layers.token_positions(1, *grid_hw), self.spec.head_dim)
        x_BND = self.spec.run(self.blocks, self.embed(states_BTNE.reshape(B * T, N, E)), rope)
        query_B1D = self.action_embed(actions_BTA.reshape(B * T, 1, -1)).astype(x_BND.dtype)
        out_B1D = self.cross_block(query_B1D, x_BND)
        return self.head(self.norm(out_B1D[:, 0])).reshape(B, T, -1)
