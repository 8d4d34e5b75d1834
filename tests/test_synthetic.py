"""Tests for the synthetic world: determinism, ground truth that matches the pixels, the step API and the
grain source."""

import dataclasses
import pickle
import subprocess
import sys

import grain
import numpy as np
import pytest

from data_pipelines.sources import synthetic as S

BUSY = S.WorldConfig(num_distractors=(2, 2), entering_objects=1.0)  # every moving part present
STATIC = S.WorldConfig(camera_pan=False, num_distractors=(0, 0), entering_objects=0.0)


def _agent_actions(record):
    """Present agents' actions (F-1, n, 2)."""
    n = record["num_agents"]
    return record["actions"][:, : 2 * n].reshape(-1, n, 2)


def _replay(config, seed, index, actions):
    """Renders the states reached from initial_state by stepping with the given actions."""
    state = S.initial_state(config, seed, index)
    states = [state]
    for action in actions:
        state = S.step(state, action)
        states.append(state)
    return states, np.stack([S.render(s) for s in states])


# --- determinism, shapes ---------------------------------------------------------------------------------


def test_same_seed_and_index_is_bit_identical():
    a, b = S.generate(BUSY, 3, 11), S.generate(BUSY, 3, 11)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])  # NaN == NaN here


def test_different_index_or_seed_gives_a_different_clip():
    base = S.generate(BUSY, 3, 11)
    for other in (S.generate(BUSY, 3, 12), S.generate(BUSY, 4, 11)):
        assert not np.array_equal(base["video"], other["video"])
        assert not np.array_equal(base["actions"], other["actions"])


@pytest.mark.parametrize(
    "config",
    [S.WorldConfig(), S.WorldConfig(image_size=32, num_frames=5, num_agents=(2, 2), sprite_radius=(2, 4))],
)
def test_shapes_and_dtypes(config):
    record = S.generate(config, 0, 1)
    f, size, max_agents = config.num_frames, config.image_size, config.num_agents[1]
    assert record["video"].shape == (f, size, size, 3) and record["video"].dtype == np.uint8
    assert record["actions"].shape == (f - 1, S.action_dim(config)) and record["actions"].dtype == np.float32
    assert S.action_dim(config) == 2 * max_agents + 2
    assert record["agent_positions"].shape == (f, max_agents, 2)
    assert record["agent_positions"].dtype == np.float32
    assert record["camera_positions"].shape == (f, 2) and record["camera_positions"].dtype == np.float32
    assert isinstance(record["num_agents"], int)
    assert config.num_agents[0] <= record["num_agents"] <= max_agents


# --- ground truth --------------------------------------------------------------------------------------


def test_actions_are_the_displacements_applied():
    seen_absent = False
    for index in range(20):
        record = S.generate(BUSY, 0, index)
        n, positions, actions = record["num_agents"], record["agent_positions"], record["actions"]
        # exact: positions and actions lie on a 1/256 px grid
        np.testing.assert_array_equal(np.diff(positions[:, :n], axis=0), _agent_actions(record))
        np.testing.assert_array_equal(np.diff(record["camera_positions"], axis=0), actions[:, -2:])
        assert np.all(np.isfinite(positions[:, :n])) and np.all(np.isnan(positions[:, n:]))
        assert not np.any(actions[:, 2 * n : -2])
        seen_absent |= n < BUSY.num_agents[1]
    assert seen_absent


def test_replaying_recorded_actions_reproduces_the_clip():
    for index in range(6):
        record = S.generate(BUSY, 5, index)
        states, video = _replay(BUSY, 5, index, record["actions"])
        np.testing.assert_array_equal(video, record["video"])
        np.testing.assert_array_equal(
            np.stack([s.agents.position for s in states]), record["agent_positions"]
        )
        np.testing.assert_array_equal(np.stack([s.camera for s in states]), record["camera_positions"])


def test_agent_pattern_period_sets_the_checkerboard_scale():
    u = np.linspace(-20.0, 20.0, 81, dtype=np.float32)
    dy, dx = u[:, None], u[None, :]
    for period in (6.0, 16.0):
        pattern = S._pattern(dy, dx, period)
        np.testing.assert_allclose(S._pattern(dy + period, dx, period), pattern, atol=1e-5)
        np.testing.assert_allclose(S._pattern(dy + period / 2, dx, period), -pattern, atol=1e-5)
    assert not np.allclose(S._pattern(dy, dx, 6.0), S._pattern(dy, dx, 16.0))


