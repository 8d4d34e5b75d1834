"""Layers: RoPE against the transformers V-JEPA 2 reference, masks, fused attention, GELU, AdaLN-zero."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from transformers import VJEPA2Config
from transformers.models.vjepa2.modeling_vjepa2 import VJEPA2RopeAttention

from lawm.models import layers
from tests.helpers import randomize_module


@pytest.mark.parametrize(
    "head_dim,grid,steps",
    [(64, 4, 3), (16, 3, 2), (10, 2, 4), (9, 2, 2)],  # 64: 20 dims/axis + 4 spare; 10, 9: not divisible by 3
)
def test_rope_matches_vjepa2_reference(head_dim, grid, steps):
    heads = 2
    config = VJEPA2Config(
        hidden_size=head_dim * heads,
        num_attention_heads=heads,
        crop_size=16 * grid,
        patch_size=16,
        frames_per_clip=2 * steps,
    )
    reference = VJEPA2RopeAttention(config, hidden_size=head_dim * heads, num_attention_heads=heads)
    length = steps * grid * grid
    x = np.random.default_rng(0).normal(size=(2, heads, length, head_dim)).astype(np.float32)
    with torch.no_grad():
        xt = torch.from_numpy(x)
        positions = reference.get_position_ids(torch.zeros(1, length))  # it reads L from dim 1
        expected = reference.apply_rotary_embeddings(xt, positions).numpy()

    rope = layers.rope_tables(layers.token_positions(steps, grid, grid), head_dim)
    ours = layers.apply_rope(jnp.asarray(x.transpose(0, 2, 1, 3)), *rope)  # ours is (B, L, H, K)
    np.testing.assert_allclose(np.asarray(ours).transpose(0, 2, 1, 3), expected, atol=1e-5)
    rotated = 3 * layers.rope_axis_dim(head_dim)
    np.testing.assert_array_equal(np.asarray(ours)[..., rotated:], x.transpose(0, 2, 1, 3)[..., rotated:])


def test_token_positions_any_grid():
    positions = layers.token_positions(2, 3, 5)
    expected = [(t, h, w) for t in range(2) for h in range(3) for w in range(5)]
    np.testing.assert_array_equal(positions, np.array(expected))


def test_block_causal_mask():
    mask = np.asarray(layers.block_causal_mask(np.array([0, 0, 1, 1, 2])))
    for i, ti in enumerate([0, 0, 1, 1, 2]):
        for j, tj in enumerate([0, 0, 1, 1, 2]):
            assert mask[i, j] == (tj <= ti)


def test_attention_equals_naive_softmax_attention():
    attn = layers.Attention(32, 4, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, 6, 32))
    rope = layers.rope_tables(layers.token_positions(3, 1, 2), 8)
    mask = layers.block_causal_mask(np.repeat(np.arange(3), 2))
    out = attn(x, rope, mask)

    def heads(linear):
        return linear(x).reshape(2, 6, 4, 8)

    q, k = layers.apply_rope(heads(attn.query), *rope), layers.apply_rope(heads(attn.key), *rope)
    logits = jnp.einsum("bqhk,bshk->bhqs", q, k) / np.sqrt(8)
    weights = jax.nn.softmax(jnp.where(mask, logits, -jnp.inf), axis=-1)
    naive = attn.proj(jnp.einsum("bhqs,bshk->bqhk", weights, heads(attn.value)).reshape(2, 6, 32))
    np.testing.assert_allclose(out, naive, atol=1e-5)


@pytest.mark.parametrize("masked", [False, True])
def test_einsum_attention_equals_jax_fused_attention(masked):
    q, k, v = jax.random.normal(jax.random.key(0), (3, 2, 8, 4, 16))
    mask = layers.block_causal_mask(np.repeat(np.arange(4), 2)) if masked else None
    einsum = layers.dot_product_attention(q, k, v, mask, implementation="einsum")
    fused = layers.dot_product_attention(q, k, v, mask, implementation="fused")
    np.testing.assert_allclose(einsum, fused, atol=1e-5)


def test_mlp_uses_exact_gelu():
    mlp = layers.Mlp(8, 16, rngs=nnx.Rngs(0))
    mlp.fc2.kernel[...] = jnp.ones((16, 8))  # sum the activations, so the GELU variant shows
    x = 1.5 * jax.random.normal(jax.random.key(0), (4, 8))
    h = mlp.fc1(x)
    exact = mlp.fc2(0.5 * h * (1 + jax.scipy.special.erf(h / np.sqrt(2))))
    tanh_approx = mlp.fc2(jax.nn.gelu(h, approximate=True))
    np.testing.assert_allclose(mlp(x), exact, atol=1e-6)
    assert np.abs(np.asarray(mlp(x) - tanh_approx)).max() > 1e-3


def test_adaln_zero_block_is_identity_at_init_and_frame_wise_after():
    block = layers.AdaLNZeroBlock(16, 2, cond_dim=4, rngs=nnx.Rngs(0))
    steps, tokens = 3, 4
    x = jax.random.normal(jax.random.key(1), (2, steps * tokens, 16))
    cond = jax.random.normal(jax.random.key(2), (2, steps, 4))
    mask = layers.block_causal_mask(np.repeat(np.arange(steps), tokens))
    np.testing.assert_array_equal(block(x, cond, None, mask), x)  # zero-initialised modulation

    randomize_module(block, jax.random.key(3))
    cond2 = cond.at[:, 1].add(1.0)  # change step 1's conditioning only
    out, out2 = np.asarray(block(x, cond, None, mask)), np.asarray(block(x, cond2, None, mask))
    np.testing.assert_array_equal(out[:, :tokens], out2[:, :tokens])  # step 0 cannot see step 1
    assert (
        np.abs(out[:, tokens : 2 * tokens] - out2[:, tokens : 2 * tokens]).min() > 0
    )  # every token of step 1
