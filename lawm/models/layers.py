"""Transformer building blocks shared by the models of lawm.models (encoder, IDM, world model, decoder,
controller), and what they are assembled with alike (`TransformerSpec`, the grid and step checks).

Dimension keys: B batch, S tokens in an attention sequence (a clip's S = T*N), T time steps, N tokens per
step, D width, M attention heads, K head dim, Y conditioning width. Attention's keys are a sequence too:
q_BSMK (S queries) attends k_BSMK (S' keys, S' = S in self-attention), through a (S, S') mask_SS.

Tokens of a video are always flattened in (time, height, width) order, as V-JEPA 2's Conv3d patch
embedding does; positions for RoPE come from the actual token grid, so any grid size works.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

LAYER_NORM_EPS = 1e-6  # V-JEPA 2's value; used everywhere for consistency
ROPE_BASE = 10000.0


def default_kernel_init():
    """Xavier-uniform, as ViT and DiT: the scale follows the width, so tiny models train like large ones."""
    return nnx.initializers.xavier_uniform()


def embedding_init():
    """Learned tokens and embeddings: N(0, 0.02^2), as ViT."""
    return nnx.initializers.normal(stddev=0.02)


# ------------------------------------------------------------------------------------------------
# 3D rotary position embedding (V-JEPA 2 layout)
# ------------------------------------------------------------------------------------------------
def token_positions(steps: int, height: int, width: int) -> np.ndarray:
    """(t, h, w) position of every token of a (steps, height, width) grid, flattened in that order: (S, 3)."""
    t, h, w = np.meshgrid(np.arange(steps), np.arange(height), np.arange(width), indexing="ij")
    return np.stack([t.ravel(), h.ravel(), w.ravel()], axis=-1).astype(np.int32)


def rope_axis_dim(head_dim: int) -> int:
    """Dims rotated per axis: 2*((K//3)//2), as V-JEPA 2; the K - 3*that leftover dims stay unrotated."""
    return 2 * ((head_dim // 3) // 2)


def rope_tables(positions_S3, head_dim: int) -> tuple[jax.Array, jax.Array]:
    """cos / signed-sin tables (S, K) for `apply_rope`; spare dims get cos 1, sin 0 (unrotated).

    Reproduces the reference exactly, quirk included: for each axis the frequencies
    w_i = 1/10000**(i/(d/2)), i < d/2, are *tiled* [w_0..w_{d/2-1}, w_0..w_{d/2-1}] over the axis's d dims
    while rotation pairs adjacent dims (2j, 2j+1), so pair j does not get frequency j. The released weights
    were trained this way (facebookresearch/vjepa2 `rotate_queries_or_keys`, copied by transformers).
    """
    d = rope_axis_dim(head_dim)
    positions_S3 = jnp.asarray(positions_S3, jnp.float32)
    omega = 1.0 / ROPE_BASE ** (jnp.arange(d // 2, dtype=jnp.float32) / (d / 2.0))
    angles = jnp.concatenate(  # (S, 3d): the rotated dims of a head
        [jnp.tile(positions_S3[:, axis, None] * omega, (1, 2)) for axis in range(3)], -1
    )
    # The partner of dim 2j is -x[2j+1] and of dim 2j+1 is x[2j]: fold the sign into the sin table.
    sign = jnp.tile(jnp.array([-1.0, 1.0], jnp.float32), 3 * d // 2)
    spare = head_dim - 3 * d
    cos = jnp.pad(jnp.cos(angles), ((0, 0), (0, spare)), constant_values=1.0)
    sin = jnp.pad(jnp.sin(angles) * sign, ((0, 0), (0, spare)))
    return cos, sin


def apply_rope(x_BSMK, cos_SK, sin_SK):
    """x * cos + partner(x) * sin, where partner swaps the dims of each adjacent pair; all elementwise."""
    K = x_BSMK.shape[-1]
    padded = jnp.pad(x_BSMK, [(0, 0)] * (x_BSMK.ndim - 1) + [(0, K % 2)])  # an odd K gets a spare 0 dim
    pairs = padded.reshape(*padded.shape[:-1], -1, 2)
    partner = pairs[..., ::-1].reshape(padded.shape)[..., :K]
    cos = cos_SK[:, None, :].astype(x_BSMK.dtype)
    sin = sin_SK[:, None, :].astype(x_BSMK.dtype)
    return x_BSMK * cos + partner * sin


def block_causal_mask(step_of_token_S) -> jax.Array:
    """(S, S) boolean mask: a token at step t attends to every token at steps <= t (full within a step)."""
    step = jnp.asarray(step_of_token_S)
    return step[:, None] >= step[None, :]


ATTENTION_IMPLEMENTATIONS = ("auto", "fused", "cudnn", "einsum")
REMAT_POLICIES = {
    "none": None,  # keep every activation for the backward pass
    "full": jax.checkpoint_policies.nothing_saveable,  # keep only each block's input; recompute the rest
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,  # keep matmul outputs
}


def check_one_of(name: str, value, choices) -> None:
    """Raise a ValueError naming `name` unless value is one of choices."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def dot_product_attention(q_BSMK, k_BSMK, v_BSMK, mask_SS=None, implementation: str = "auto"):
    """Softmax attention, (B, S, M, K) layout: S queries attend S' keys (mask (S, S')).

    "fused": jax.nn.dot_product_attention, letting XLA pick the kernel; "cudnn": the same, requiring
    cuDNN's fused flash-attention kernel (GPU, bf16/fp16 inputs; fails elsewhere rather than falling back);
    "einsum": two einsums around a softmax. On CPU, XLA runs the latter about 1.9x faster than the fused
    entry point's grouped-query layout (7.5 vs 14.0 ms for 12 calls at B=2, S=512, M=6, K=64; see
    benchmarks/RESULTS.md), so "auto" picks "einsum" on CPU and "fused" on accelerators.
    """
    if implementation == "auto":
        implementation = "einsum" if jax.default_backend() == "cpu" else "fused"
    if implementation in ("fused", "cudnn"):
        mask = None if mask_SS is None else mask_SS[None, None]
        kernel = "cudnn" if implementation == "cudnn" else None
        return jax.nn.dot_product_attention(q_BSMK, k_BSMK, v_BSMK, mask=mask, implementation=kernel)
    check_one_of("attention", implementation, ATTENTION_IMPLEMENTATIONS)
    logits_BMSS = jnp.einsum("bsmk,btmk->bmst", q_BSMK, k_BSMK) / np.sqrt(q_BSMK.shape[-1]).astype(
        q_BSMK.dtype
    )
    if mask_SS is not None:
        logits_BMSS = jnp.where(mask_SS, logits_BMSS, jnp.finfo(logits_BMSS.dtype).min)
    weights = jax.nn.softmax(logits_BMSS.astype(jnp.float32), axis=-1).astype(v_BSMK.dtype)
    return jnp.einsum("bmst,btmk->bsmk", weights, v_BSMK)


# ------------------------------------------------------------------------------------------------
# Layers
# ------------------------------------------------------------------------------------------------
class Attention(nnx.Module):
    """Multi-head self-attention with optional RoPE and boolean mask (see `dot_product_attention`)."""

    def __init__(
        self,
        width: int,
        num_heads: int,
        *,
        qkv_bias: bool = True,
        attention: str = "auto",
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        if width % num_heads:
            raise ValueError(f"width {width} is not divisible by num_heads {num_heads}")
        check_one_of("attention", attention, ATTENTION_IMPLEMENTATIONS)
        self.implementation = attention
        self.num_heads = num_heads
        self.head_dim = width // num_heads
        linear = dict(dtype=dtype, param_dtype=param_dtype, kernel_init=default_kernel_init(), rngs=rngs)
        # Separate q/k/v projections mirror the V-JEPA 2 checkpoint layout, so weights import one to one.
        self.query = nnx.Linear(width, width, use_bias=qkv_bias, **linear)
        self.key = nnx.Linear(width, width, use_bias=qkv_bias, **linear)
        self.value = nnx.Linear(width, width, use_bias=qkv_bias, **linear)
        self.proj = nnx.Linear(width, width, **linear)

    def __call__(self, x_BSD, rope=None, mask_SS=None):
        B, S, D = x_BSD.shape
        split = lambda y: y.reshape(B, S, self.num_heads, self.head_dim)  # noqa: E731
        q, k, v = split(self.query(x_BSD)), split(self.key(x_BSD)), split(self.value(x_BSD))
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        out_BSMK = dot_product_attention(q, k, v, mask_SS, self.implementation)
        return self.proj(out_BSMK.reshape(B, S, D))


class Mlp(nnx.Module):
    """Linear -> exact (erf) GELU -> Linear. V-JEPA 2 uses the exact GELU; jax's default is the tanh one."""

    def __init__(self, width: int, hidden: int, *, dtype=None, param_dtype=jnp.float32, rngs: nnx.Rngs):
        linear = dict(dtype=dtype, param_dtype=param_dtype, kernel_init=default_kernel_init(), rngs=rngs)
        self.fc1 = nnx.Linear(width, hidden, **linear)
        self.fc2 = nnx.Linear(hidden, width, **linear)

    def __call__(self, x):
        return self.fc2(jax.nn.gelu(self.fc1(x), approximate=False))


def layer_norm(width: int, *, affine: bool = True, dtype=None, param_dtype=jnp.float32, rngs: nnx.Rngs):
    return nnx.LayerNorm(
        width,
        epsilon=LAYER_NORM_EPS,
        use_bias=affine,
        use_scale=affine,
        dtype=dtype,
        param_dtype=param_dtype,
        rngs=rngs,
    )


class Block(nnx.Module):
    """Pre-LN transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(
        self,
        width: int,
        num_heads: int,
        *,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        attention: str = "auto",
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.norm1 = layer_norm(width, **kw)
        self.attention = Attention(width, num_heads, qkv_bias=qkv_bias, attention=attention, **kw)
        self.norm2 = layer_norm(width, **kw)
        self.mlp = Mlp(width, int(width * mlp_ratio), **kw)

    def __call__(self, x_BSD, rope=None, mask_SS=None):
        x_BSD = x_BSD + self.attention(self.norm1(x_BSD), rope, mask_SS)
        return x_BSD + self.mlp(self.norm2(x_BSD))


class AdaLNZeroBlock(nnx.Module):
    """Pre-LN block with frame-wise AdaLN-zero conditioning (DiT, adapted per time step).

    Each step t has its own conditioning vector c_t; an MLP (SiLU -> Linear) maps it to
    shift/scale/gate for attention and MLP, broadcast over that step's N tokens:
        x += gate_a * Attn(LN(x) * (1 + scale_a) + shift_a)
        x += gate_m * MLP(LN(x) * (1 + scale_m) + shift_m)
    The modulation Linear starts at zero, so at initialisation every block is the identity and the model's
    output does not depend on c.
    """

    def __init__(
        self,
        width: int,
        num_heads: int,
        cond_dim: int,
        *,
        mlp_ratio: float = 4.0,
        attention: str = "auto",
        dtype=None,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.norm1 = layer_norm(width, affine=False, **kw)
        self.attention = Attention(width, num_heads, attention=attention, **kw)
        self.norm2 = layer_norm(width, affine=False, **kw)
        self.mlp = Mlp(width, int(width * mlp_ratio), **kw)
        self.modulation = nnx.Linear(cond_dim, 6 * width, kernel_init=nnx.initializers.zeros_init(), **kw)

    def __call__(self, x_BSD, cond_BTY, rope=None, mask_SS=None):
        B, S, D = x_BSD.shape
        T = cond_BTY.shape[1]
        if S % T:
            raise ValueError(f"{S} tokens do not split into {T} conditioned steps")

        def per_token(m_BTD):  # (B, T, D) -> (B, S, D): step t's value repeated over its S/T tokens
            return jnp.repeat(m_BTD, S // T, axis=1)

        mods = jnp.split(self.modulation(jax.nn.silu(cond_BTY)), 6, axis=-1)
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = map(per_token, mods)
        h = self.norm1(x_BSD) * (1 + scale_a) + shift_a
        x_BSD = x_BSD + gate_a * self.attention(h, rope, mask_SS)
        h = self.norm2(x_BSD) * (1 + scale_m) + shift_m
        return x_BSD + gate_m * self.mlp(h)


def run_blocks(blocks, x, *args, remat: str = "none", scan: bool = False):
    """x -> blocks[-1](...blocks[0](x, *args)..., *args), the way the compute config asks.

    remat: a REMAT_POLICIES name, applied per block (what the backward pass keeps vs recomputes).
    scan: one traced block run depth times by `jax.lax.scan` over the blocks' stacked params (the layers
    are stacked inside the step, so params and checkpoints keep their per-block layout): the blocks are
    traced and compiled once (the optimiser still updates each layer's params separately, so compile time
    still grows with depth, more slowly: benchmarks/RESULTS.md). Every choice computes the same function.
    """
    check_one_of("remat", remat, REMAT_POLICIES)
    if not blocks:
        return x
    if remat == "none" and not scan:
        for block in blocks:
            x = block(x, *args)
        return x
    graphdef = nnx.graphdef(blocks[0])  # the blocks are built alike: one graph, depth states

    def apply(state, x):
        return nnx.merge(graphdef, state)(x, *args)

    if remat != "none":
        apply = jax.checkpoint(apply, policy=REMAT_POLICIES[remat])
    states = [nnx.state(block) for block in blocks]
    if not scan:
        for state in states:
            x = apply(state, x)
        return x
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)
    return jax.lax.scan(lambda x, state: (apply(state, x), None), x, stacked)[0]


# ------------------------------------------------------------------------------------------------
# Assembly: what the models share
# ------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TransformerSpec:
    """What the transformer models here take as keywords (`**transformer`): their size and how they compute.

    width, depth (blocks), num_heads, mlp_ratio: the size; each model sets its own default size (`of`).
    attention: an ATTENTION_IMPLEMENTATIONS name, for the self-attention blocks; remat, scan: see
    `run_blocks` (neither changes the function); dtype: the compute dtype (None: the inputs' own);
    param_dtype: the parameters' dtype. An unknown name fails as any unexpected keyword does.
    """

    width: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    attention: str = "auto"
    remat: str = "none"
    scan: bool = False
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @classmethod
    def of(cls, options: dict, **defaults) -> TransformerSpec:
        """The options a model was given, over its defaults."""
        return cls(**(defaults | options))

    def __post_init__(self):
        check_one_of("attention", self.attention, ATTENTION_IMPLEMENTATIONS)
        check_one_of("remat", self.remat, REMAT_POLICIES)

    @property
    def head_dim(self) -> int:
        return self.width // self.num_heads

    def layer(self, rngs: nnx.Rngs) -> dict:
        """Keyword arguments of a layer built in these dtypes: dtype, param_dtype, rngs."""
        return dict(dtype=self.dtype, param_dtype=self.param_dtype, rngs=rngs)

    def linear(self, in_dim: int, out_dim: int, rngs: nnx.Rngs, kernel_init=None) -> nnx.Linear:
        """A Linear in these dtypes; kernel_init defaults to `default_kernel_init`."""
        kernel_init = kernel_init or default_kernel_init()
        return nnx.Linear(in_dim, out_dim, kernel_init=kernel_init, **self.layer(rngs))

    def blocks(self, rngs: nnx.Rngs, cond_dim: int | None = None) -> nnx.List:
        """`depth` alike blocks, as `run_blocks` wants them: `Block`s, or `AdaLNZeroBlock`s given cond_dim."""
        kw = dict(mlp_ratio=self.mlp_ratio, attention=self.attention, **self.layer(rngs))
        block = Block if cond_dim is None else functools.partial(AdaLNZeroBlock, cond_dim=cond_dim)
        return nnx.List([block(self.width, self.num_heads, **kw) for _ in range(self.depth)])

    def trunk(self, rngs: nnx.Rngs, cond_dim: int | None = None) -> tuple[nnx.List, nnx.LayerNorm]:
        """(`blocks`, the LayerNorm of their output), built in that order.

        The order matters: it is the order their parameters are drawn from rngs, part of the initialisation.
        """
        blocks = self.blocks(rngs, cond_dim)
        return blocks, layer_norm(self.width, **self.layer(rngs))

    def run(self, blocks, x, *args):
        """`run_blocks` with this remat and scan."""
        return run_blocks(blocks, x, *args, remat=self.remat, scan=self.scan)


def grid_rope_and_mask(steps: int, grid_hw: tuple[int, int], head_dim: int, causal: bool = True):
    """RoPE tables of a (steps, h, w) token grid and its block-causal mask over steps (None if not causal)."""
    positions = token_positions(steps, *grid_hw)
    mask = block_causal_mask(positions[:, 0]) if causal else None
    return rope_tables(positions, head_dim), mask


def check_grid(tokens_per_step: int, grid_hw: tuple[int, int]) -> None:
    """Raise unless a step's tokens form the h x w grid."""
    if tokens_per_step != grid_hw[0] * grid_hw[1]:
        raise ValueError(f"{tokens_per_step} tokens per state do not form the grid {grid_hw}")


def check_one_per_step(states_BTNE, per_step_BT, name: str) -> None:
    """Raise unless `per_step_BT` (e.g. the latents) has one entry per state step: the same (B, T)."""
    if per_step_BT.shape[:2] != states_BTNE.shape[:2]:
        raise ValueError(
            f"need one {name} per state step: states {states_BTNE.shape}, {name}s {per_step_BT.shape}"
        )