def test_patterned_agents_replay_exactly_and_their_pattern_moves_with_them():
    patterned = dataclasses.replace(BUSY, agent_pattern=60.0, num_agents=(1, 1), sprite_radius=(8.0, 10.0))
    record = S.generate(patterned, 2, 0)
    np.testing.assert_array_equal(_replay(patterned, 2, 0, record["actions"])[1], record["video"])
    plain = S.generate(dataclasses.replace(patterned, agent_pattern=0.0), 2, 0)
    changed = np.any(record["video"] != plain["video"], axis=-1)  # (F, H, W): only the agent's pixels
    y, x = record["agent_positions"][0, 0]
    assert changed[0, int(y) - 6 : int(y) + 6, int(x) - 6 : int(x) + 6].mean() > 0.3
    assert not changed[0, : max(int(y) - 12, 0)].any() and not changed[0, int(y) + 12 :].any()
    # The pattern is painted in the agent's own coordinates: a whole-pixel move carries it along unchanged.
    still = S.initial_state(
        dataclasses.replace(patterned, num_distractors=(0, 0), entering_objects=0.0), 2, 0
    )
    still = still._replace(agents=still.agents._replace(position=np.round(still.agents.position)))
    moved = still._replace(agents=still.agents._replace(position=still.agents.position + np.float32([2, 3])))
    y, x = still.agents.position[0].astype(int)
    before, after = S.render(still), S.render(moved)
    np.testing.assert_array_equal(
        after[y - 5 + 2 : y + 5 + 2, x - 5 + 3 : x + 5 + 3], before[y - 5 : y + 5, x - 5 : x + 5]
    )


def test_entering_object_enters_and_distractors_move():
    record_states = [_replay(BUSY, 1, i, S.generate(BUSY, 1, i)["actions"])[0] for i in range(8)]
    entered = 0
    for states in record_states:
        size = BUSY.image_size
        y, x = np.stack([s.entering.position[0] for s in states]).T
        inside = (y > 0) & (y < size) & (x > 0) & (x < size)
        entered += bool(not inside[0] and inside.any())
        assert not np.array_equal(states[0].distractors.position, states[-1].distractors.position)
    assert entered >= 6  # it can start late and only reach the border by the last frame


def test_world_is_static_without_actions():
    """Motion comes from the actions: no pan, no distractors, no entering object, zero actions -> still."""
    zero = np.zeros((STATIC.num_frames - 1, S.action_dim(STATIC)), np.float32)
    for index in range(3):
        _, video = _replay(STATIC, 0, index, zero)
        assert np.all(video == video[:1])
        assert not np.all(S.generate(STATIC, 0, index)["video"] == video[:1])  # the policy does move things


def test_agent_action_moves_only_that_agent():
    state = S.initial_state(STATIC, 0, 2)
    action = np.zeros(S.action_dim(STATIC), np.float32)
    action[:2] = (1.5, -2.0)
    moved = S.step(state, action)
    np.testing.assert_array_equal(moved.agents.position[0], state.agents.position[0] + [1.5, -2.0])
    np.testing.assert_array_equal(moved.agents.position[1:], state.agents.position[1:])
    changed = np.any(S.render(moved) != S.render(state), axis=-1)
    y, x = np.nonzero(changed)
    reach = state.agents.radius[0] + 4
    assert changed.any() and np.all(np.abs(y + 0.5 - state.agents.position[0, 0]) < reach)
    assert np.all(np.abs(x + 0.5 - state.agents.position[0, 1]) < reach)


def test_positive_pan_moves_the_background_up_and_left():
    config = dataclasses.replace(STATIC, camera_pan=True)
    state = S.initial_state(config, 0, 4)
    action = np.zeros(S.action_dim(config), np.float32)
    action[-2:] = (1.0, 2.0)
    before, after = S.render(state), S.render(S.step(state, action))
    # The view moved by (1, 2): after[i, j] == before[i + 1, j + 2], away from the (unmoved) sprites.
    rows, cols = np.mgrid[: config.image_size, : config.image_size] + 0.5
    far = np.ones_like(rows, bool)
    for (y, x), r in zip(state.agents.position[: state.num_agents], state.agents.radius, strict=False):
        far &= (np.abs(rows - y) > r + 1) | (np.abs(cols - x) > r + 1)
    far = far[:-1, :-2] & far[1:, 2:]
    assert far.sum() > 1000
    np.testing.assert_array_equal(after[:-1, :-2][far], before[1:, 2:][far])
    assert not np.array_equal(after[:-1, :-2][far], before[:-1, :-2][far])


