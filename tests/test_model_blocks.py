"""What the models of lawm.models are assembled with (layers.TransformerSpec and the checks), and the
parameter names their checkpoints are written under."""

import jax
import numpy as np
import pytest
from flax import nnx

from lawm.models import layers
from lawm.models.controller import CrossAttentionAdapter
from lawm.models.decoder import FrameDecoder
from lawm.models.encoder import VideoEncoder
from lawm.models.idm import InverseDynamics
from lawm.models.world_model import WorldModel

TINY = dict(width=8, depth=2, num_heads=2, mlp_ratio=2.0)


def top_level_params(module):
    return set(nnx.to_pure_dict(nnx.state(module, nnx.Param)))


def test_spec_defaults_are_the_models_and_given_options_win():
    spec = layers.TransformerSpec.of({"depth": 3, "remat": "full"}, width=1024, depth=24, num_heads=16)
    assert (spec.width, spec.depth, spec.num_heads, spec.head_dim) == (1024, 3, 16, 64)
    assert (spec.mlp_ratio, spec.attention, spec.remat, spec.scan) == (4.0, "auto", "full", False)


@pytest.mark.parametrize(
    "options,error,message",
    [
        ({"remat": "some"}, ValueError, "remat must be one of"),
        ({"attention": "flash"}, ValueError, "attention must be one of"),
        ({"unroll": 2}, TypeError, "unroll"),
    ],
)
def test_bad_options_fail_when_the_model_is_built(options, error, message):
    with pytest.raises(error, match=message):
        WorldModel(state_dim=8, latent_dim=4, cond_dim=4, **TINY, **options, rngs=nnx.Rngs(0))


def test_trunk_builds_blocks_then_norm_from_the_same_stream():
    spec = layers.TransformerSpec(**TINY)
    blocks, norm = spec.trunk(nnx.Rngs(0))
    again = spec.blocks(nnx.Rngs(0))
    assert len(blocks) == 2 and all(type(b) is layers.Block for b in blocks)
    assert isinstance(norm, nnx.LayerNorm)
    same = jax.tree.map(np.array_equal, nnx.state(blocks), nnx.state(again))
    assert all(jax.tree.leaves(same))  # the norm is drawn after the blocks
    conditioned = spec.blocks(nnx.Rngs(0), cond_dim=3)
    assert all(type(b) is layers.AdaLNZeroBlock for b in conditioned)
    assert conditioned[0].modulation.kernel[...].shape == (3, 6 * 8)


def test_checks_name_what_is_wrong():
    layers.check_grid(6, (2, 3))
    with pytest.raises(ValueError, match=r"5 tokens per state do not form the grid \(2, 3\)"):
        layers.check_grid(5, (2, 3))
    states, latents = np.zeros((2, 3, 6, 4)), np.zeros((2, 2, 5))
    with pytest.raises(ValueError, match="need one latent per state step"):
        layers.check_one_per_step(states, latents, "latent")
    with pytest.raises(ValueError, match="causal must be one of"):
        layers.check_one_of("causal", "sometimes", ("tubelet", "none"))


@pytest.mark.parametrize(
    "build,names",
    [
        (lambda r: VideoEncoder(**TINY, patch_size=4, rngs=r), {"patch_embed", "blocks", "norm"}),
        (
            lambda r: InverseDynamics(state_dim=8, out_dim=4, **TINY, rngs=r),
            {"embed", "step_embed", "readout_token", "blocks", "norm", "head"},
        ),
        (
            lambda r: InverseDynamics(state_dim=8, out_dim=4, pairing="channels", **TINY, rngs=r),
            {"embed", "readout_token", "blocks", "norm", "head"},
        ),
        (
            lambda r: WorldModel(state_dim=8, latent_dim=4, cond_dim=4, **TINY, rngs=r),
            {"embed", "latent_embed1", "latent_embed2", "blocks", "norm", "head"},
        ),
        (
            lambda r: FrameDecoder(state_dim=8, patch_size=2, **TINY, rngs=r),
            {"embed", "blocks", "norm", "head"},
        ),
        (
            lambda r: CrossAttentionAdapter(state_dim=8, action_dim=3, latent_dim=4, **TINY, rngs=r),
            {"embed", "blocks", "action_embed", "cross_block", "norm", "head"},
        ),
    ],
)
def test_parameter_names_are_the_checkpoints(build, names):
    assert top_level_params(build(nnx.Rngs(0))) == names
