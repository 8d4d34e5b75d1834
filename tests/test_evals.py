"""The latent-action evaluator: shuffled-latent control, copy-last baseline, probes."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lawm import config as config_lib
from lawm.evals import latent_actions
from lawm.systems.world_model import WorldModelSystem as System


def test_probe_recovers_a_linear_action_and_not_noise():
    rng = np.random.default_rng(0)
    latents = rng.normal(size=(40, 7, 6))
    actions = np.stack([latents @ rng.normal(size=6), rng.normal(size=(40, 7))], axis=-1)
    r2 = latent_actions.probe(latents, actions, names=["linear", "noise"])
    assert r2["probe_r2/linear"] > 0.99
    assert r2["probe_r2/noise"] < 0.1
    assert r2["probe_r2_max"] == r2["probe_r2/linear"]
    constant = latent_actions.probe(latents, np.zeros((40, 7, 1)))
    assert "probe_r2/action_0" not in constant  # no variance: skipped, not a division by zero


def test_transition_actions_are_displacements_between_tubelet_means():
    frame_actions = np.random.default_rng(1).normal(size=(2, 7, 3))
    encoder = ml_collections.ConfigDict(dict(causal="tubelet", tubelet_size=2))
    positions = np.concatenate([np.zeros((2, 1, 3)), np.cumsum(frame_actions, axis=1)], axis=1)
    expected = (
        positions[:, 2:8:2] / 2 + positions[:, 3:8:2] / 2 - positions[:, 0:6:2] / 2 - positions[:, 1:6:2] / 2
    )
    np.testing.assert_allclose(latent_actions.transition_actions(frame_actions, 3, encoder), expected)
    per_frame = ml_collections.ConfigDict(dict(causal="per_frame", tubelet_size=2))
    np.testing.assert_allclose(latent_actions.transition_actions(frame_actions, 7, per_frame), frame_actions)


class MotionLatents:
    """A stand-in system whose latents carry each clip's motion: states are a tubelet's pixels (4 tokens),
    z_t = 0.8 (s_{t+1} - s_t), and the prediction is s_t + z_t. With its own latents the error is 0.2 of
    copy-last's; another clip's latents describe another motion."""

    config = ml_collections.ConfigDict(dict(encoder=dict(causal="tubelet", tubelet_size=2)))

    def encode(self, params, video):
        b, f = video.shape[:2]
        return (jnp.asarray(video, jnp.float32) / 255.0).reshape(b, f // 2, 4, -1)

    def infer_latents(self, params, states, **kwargs):
        motion = states[:, 1:] - states[:, :-1]
        return 0.8 * motion.reshape(*motion.shape[:2], -1)

    def predict(self, params, states, latents):
        return states + latents.reshape(states.shape)


def test_latents_that_carry_the_motion_beat_other_clips_latents():
    rng = np.random.default_rng(0)
    batches = [{"video": rng.integers(0, 256, (3, 6, 8, 8, 3), dtype=np.uint8)} for _ in range(2)]
    results = latent_actions.evaluate(MotionLatents(), {}, batches)
    np.testing.assert_allclose(results["own_over_copy_last"], 0.2, rtol=1e-4)
    assert results["own_over_shuffled"] < 0.5  # far below one: the latents are this clip's own motion
    # Another clip's motion fits this clip worse than no motion at all.
    assert results["error_shuffled_latents"] > results["error_copy_last"]


def test_latents_that_carry_nothing_score_one_against_shuffled():
    config = config_lib.tiny_model_config()
    config.regularizer = dict(name="deterministic")  # z = 0 for every clip: shuffling changes nothing
    system = System(config)
    params = jax.jit(system.init)(jax.random.key(0))
    rng = np.random.default_rng(0)
    batches = [
        {
            "video": rng.integers(0, 256, (3, 4, 64, 64, 3), dtype=np.uint8),
            "actions": rng.normal(size=(3, 3, 4)),
        }
        for _ in range(2)
    ]
    results = latent_actions.evaluate(system, params, batches)
    assert results["own_over_shuffled"] == 1.0
    np.testing.assert_allclose(
        results["own_over_copy_last"], results["error_own_latents"] / results["error_copy_last"]
    )
    assert results["error_copy_last"] > 0