def test_turn_follows_rot90():
    """A world-frame displacement between two marked pixels shows as `_turn` of it once the picture is
    turned by np.rot90; the band of a turned camera is the unturned band turned the same way."""
    size = 16
    image = np.zeros((size, size), np.int32)
    image[3, 5], image[9, 12] = 1, 2  # displacement (6, 7)
    for turns in range(-1, 5):
        turned = np.rot90(image, turns)
        seen = np.argwhere(turned == 2)[0] - np.argwhere(turned == 1)[0]
        np.testing.assert_array_equal(S._turn(np.float32([[6, 7]]), turns)[0], seen)
        np.testing.assert_array_equal(S._turn(S._turn(np.float32([[6, 7]]), turns), -turns)[0], [6, 7])
        band = np.zeros((1, size, size, 3), np.float32)
        S._draw_horizon(band, turns)
        upright = np.zeros_like(band)
        S._draw_horizon(upright, 0)
        np.testing.assert_array_equal(band[0], np.rot90(upright[0], turns))
        assert (band == S.HORIZON_COLOR).mean() == 1 / 8


def test_turned_camera_turns_the_actions_and_shows_the_band():
    """With camera_rotation a clip is the unturned world's clip plus the band, its actions turned back to
    the world's frame; replaying them reproduces it exactly."""
    turned = dataclasses.replace(BUSY, camera_rotation=True)
    rotations = set()
    for index in range(8):
        plain, record = S.generate(BUSY, 4, index), S.generate(turned, 4, index)
        rotation = S.initial_state(turned, 4, index).rotation
        rotations.add(rotation)
        band = np.zeros((1, BUSY.image_size, BUSY.image_size, 3), np.float32)
        S._draw_horizon(band, rotation)
        band = np.broadcast_to(band == S.HORIZON_COLOR, record["video"].shape)
        assert np.all(record["video"][band] == S.HORIZON_COLOR)
        np.testing.assert_array_equal(record["video"][~band], plain["video"][~band])
        np.testing.assert_array_equal(record["camera_positions"], plain["camera_positions"])
        n = record["num_agents"]
        world = record["actions"].reshape(len(record["actions"]), -1, 2)
        np.testing.assert_array_equal(
            S._turn(world, rotation).reshape(plain["actions"].shape), plain["actions"]
        )
        np.testing.assert_array_equal(
            np.diff(record["camera_positions"], axis=0), S._turn(world[:, -1], rotation)
        )
        if rotation % 2:  # a quarter turn swaps the axes: the world-frame pan differs from the frame's
            assert not np.array_equal(record["actions"][:, -2:], plain["actions"][:, -2:])
        states, video = _replay(turned, 4, index, record["actions"])
        np.testing.assert_array_equal(video, record["video"])
        np.testing.assert_array_equal(
            np.stack([s.agents.position for s in states])[:, :n], record["agent_positions"][:, :n]
        )
    assert rotations == {0, 1, 2, 3}
    assert S.initial_state(BUSY, 4, 0).rotation == 0


