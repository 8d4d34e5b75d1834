"""The frame-causal decoder: causality by perturbation, shared encoder, overfitting, training, PSNR."""

import json
import sys
import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import nnx

import lawm.models
from data_pipelines import sources
from lawm import evals, systems, train
from lawm.models import decoder as pixels
from lawm.models.decoder import FrameDecoder, pixels_0_255, to_uint8
from lawm.models.encoder import normalize_video
from lawm.systems.decoder import DecoderSystem
from lawm.systems.world_model import WorldModelSystem as System
from tests.helpers import max_abs_diff, randomize_module, tiny_train_config

GRID = (2, 3)  # a non-square token grid
PATCH, TUBELET, E = 4, 2, 12


def decoder_config(total_steps=3, **decoder):
    """The tiny world model trainer config (32 px, 4 frames) with a tiny decoder task."""
    config = tiny_train_config(total_steps=total_steps)
    config.task = "decoder"
    config.decoder = ml_collections.ConfigDict(
        dict(
            dict(width=32, depth=1, num_heads=2, mlp_ratio=2.0, lpips_weights=None, lpips_weight=1.0),
            **decoder,
        )
    )
    return config


def clips(config, count, start=0):
    source = sources.make_source(config.data, "train")
    return np.stack([source[i]["video"] for i in range(start, start + count)])


def test_output_shape_and_dtype():
    decoder = FrameDecoder(
        state_dim=E, width=16, depth=1, num_heads=2, patch_size=PATCH, tubelet_size=TUBELET, rngs=nnx.Rngs(0)
    )
    frames = decoder(jnp.zeros((2, 3, GRID[0] * GRID[1], E), jnp.bfloat16), GRID)
    assert frames.shape == (2, 3 * TUBELET, GRID[0] * PATCH, GRID[1] * PATCH, 3)
    assert frames.dtype == jnp.float32


