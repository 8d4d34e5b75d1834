"""The composed system: parameter counts, AdaLN-zero, rollout, loss composition, configs, imports."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from transformers import VJEPA2Config, VJEPA2Model

from lawm import config as config_lib
from lawm import regularizers
from lawm.systems.world_model import TRAINABLE
from lawm.systems.world_model import WorldModelSystem as System
from tests.helpers import max_abs_diff, perturb


def tiny_system(regularizer="none", **options):
    config = config_lib.tiny_model_config()
    config.regularizer = dict(name=regularizer, **options)
    return System(config)


def random_states(system, batch=2, steps=4, seed=0):
    n = system.grid_hw[0] * system.grid_hw[1]
    return jax.random.normal(jax.random.key(seed), (batch, steps, n, system.config.encoder.width))


def vit_params(depth, width, mlp_ratio=4):
    """Pre-LN ViT blocks with biases: q, k, v, proj, fc1, fc2 and two LayerNorms."""
    hidden = int(width * mlp_ratio)
    return depth * (4 * (width * width + width) + 2 * width * hidden + hidden + width + 4 * width)


def test_default_param_counts_without_allocation():
    counts = System(config_lib.model_config()).param_counts()  # jax.eval_shape: shapes only
    with torch.device("meta"):  # the reference model, also without allocating
        reference = VJEPA2Model(VJEPA2Config())
    vjepa2_l = sum(p.numel() for name, p in reference.named_parameters() if name.startswith("encoder."))
    assert counts["encoder"] == vjepa2_l  # the same network: every weight and bias, patch embedding included
    assert 300e6 < vjepa2_l < 306e6
    # World model: ViT-L blocks without LayerNorm affines (AdaLN replaces them), per-block modulation
    # Linear(128 -> 6 x 1024), in/out projections, final LayerNorm, latent MLP 128 -> 128 -> 128.
    wm_blocks = vit_params(24, 1024) - 24 * 4 * 1024 + 24 * (128 * 6 * 1024 + 6 * 1024)
    wm_rest = 2 * (1024 * 1024 + 1024) + 2 * 1024 + 2 * (128 * 128 + 128)
    assert counts["world_model"] == wm_blocks + wm_rest
    assert 290e6 < counts["world_model"] < 330e6  # ~300 M: a ViT-L plus its conditioning
    idm = vit_params(12, 768) + (1024 * 768 + 768) + 3 * 768 + 2 * 768 + (768 * 128 + 128)
    assert counts["idm"] == idm


def test_world_model_ignores_latents_at_init_and_not_after_one_step():
    system = tiny_system("none")
    params = system.init(jax.random.key(0))
    s = random_states(system)
    z1 = jax.random.normal(jax.random.key(1), (2, 3, system.config.latent_dim))
    z2 = jax.random.normal(jax.random.key(2), (2, 3, system.config.latent_dim))
    predict = jax.jit(system.predict)
    np.testing.assert_array_equal(predict(params, s[:, :-1], z1), predict(params, s[:, :-1], z2))

    trainable = {k: params[k] for k in TRAINABLE}
    optimizer = optax.adam(1e-2)
    grads = jax.jit(jax.grad(lambda t: system.loss_fn({**params, **t}, {"encoder_states": s}, None)[0]))(
        trainable
    )
    updates, _ = optimizer.update(grads, optimizer.init(trainable), trainable)
    stepped = {**params, **optax.apply_updates(trainable, updates)}
    assert max_abs_diff(predict(stepped, s[:, :-1], z1), predict(stepped, s[:, :-1], z2)) > 1e-6


def test_rollout_feeds_back_its_own_predictions():
    system = tiny_system("none")
    params = perturb(system.init(jax.random.key(0)), jax.random.key(3), scale=0.05)
    s = random_states(system, steps=3)
    context, steps = s[:, :2], 3
    latents = jax.random.normal(jax.random.key(4), (2, 2 + steps - 1, system.config.latent_dim))
    rollout = jax.jit(system.rollout, static_argnums=3)
    rolled = rollout(params, context, latents, steps)
    assert rolled.shape == (2, steps, *s.shape[2:])
    history, predict_next = context, jax.jit(system.predict_next)
    for i in range(steps):  # the same thing written as a growing loop over predict_next
        nxt = predict_next(params, history, latents[:, : history.shape[1]])
        np.testing.assert_allclose(rolled[:, i], nxt, atol=2e-5)
        history = jnp.concatenate([history, nxt[:, None]], axis=1)
    # Every predicted step depends on the whole history, so the first context state moves all of them.
    moved = rollout(params, context.at[:, 0].add(1.0), latents, steps)
    for i in range(steps):
        assert max_abs_diff(moved[:, i], rolled[:, i]) > 1e-4, i
    with pytest.raises(ValueError, match="needs 4 latents"):
        system.rollout(params, context, latents[:, :3], steps)


def test_loss_is_prediction_plus_regularizer_and_video_path_works():
    system = tiny_system("sparse", l1=0.05)
    params = perturb(system.init(jax.random.key(0)), jax.random.key(1), scale=0.05)
    video = np.random.default_rng(0).integers(0, 256, (2, 8, 64, 64, 3), dtype=np.uint8)
    loss, aux = jax.jit(system.loss_fn, static_argnums=3)(params, {"video": video}, jax.random.key(2), True)
    m = aux["metrics"]
    np.testing.assert_allclose(loss, m["prediction_loss"] + m["regularizer_loss"], rtol=1e-6)

    states = system.encode(params, video)
    assert states.shape == (2, 4, 16, system.config.encoder.width)
    np.testing.assert_allclose(states.mean(-1), 0, atol=1e-4)  # normalize_states
    z = system.infer_latents(params, states)
    predictions = system.predict(params, states[:, :-1], z)
    np.testing.assert_allclose(m["prediction_loss"], jnp.abs(predictions - states[:, 1:]).mean(), rtol=1e-5)
    _, expected_reg, _ = regularizers.sparse(
        system._module("idm", params)(states, system.grid_hw), {}, rng=None, train=True, l1=0.05
    )
    np.testing.assert_allclose(m["regularizer_loss"], expected_reg, rtol=1e-5)
    np.testing.assert_allclose(m["copy_last_l1"], jnp.abs(states[:, :-1] - states[:, 1:]).mean(), rtol=1e-5)


def test_noisy_samples_in_training_and_uses_the_mean_in_evaluation():
    system = tiny_system("noisy", beta=1e-3)
    params = system.init(jax.random.key(0))
    s = random_states(system)
    ev1 = system.infer_latents(params, s, rng=jax.random.key(1))
    ev2 = system.infer_latents(params, s, rng=jax.random.key(2))
    np.testing.assert_array_equal(ev1, ev2)
    tr1 = system.infer_latents(params, s, rng=jax.random.key(1), train=True)
    assert max_abs_diff(tr1, ev1) > 1e-3


def test_discrete_returns_what_the_dead_code_reset_needs():
    system = tiny_system("discrete", codebook_size=8, reset_every=10)
    params = system.init(jax.random.key(0))
    assert params["regularizer"]["codebook"].shape == (8, system.config.latent_dim)
    _, aux = system.loss_fn(params, {"encoder_states": random_states(system)}, None)
    assert int(aux["code_counts"].sum()) == 2 * 3
    assert aux["raw_latents"].shape == (2, 3, system.config.latent_dim)
    assert "code_counts" not in aux["metrics"] and "latent/perplexity" in aux["metrics"]


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("idm.num_heads", 5, "model.idm.width .* not divisible by model.idm.num_heads"),
        ("encoder.causal", "sideways", "model.encoder.causal must be one of"),
        ("idm.pairing", "frames", "model.idm.pairing must be one of"),
        ("encoder.image_size", 60, "model.encoder.image_size"),
        ("world_model.depth", 0, "model.world_model.depth must be a positive integer"),
        ("regularizer", {"name": "sparse", "l3": 1.0}, "regularizer 'sparse' has no option 'l3'"),
        ("regularizer", {"name": "dropout"}, "unknown regularizer 'dropout'"),
    ],
)
def test_bad_config_fails_before_any_compute_with_one_line(field, value, message):
    config = config_lib.tiny_model_config()
    parent, _, key = field.rpartition(".")
    (config[parent] if parent else config)[key] = value
    with pytest.raises(ValueError, match=message) as error:
        System(config)
    assert "\n" not in str(error.value)


def test_library_imports_without_tensorflow():
    code = (
        "import sys, lawm, lawm.systems, lawm.systems.world_model, lawm.config, lawm.runs, data_pipelines; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'torch')); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