def test_step_clips_to_the_bounds_and_the_frame():
    state = S.initial_state(BUSY, 0, 0)
    n, size = state.num_agents, BUSY.image_size
    push = np.tile(np.array([BUSY.max_speed * 10, -BUSY.max_speed * 10], np.float32), S.action_dim(BUSY) // 2)
    moved = S.step(state, push)
    np.testing.assert_array_equal(moved.camera - state.camera, [BUSY.max_pan, -BUSY.max_pan])
    np.testing.assert_array_equal(np.abs(moved.agents.position[:n] - state.agents.position[:n]) <= 3.0, True)
    for _ in range(40):
        state = S.step(state, push)
    radius = state.agents.radius[:n]
    np.testing.assert_array_equal(state.agents.position[:n, 0], size - radius - 0.5)
    np.testing.assert_array_equal(state.agents.position[:n, 1], radius + 0.5)
    with pytest.raises(ValueError, match="action must have shape"):
        S.step(state, push[:-1])


def test_sprites_stay_in_frame_and_actions_are_bounded():
    config = S.WorldConfig(num_frames=32, max_speed=4.0, smoothness=0.9, num_distractors=(2, 2))
    size = config.image_size
    for index in range(20):
        record = S.generate(config, 2, index)
        state = S.initial_state(config, 2, index)
        n, radius = record["num_agents"], state.agents.radius[: record["num_agents"], None]
        positions = record["agent_positions"][:, :n]
        assert np.all(positions - radius >= 0.5) and np.all(positions + radius <= size - 0.5)
        assert np.all(np.abs(record["actions"][:, :-2]) <= config.max_speed)
        assert np.all(np.abs(record["actions"][:, -2:]) <= config.max_pan)
        for action in record["actions"]:
            state = S.step(state, action)
            d_radius = state.distractors.radius[:, None]
            assert np.all(state.distractors.position - d_radius >= 0.5)
            assert np.all(state.distractors.position + d_radius <= size - 0.5)
    no_pan = S.generate(dataclasses.replace(config, camera_pan=False), 2, 0)
    assert not np.any(no_pan["actions"][:, -2:]) and np.all(
        no_pan["camera_positions"] == no_pan["camera_positions"][0]
    )


@pytest.mark.parametrize("rho", [0.5, 0.9])
def test_policy_has_the_configured_lag1_autocorrelation(rho):
    config = S.WorldConfig(num_frames=64, smoothness=rho)
    records = [S.generate(config, 9, i) for i in range(40)]

    def lag1(x_NTK):
        return float(np.sum(x_NTK[:, 1:] * x_NTK[:, :-1]) / np.sum(x_NTK * x_NTK))

    pan = np.stack([r["actions"][:, -2:] for r in records])
    agents = np.concatenate([_agent_actions(r).transpose(1, 0, 2) for r in records])
    # Clipping to the bound and bouncing off walls lower it a little.
    assert abs(lag1(pan) - rho) < 0.15 and abs(lag1(agents) - rho) < 0.15
    assert abs(lag1(pan) - rho) < 0.05


# --- config ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("image_size", 8),
        ("image_size", 64.0),
        ("num_frames", 1),
        ("fps", 0.0),
        ("num_agents", (0, 2)),
        ("num_agents", (3, 1)),
        ("num_agents", 2),
        ("num_distractors", (-1, 2)),
        ("camera_pan", "yes"),
        ("camera_rotation", 1),
        ("max_pan", -1.0),
        ("max_speed", float("nan")),
        ("smoothness", 1.0),
        ("entering_objects", 1.5),
        ("sprite_radius", (5.0, 40.0)),
        ("sprite_radius", (0.5, 3.0)),
        ("texture_scale", 0.0),
        ("texture_contrast", 200.0),
        ("agent_pattern", -1.0),
        ("agent_pattern_period", 0.0),
    ],
)
def test_bad_config_fails_with_one_line_naming_the_field(field, value):
    with pytest.raises(ValueError) as error:
        S.WorldConfig(**{field: value})
    message = str(error.value)
    assert f"WorldConfig.{field} " in message and "\n" not in message


def test_config_accepts_lists_and_stays_hashable():
    config = S.WorldConfig(num_agents=[2, 3], sprite_radius=[2, 5])
    assert config.num_agents == (2, 3) and config.sprite_radius == (2.0, 5.0)
    hash(config)


# --- grain source ----------------------------------------------------------------------------------------


def test_source_batches_through_grain():
    source = S.SyntheticSource(S.WorldConfig(num_frames=8), seed=1, length=100)
    assert isinstance(source, grain.sources.RandomAccessDataSource) and len(source) == 100
    batch = grain.MapDataset.source(source).batch(4)[1]
    assert batch["video"].shape == (4, 8, 64, 64, 3) and batch["video"].dtype == np.uint8
    assert batch["actions"].shape == (4, 7, 8) and batch["agent_positions"].shape == (4, 8, 3, 2)
    assert batch["camera_positions"].shape == (4, 8, 2) and batch["num_agents"].shape == (4,)
    np.testing.assert_array_equal(batch["video"][2], S.generate(source.config, 1, 6)["video"])
    with pytest.raises(IndexError):
        source[100]
    assert len(S.SyntheticSource()) == S.DEFAULT_LENGTH
    copy = pickle.loads(pickle.dumps(source))  # grain's worker processes receive the source this way
    np.testing.assert_array_equal(copy[3]["video"], source[3]["video"])


def test_splits_are_disjoint_seeds():
    config = S.WorldConfig(num_frames=4)
    train, held_out = S.SyntheticSource(config, split="train"), S.SyntheticSource(config, split="eval")
    for index in range(3):
        assert not np.array_equal(train[index]["video"], held_out[index]["video"])
        np.testing.assert_array_equal(train[index]["video"], S.SyntheticSource(config)[index]["video"])
    with pytest.raises(ValueError, match="split"):
        S.SyntheticSource(config, split="test")
    with pytest.raises(ValueError, match="seed"):
        S.SyntheticSource(config, seed=2**32)


def test_import_pulls_in_no_tensorflow_or_torch():
    code = (
        "import sys, data_pipelines.sources.synthetic\n"
        "bad = [m for m in ('tensorflow', 'torch') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
