"""lawm-eval's evaluators on constructed systems whose right answers are known, and the runner."""

import threading

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from lawm import evals, runs, systems, train
from lawm.evals import capacity, common, latent_stats, probes, runner, scene_cut, transfer
from lawm.systems.world_model import WorldModelSystem as System
from tests import helpers

K = 2  # frames per state (tubelet)


class Constructed:
    """A stand-in world model over 'states' that are the raw pixels of each tubelet, split in 4 tokens.

    mode "oracle": the latent is the next state itself (the cheating latent a scene-cut test must catch),
      and the prediction is that latent plus a fixed error pattern (so errors are equal and non-zero);
    mode "perfect": the oracle without the pattern: a perfect predictor;
    mode "ignore": the prediction is the last state whatever the latent (a model that ignores z).
    """

    def __init__(self, mode):
        self.mode = mode
        self.config = ml_collections.ConfigDict(dict(encoder=dict(causal="tubelet", tubelet_size=K)))

    def encode(self, params, video):
        b, f = video.shape[:2]
        return (jnp.asarray(video, jnp.float32) / 255.0).reshape(b, f // K, 4, -1)

    def infer_latents(self, params, states, **kwargs):
        b, t = states.shape[:2]
        return states[:, 1:].reshape(b, t - 1, -1)

    def predict(self, params, states, latents):
        if self.mode == "ignore":
            return states
        prediction = latents.reshape(states.shape)
        if self.mode == "oracle":
            prediction = prediction + 0.1 * jnp.cos(jnp.arange(states.shape[-1], dtype=jnp.float32))
        return prediction

    rollout = System.rollout


def clips(num=6, frames=8, size=8, seed=0):
    rng = np.random.default_rng(seed)
    video = rng.integers(0, 256, (num, frames, size, size, 3), dtype=np.uint8)
    return [{"video": video[:3]}, {"video": video[3:]}]


def context_of(mode, **kwargs):
    return common.Context(model=common.Model(Constructed(mode), {}), **kwargs)


def test_a_perfect_predictor_has_zero_capacity_error_and_copy_last_does_not():
    results = capacity.evaluate(context_of("perfect"), clips(), context_steps=2)
    assert results["capacity/one_step"] < 1e-6 and results["capacity/rollout"] < 1e-6
    assert results["capacity/rollout_step_2"] < 1e-6
    assert results["capacity/copy_last_rollout"] > 0.1


def test_capacity_against_a_reference_model():
    reference = common.Model(Constructed("ignore"), {})
    results = capacity.evaluate(context_of("oracle", reference=reference), clips(), context_steps=1)
    # The reference ignores z: its one-step error is the copy-last error, its rollout repeats the context.
    np.testing.assert_allclose(results["capacity/reference_one_step"], results["capacity/copy_last_one_step"])
    np.testing.assert_allclose(results["capacity/reference_rollout"], results["capacity/copy_last_rollout"])
    expected = results["capacity/one_step"] / results["capacity/reference_one_step"]
    np.testing.assert_allclose(results["capacity/one_step_over_reference"], expected)
    assert results["capacity/one_step_over_reference"] < 0.5


def test_a_cheating_latent_sees_through_a_scene_cut():
    oracle = scene_cut.evaluate(context_of("oracle"), clips())
    np.testing.assert_allclose(oracle["scene_cut/ratio"], 1.0, rtol=1e-5)
    assert oracle["scene_cut/error_cut"] > 0.01  # equal, not both zero


def test_scene_cut_on_clips_where_only_the_cut_changes_anything():
    # Static clips (every frame equal): without a cut copy-last is exact, with one it is not.
    video = np.repeat(np.random.default_rng(1).integers(0, 256, (4, 1, 8, 8, 3), dtype=np.uint8), 8, axis=1)
    results = scene_cut.evaluate(context_of("ignore"), [{"video": video}], cut_step=2)
    assert results["scene_cut/error_no_cut"] < 1e-6 and results["scene_cut/error_cut"] > 0.1


def test_a_model_that_ignores_its_latents_transfers_perfectly():
    results = transfer.evaluate(context_of("ignore"), clips(), horizon=2)
    assert results["transfer/ratio"] == 1.0
    # The oracle's latents are B's states: cycled through B they no longer describe A.
    cheat = transfer.evaluate(context_of("oracle"), clips(), horizon=2)
    assert cheat["transfer/ratio"] > 1.5


def test_transfer_checks_the_horizon_fits():
    with pytest.raises(ValueError, match="horizon"):
        transfer.evaluate(context_of("ignore"), clips(frames=8), horizon=4)


def test_code_usage_and_perplexity():
    assert latent_stats.code_usage([5, 5, 5, 5]) == {"code_usage": 1.0, "code_perplexity": pytest.approx(4.0)}
    one = latent_stats.code_usage([0, 9, 0, 0])
    assert one["code_usage"] == 0.25 and one["code_perplexity"] == pytest.approx(1.0)


def test_the_state_aware_probe_finds_an_action_a_latent_alone_cannot_give():
    # The action is the latent rotated by the state's angle: no linear map of the latent gives it.
    rng = np.random.default_rng(0)
    n = 1200
    angle = rng.uniform(-np.pi, np.pi, n)
    z = rng.normal(size=(n, 1))
    action = np.stack([z[:, 0] * np.cos(angle), z[:, 0] * np.sin(angle)], axis=1)
    state = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    x = np.concatenate([z, state], axis=1)
    r2, valid = probes.mlp_probe(x[:800], action[:800], x[800:], action[800:])
    assert valid.all() and r2.min() > 0.8
    linear = probes.mlp_probe(state[:800], action[:800], state[800:], action[800:])[0]
    assert linear.max() < 0.2  # the state alone says nothing about the action


def test_unknown_evaluator_fails_before_compute():
    config = helpers.tiny_train_config()
    config.evaluators = dict(capacity={}, leakage={})
    with pytest.raises(ValueError, match="unknown evaluator 'leakage'"):
        runner.validate(config)
    assert set(evals.EVALUATORS) >= {"capacity", "scene_cut", "transfer", "latent_stats", "probes"}


def test_eval_follows_a_run_until_its_final_checkpoint(tmp_path):
    config = helpers.tiny_train_config(total_steps=6)  # checkpoints at 3 and 6
    config.evaluators = dict(latent_actions={}, latent_stats={}, scene_cut={}, capacity=dict(context_steps=1))
    outcome = {}

    def follow():
        outcome["results"] = runner.run(config, tmp_path, follow=True, poll_seconds=0.2, timeout_seconds=300)

    follower = threading.Thread(target=follow)
    follower.start()  # before any checkpoint exists
    final = train.train_and_evaluate(config, tmp_path)
    follower.join(timeout=300)
    assert not follower.is_alive(), "lawm-eval --follow did not stop after the final checkpoint"
    results = outcome["results"]
    assert 6 in results  # written after the follower started, and the last one
    assert set(results) <= {3, 6}
    record = runs.read_config(tmp_path)  # the trainer recorded its config for evaluation
    assert record.model.latent_dim == config.model.latent_dim
    merged = __import__("json").loads((tmp_path / "eval" / "6.json").read_text())
    assert merged[runs.LAWM_EVAL_MARK] and "scene_cut/ratio" in merged and "capacity/rollout" in merged
    # The trainer's own final evaluation is kept alongside and agrees on the shared metric.
    np.testing.assert_allclose(merged["own_over_shuffled"], final["eval"]["own_over_shuffled"], rtol=1e-5)
    assert runs.already_evaluated(tmp_path, 6)


def test_a_run_restores_from_its_workdir_alone(tmp_path):
    config = helpers.tiny_train_config(total_steps=3)
    train.train_and_evaluate(config, tmp_path)
    model = systems.load(tmp_path)
    assert isinstance(model.system, System)
    assert set(model.params) == {"encoder", "idm", "world_model", "regularizer"}
    video = clips(num=2, frames=4, size=32)[0]["video"]
    states = jax.jit(model.system.encode)(model.params, video)
    assert states.shape[:2] == (2, 2)
