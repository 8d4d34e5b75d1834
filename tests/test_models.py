"""Encoder modes, and the alignment invariants of the IDM and the world model, proved by perturbation."""

import jax
import numpy as np
import pytest
from flax import nnx

from lawm.models.encoder import VideoEncoder
from lawm.models.idm import InverseDynamics
from lawm.models.world_model import WorldModel
from tests.helpers import max_abs_diff, randomize_module

GRID = (2, 3)  # a non-square token grid everywhere below
N, E, LATENT = GRID[0] * GRID[1], 12, 6


def tiny_encoder(causal):
    return VideoEncoder(
        width=24, depth=2, num_heads=2, patch_size=8, tubelet_size=2, causal=causal, rngs=nnx.Rngs(0)
    )


def video(frames=8, seed=0):
    return jax.random.normal(jax.random.key(seed), (2, frames, 8 * GRID[0], 8 * GRID[1], 3))


@pytest.mark.parametrize("causal,steps", [("tubelet", 4), ("none", 4), ("per_frame", 8)])
def test_encoder_shapes(causal, steps):
    states = tiny_encoder(causal)(video())
    assert states.shape == (2, steps, N, 24)


def changed_steps(causal, first_changed_frame, end=None):
    """Which output states change when frames first_changed_frame..end (exclusive) of the input change."""
    encoder = tiny_encoder(causal)
    x = video()
    x2 = x.at[:, first_changed_frame:end].add(1.0)
    a, b = np.asarray(encoder(x)), np.asarray(encoder(x2))
    return [bool(np.any(a[:, t] != b[:, t])) for t in range(a.shape[1])]


def test_encoder_tubelet_mode_is_causal_over_steps():
    # Frames 4.. are tubelets 2 and 3: states 0 and 1 must be bit-identical, states 2 and 3 must change.
    assert changed_steps("tubelet", 4) == [False, False, True, True]
    # ... and the past does reach later steps: frames 0-1 (tubelet 0) move every state, frames 2-3 every
    # state from 1 on. An encoder whose steps saw only their own tubelet would change state 0 (1) alone.
    assert changed_steps("tubelet", 0, 2) == [True, True, True, True]
    assert changed_steps("tubelet", 2, 4) == [False, True, True, True]


def test_encoder_none_mode_leaks_the_future():
    # The same check fails for the bidirectional encoder: every state sees every frame.
    assert changed_steps("none", 4) == [True, True, True, True]


def test_encoder_per_frame_mode_encodes_each_frame_alone():
    encoder = tiny_encoder("per_frame")
    x = video()
    a, b = np.asarray(encoder(x)), np.asarray(encoder(x.at[:, 5].add(1.0)))
    assert [bool(np.any(a[:, t] != b[:, t])) for t in range(8)] == [t == 5 for t in range(8)]


def test_encoder_rejects_partial_tubelets_and_patches():
    with pytest.raises(ValueError, match="tubelets"):
        tiny_encoder("tubelet")(video(frames=7))
    with pytest.raises(ValueError, match="patch size"):
        tiny_encoder("tubelet")(jax.numpy.zeros((1, 2, 12, 16, 3)))


def states(steps=5, seed=1):
    return jax.random.normal(jax.random.key(seed), (2, steps, N, E))


@pytest.mark.parametrize("pairing", ["tokens", "channels"])
def test_idm_latent_depends_only_on_its_pair(pairing):
    idm = InverseDynamics(
        state_dim=E, out_dim=LATENT, width=16, depth=2, num_heads=2, pairing=pairing, rngs=nnx.Rngs(0)
    )
    run = nnx.jit(lambda model, s: model(s, GRID))  # one compile instead of many slow eager calls
    s = states()
    base = np.asarray(run(idm, s))
    assert base.shape == (2, 4, LATENT)
    for k in range(5):  # perturb s_k: exactly z_{k-1} and z_k (the pairs that contain it) change
        z = np.asarray(run(idm, s.at[:, k].add(0.5)))
        changed = [bool(np.any(z[:, t] != base[:, t])) for t in range(4)]
        assert changed == [t in (k - 1, k) for t in range(4)], k
    # The pair is ordered: the same two states the other way round are another transition.
    swapped = np.asarray(run(idm, s.at[:, 1].set(s[:, 0]).at[:, 0].set(s[:, 1])))
    assert max_abs_diff(swapped[:, 0], base[:, 0]) > 1e-4


def test_world_model_prediction_sees_only_the_past():
    wm = WorldModel(
        state_dim=E, latent_dim=LATENT, width=16, depth=2, num_heads=2, cond_dim=8, rngs=nnx.Rngs(0)
    )
    randomize_module(wm, jax.random.key(7))  # AdaLN-zero would otherwise hide every z dependency
    run = nnx.jit(lambda model, s, z: model(s, z, GRID))
    s = states()
    z = jax.random.normal(jax.random.key(2), (2, 5, LATENT))
    base = np.asarray(run(wm, s, z))
    for t in range(4):
        # The future (s_{t+1..}, z_{t+1..}) may change: prediction t must stay bit-identical.
        future_s = np.asarray(run(wm, s.at[:, t + 1 :].add(1.0), z))
        future_z = np.asarray(run(wm, s, z.at[:, t + 1 :].add(1.0)))
        np.testing.assert_array_equal(future_s[:, t], base[:, t])
        np.testing.assert_array_equal(future_z[:, t], base[:, t])
        # ... while its own inputs s_t and z_t do move it, so the check above can fail.
        assert max_abs_diff(np.asarray(run(wm, s.at[:, t].add(1.0), z))[:, t], base[:, t]) > 1e-4
        assert max_abs_diff(np.asarray(run(wm, s, z.at[:, t].add(1.0)))[:, t], base[:, t]) > 1e-4
    # The past does reach later predictions: s_0 and z_0 move every prediction, not only prediction 0.
    past_s = np.asarray(run(wm, s.at[:, 0].add(1.0), z))
    past_z = np.asarray(run(wm, s, z.at[:, 0].add(1.0)))
    for t in range(1, 5):
        assert max_abs_diff(past_s[:, t], base[:, t]) > 1e-4, t
        assert max_abs_diff(past_z[:, t], base[:, t]) > 1e-4, t


def test_residual_world_model_starts_from_copy_last_and_learns_the_change():
    kw = dict(state_dim=E, latent_dim=LATENT, width=16, depth=1, num_heads=2, cond_dim=8)
    wm = WorldModel(residual=True, rngs=nnx.Rngs(0), **kw)
    s = states()
    z = jax.random.normal(jax.random.key(2), (2, 5, LATENT))
    np.testing.assert_array_equal(np.asarray(wm(s, z, GRID)), np.asarray(s))  # zero head: exactly copy-last
    randomize_module(wm, jax.random.key(3))
    moved = np.asarray(wm(s, z, GRID))
    assert max_abs_diff(moved, s) > 1e-3  # once trained, the head adds a change to s_t
    plain = WorldModel(rngs=nnx.Rngs(0), **kw)
    nnx.update(plain, nnx.state(wm))  # the same weights, without the skip connection
    np.testing.assert_allclose(moved - np.asarray(s), np.asarray(plain(s, z, GRID)), atol=1e-5)