def test_frames_of_step_t_see_states_up_to_t_only():
    decoder = FrameDecoder(
        state_dim=E, width=16, depth=2, num_heads=2, patch_size=PATCH, tubelet_size=TUBELET, rngs=nnx.Rngs(0)
    )
    randomize_module(decoder, jax.random.key(1))
    run = nnx.jit(lambda model, s: model(s, GRID))
    states = jax.random.normal(jax.random.key(2), (2, 4, GRID[0] * GRID[1], E))
    base = np.asarray(run(decoder, states))
    for t in range(4):  # perturb s_t: frames of steps < t are bit-identical, every frame of step >= t moves
        frames = np.asarray(run(decoder, states.at[:, t].add(0.5)))
        changed = [bool(np.any(frames[:, f] != base[:, f])) for f in range(4 * TUBELET)]
        assert changed == [f // TUBELET >= t for f in range(4 * TUBELET)], t


def test_one_token_decodes_its_own_pixel_cube():
    """Without blocks, token (t, i, j) sets only frames t*k.., rows i*p.., columns j*p.. (patch layout)."""
    decoder = FrameDecoder(
        state_dim=E, width=16, depth=0, num_heads=2, patch_size=PATCH, tubelet_size=TUBELET, rngs=nnx.Rngs(0)
    )
    randomize_module(decoder, jax.random.key(1))
    states = jax.random.normal(jax.random.key(2), (1, 2, GRID[0] * GRID[1], E))
    base = np.asarray(decoder(states, GRID))
    t, i, j = 1, 1, 2
    moved = np.asarray(decoder(states.at[:, t, i * GRID[1] + j].add(1.0), GRID)) != base
    expected = np.zeros_like(moved)
    expected[:, t * TUBELET : (t + 1) * TUBELET, i * PATCH : (i + 1) * PATCH, j * PATCH : (j + 1) * PATCH] = (
        True
    )
    np.testing.assert_array_equal(moved, expected)


def test_to_uint8_inverts_normalize_video():
    video = np.random.default_rng(0).integers(0, 256, (2, 3, 4, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(np.asarray(to_uint8(normalize_video(video))), video)
    np.testing.assert_array_equal(np.asarray(to_uint8(normalize_video(video) + 10.0)), 255)  # clipped
    assert float(pixels_0_255(jnp.full((1, 3), -10.0), clip=False).max()) < 0


def test_psnr_matches_hand_computed_values():
    x = np.zeros((3, 2, 2), np.float32)
    y = x.copy()
    y[0, 0, 0] = 1.0  # MSE 1/4: 10 log10(255^2 * 4) = 54.1514 dB
    y[1] = 10.0  # MSE 100: 10 log10(650.25) = 28.1308 dB
    y[2] = 1.0  # MSE 1 with max_value 1: 0 dB
    got = np.asarray(pixels.psnr(x, y))
    np.testing.assert_allclose(got[:2], [54.1514, 28.1308], atol=1e-4)
    np.testing.assert_allclose(float(pixels.psnr(x[2:], y[2:], max_value=1.0)[0]), 0.0, atol=1e-6)


@pytest.mark.parametrize("causal", ["tubelet", "per_frame"])
def test_system_decodes_clips_to_their_shape_and_shares_the_world_models_encoder(causal):
    config = decoder_config()
    config.model.encoder.update(causal=causal, depth=1)
    system = DecoderSystem(config)
    key = jax.random.key(3)
    params = system.init(key)
    expected = System(config.model).init(key)["encoder"]
    jax.tree.map(np.testing.assert_array_equal, params["encoder"], expected)
    other = system.init(jax.random.key(4))
    assert max_abs_diff(other["decoder"]["head"]["kernel"], params["decoder"]["head"]["kernel"]) > 0
    video = clips(config, 2)
    frames = system.decode(params, system.encode(params, video))
    assert frames.shape == video.shape
    assert system.reconstruct(params, video).dtype == jnp.uint8
    assert system.trainable == ("decoder",) and set(system.param_counts()) == {"encoder", "decoder"}


def test_overfits_one_batch_far_below_the_best_constant_image():
    config = decoder_config(width=64, depth=2, num_heads=4)
    config.model.encoder.update(width=64, num_heads=4)  # states rich enough to reconstruct from
    system = DecoderSystem(config)
    params = jax.jit(system.init)(jax.random.key(0))
    batch = {"video": clips(config, 4)}
    trainable = {"decoder": params["decoder"]}
    optimizer = optax.adam(3e-3)

    @jax.jit
    def step(trainable, opt_state):
        (loss, aux), grads = jax.value_and_grad(
            lambda p: system.loss_fn({**params, **p}, batch, None), has_aux=True
        )(trainable)
        updates, opt_state = optimizer.update(grads, opt_state, trainable)
        return optax.apply_updates(trainable, updates), opt_state, aux["metrics"]

    opt_state = optimizer.init(trainable)
    first = None
    for _ in range(300):
        trainable, opt_state, metrics = step(trainable, opt_state)
        first = first or metrics
    targets = np.asarray(normalize_video(batch["video"]))
    # The L1-optimal frame that ignores the states: the per-pixel median over clips and frames.
    constant_l1 = np.abs(targets - np.median(targets, axis=(0, 1), keepdims=True)).mean()
    final = float(metrics["l1"])
    assert final < 0.25 * float(first["l1"]), (final, float(first["l1"]))
    assert final < 0.5 * constant_l1, (final, constant_l1)
    assert float(metrics["psnr"]) > float(first["psnr"]) + 10
    np.testing.assert_allclose(float(metrics["loss"]), final)  # no LPIPS: the loss is the L1


def test_train_and_evaluate_writes_a_checkpoint_and_decoder_metrics(tmp_path):
    config = decoder_config(total_steps=3)
    result = train.train_and_evaluate(config, tmp_path)
    assert (tmp_path / "checkpoints" / "3").exists()
    written = json.loads((tmp_path / "eval" / "3.json").read_text())
    assert written["config"]["task"] == "decoder"
    assert set(result["eval"]) == {"decoder/l1", "decoder/psnr"}
    assert written["decoder/psnr"] == result["eval"]["decoder/psnr"]
    assert 0 < written["decoder/psnr"] < 60 and written["decoder/l1"] > 0
    assert {"loss", "l1", "psnr", "grad_norm"} <= set(result["history"][-1])


def test_lpips_is_added_with_its_weight_on_frames_in_minus_one_one(monkeypatch):
    """A stand-in LPIPS module (mean |x - y| times a loaded scale) checks the plumbing, not the network."""
    fake = types.ModuleType("lawm.models.lpips")
    fake.load = lambda path: {"scale": np.float32(2.0 if path == "weights.npz" else np.nan)}
    fake.distance = lambda params, x, y: params["scale"] * jnp.abs(x - y).mean(axis=(1, 2, 3))
    monkeypatch.setitem(sys.modules, "lawm.models.lpips", fake)
    monkeypatch.setattr(lawm.models, "lpips", fake, raising=False)

    config = decoder_config(lpips_weights="weights.npz", lpips_weight=0.5)
    system = DecoderSystem(config)
    params = {**system.init(jax.random.key(0)), **system.frozen_params(jax.random.key(0))}
    assert set(params) == {"encoder", "decoder", "lpips"}
    video = clips(config, 2)
    loss, aux = system.loss_fn(params, {"video": video}, None)
    frames = system.decode(params, system.encode(params, video))
    expected = 2.0 * np.abs(np.asarray(pixels_0_255(frames, clip=False)) - video).mean() / 127.5
    metrics = aux["metrics"]
    np.testing.assert_allclose(float(metrics["lpips"]), expected, rtol=1e-5)
    np.testing.assert_allclose(float(loss), float(metrics["l1"]) + 0.5 * expected, rtol=1e-5)
    results = evals.get("decoder")(evals.Context(systems.Model(system, params)), [{"video": video}])
    assert set(results) == {"decoder/l1", "decoder/psnr", "decoder/lpips"}
    assert 0 < results["decoder/lpips"] <= 2.0 * 2


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("width", 0, "decoder.width must be a positive integer, got 0"),
        ("depth", 1.5, "decoder.depth must be a positive integer, got 1.5"),
        ("num_heads", 3, r"decoder.width \(32\) is not divisible by decoder.num_heads \(3\)"),
        ("mlp_ratio", -1.0, "decoder.mlp_ratio must be > 0, got -1.0"),
        ("lpips_weight", float("inf"), "decoder.lpips_weight must be a finite number >= 0, got inf"),
        ("lpips_weights", 5, "decoder.lpips_weights must be a path or empty, got 5"),
        ("widht", 8, "decoder has no field 'widht'"),
    ],
)
def test_bad_decoder_config_fails_before_compute_with_one_line(field, value, message):
    config = decoder_config(**{field: value})
    with pytest.raises(train.ConfigError, match=message) as error:
        train.validate_config(config, num_devices=1)
    assert "\n" not in str(error.value)
