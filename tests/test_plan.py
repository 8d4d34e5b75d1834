"""lawm-plan: the synthetic protocol end to end on tiny models, and its scores on constructed cases."""

import copy
import json
import types

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image

from experiments import plan
from experiments.configs import plan as plan_configs
from lawm import systems, train
from lawm.planning import protocols as planning_protocols
from lawm.systems.controller import ControllerSystem
from tests.helpers import tiny_train_config
from tests.test_controller_training import controller_config


@pytest.fixture(scope="module")
def controller_run(tmp_path_factory):
    """A controller trained for a few steps on a world model trained for a few steps (native tubelets)."""
    world_workdir = tmp_path_factory.mktemp("world")
    world_config = tiny_train_config(total_steps=2)
    train.train_and_evaluate(world_config, world_workdir)
    workdir = tmp_path_factory.mktemp("controller")
    config = controller_config(world_workdir, world_config, steps=2, duplication=False)
    config.data.world.num_frames = 8
    train.train_and_evaluate(config, workdir)
    return workdir


def tiny_plan_config():
    config = plan_configs.get_config("synthetic")
    config.num_episodes = 2
    config.horizon = 2
    config.cem.update(num_samples=16, num_elites=4, iterations=2)
    config.num_pictures = 2
    return config


def test_synthetic_protocol_end_to_end(controller_run):
    record = plan.plan(tiny_plan_config(), controller_run)
    written = json.loads((controller_run / "plan" / "synthetic.json").read_text())
    assert written == json.loads(json.dumps(record))
    assert written["episodes"] == 2 and written["controller_kind"] == "adapter"
    for name in ("planned", "zero", "random"):
        for metric in ("delta", "delta_agents", "delta_camera", "agent_error", "camera_error"):
            assert np.isfinite(written[f"{name}/{metric}"]), (name, metric)
    assert written["delta_over_zero"] == pytest.approx(written["planned/delta"] / written["zero/delta"])
    picture = Image.open(controller_run / "plan" / "synthetic.png")
    assert picture.width == 3 * 32 * 4 + 2 * 4 and picture.height == 2 * 32 * 4 + 4  # 2 rows of 3 frames


def test_a_protocol_the_run_cannot_serve_fails_before_compute(controller_run):
    config = tiny_plan_config()
    config.protocol = "droid"
    with pytest.raises(ValueError, match="protocol 'droid' needs a controller trained on 'records'"):
        plan.plan(config, controller_run)
    config.protocol = "synthetic"
    config.cem.num_elites = 100
    with pytest.raises(ValueError, match="num_elites 100 exceeds num_samples"):
        plan.plan(config, controller_run)


def synthetic_episode(k=2, horizon=2, **world_fields):
    """A real synthetic episode (one agent in two slots) for a stand-in system of k frames per step."""
    world = dict(image_size=32, num_agents=(1, 2), sprite_radius=(2.0, 4.0), max_speed=2.0, max_pan=1.0)
    world.update(world_fields)
    system = types.SimpleNamespace(
        frames_per_step=k, config=ml_collections.ConfigDict(dict(data=dict(world=world, seed=0)))
    )
    system.step_actions = lambda actions, steps: ControllerSystem.step_actions(system, actions, steps)
    config = ml_collections.ConfigDict(dict(horizon=horizon, num_episodes=8))
    episodes, bounds = planning_protocols.synthetic_episodes(system, config)
    episode = next(e for e in episodes if e.extra["clip"]["num_agents"] == 1)
    return episode, bounds


def test_delta_of_a_constructed_plan():
    episode, bounds = synthetic_episode()
    np.testing.assert_array_equal(episode.mask, [1, 1, 0, 0, 1, 1])  # agent 1 is absent
    np.testing.assert_array_equal(bounds[1], [4, 4, 4, 4, 2, 2])  # k = 2 frame steps of the world's speeds
    true = episode.true_actions
    clip = episode.extra["clip"]
    np.testing.assert_allclose(true.sum(0), clip["actions"][1:5].sum(0))  # frames 1 -> 5: newest to newest
    # The true plan, executed as halves, ends where the clip does (up to the 1/256 px grid) ...
    exact = planning_protocols.score_synthetic(episode, true)
    assert exact["delta"] == 0.0 and exact["camera_error"] < 0.01 and exact["agent_error"] < 0.05
    # ... and per-step offsets add up over the 2 steps: (1, -2) px on the agent, and +-0.5 px on the camera
    # towards zero (so the pan stays within its bound); the absent agent's dims (garbage here) do not count.
    camera = -0.5 * np.where(true[:, 4] < 0, -1.0, 1.0)
    offset = np.stack(
        [np.full(2, 1.0), np.full(2, -2.0), np.full(2, 7.0), np.full(2, -9.0), camera, np.zeros(2)], 1
    )
    scores = planning_protocols.score_synthetic(episode, true + offset)
    assert scores["delta_agents"] == pytest.approx(2 * (1 + 2))
    assert scores["delta_camera"] == pytest.approx(abs(camera.sum()))
    assert scores["delta"] == pytest.approx(6 + abs(camera.sum()))
    assert scores["camera_error"] == pytest.approx(abs(camera.sum()), abs=0.01)
    # Zero actions: Δ is the L1 norm of the true total displacement.
    zero = planning_protocols.score_synthetic(episode, np.zeros_like(true))
    assert zero["delta"] == pytest.approx(np.abs(true.sum(0)[[0, 1, 4, 5]]).sum())


def test_straight_line_is_nwms_line():
    """NWM's line (planning_eval.py): equal steps in the start's frame; the heading turns to the line's
    direction on the first step and by the final offset on the last (calculate_delta_yaw, then += θ)."""
    total = np.array([[[2.0, 1.0, np.pi / 2]], [[-1.0, 0.0, 0.0]], [[0.0, 0.0, 0.3]]], np.float32)
    steps = np.asarray(planning_protocols.straight_line(jnp.asarray(total), jnp.zeros(8)))
    heading = np.arctan2(1.0, 2.0)
    poses = planning_protocols.integrate_poses(steps[0])
    np.testing.assert_allclose(poses[:, :2], np.outer(np.arange(9) / 8, [2.0, 1.0]), atol=1e-5)
    np.testing.assert_allclose(poses[1:-1, 2], heading, atol=1e-6)  # facing along the line
    np.testing.assert_allclose(poses[-1, 2], heading + np.pi / 2, atol=1e-6)
    # In the robot's frame: the first step is the start-frame step, the others straight ahead.
    np.testing.assert_allclose(steps[0, 0], [0.25, 0.125, heading], atol=1e-6)
    np.testing.assert_allclose(steps[0, 1:, :2], [[np.hypot(0.25, 0.125), 0.0]] * 7, atol=1e-6)
    backwards = planning_protocols.integrate_poses(steps[1])  # turns around, then drives forward
    np.testing.assert_allclose(backwards[-1], [-1.0, 0.0, np.pi], atol=1e-6)
    still = planning_protocols.integrate_poses(steps[2])  # no motion: only the final offset
    np.testing.assert_allclose(still[-1], [0.0, 0.0, 0.3], atol=1e-6)


def test_droid_protocol_on_action_records(controller_run, tmp_path):
    """The droid path (eval records, Δxyz), on the synthetic controller with records of its action size."""
    from data_pipelines import records, video
    from lawm.evals import common

    rng = np.random.default_rng(0)
    clips = [
        {
            "frames": [
                video.encode_jpeg(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(6)
            ],
            "fps": 4.0,
            "actions": rng.normal(size=(5, 8)).astype(np.float32),
            "meta": {"source_id": f"clip{i}"},
        }
        for i in range(3)
    ]
    records.write_shard(tmp_path / "eval-00000.array_record", clips)
    model = systems.load(controller_run)
    system = copy.copy(model.system)  # the same networks, reading records
    system.config = ml_collections.ConfigDict(system.config.to_dict())
    system.config.data = ml_collections.ConfigDict(
        dict(
            source="records",
            paths=dict(train="", eval=str(tmp_path)),
            num_frames=6,
            fps=4.0,
            image_size=32,
            seed=0,
        )
    )
    config = plan_configs.get_config("droid")
    config.update(num_episodes=2, horizon=2, num_pictures=2, action_low=[-1.0] * 8, action_high=[1.0] * 8)
    config.cem.update(num_samples=16, num_elites=4, iterations=2)
    results = planning_protocols.run(common.Model(system, model.params), config, tmp_path / "droid.png")
    assert results["episodes"] == 2
    # Native tubelets (k = 2): a step's true action sums 2 frame actions, from the start state's newest frame.
    # The 2 episodes are 2 different records (a seeded sample spread over episodes), each from frame 0.
    zero = [np.abs(c["actions"][1:5, :3].sum(0)).sum() for c in clips]
    pairs = [np.mean([zero[i], zero[j]]) for i in range(3) for j in range(i + 1, 3)]
    assert min(abs(results["zero/delta_xyz"] - p) for p in pairs) < 1e-5 * max(pairs)
    assert np.isfinite(results["planned/delta_xyz"]) and (tmp_path / "droid.png").exists()


def test_a_turned_camera_over_a_still_agent_is_planned_in_the_world_frame():
    """camera_rotation: plans are world-frame actions, executed through the turn; a still agent's dims
    (max_speed 0) are not planned."""
    episode, bounds = synthetic_episode(camera_rotation=True, max_speed=0.0)
    np.testing.assert_array_equal(episode.mask, [0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(bounds[1], [0, 0, 0, 0, 2, 2])
    true = episode.true_actions
    exact = planning_protocols.score_synthetic(episode, true)
    assert exact["delta"] == 0.0 and exact["camera_error"] < 0.01 and exact["delta_agents"] == 0.0
    turned = np.stack([true[:, 5], -true[:, 4]], 1)  # a quarter turn of the true pan: Δ is the difference
    scores = planning_protocols.score_synthetic(episode, np.concatenate([true[:, :4], turned], 1))
    assert scores["delta"] == pytest.approx(np.abs(turned.sum(0) - true[:, 4:].sum(0)).sum())
    assert scores["camera_error"] == pytest.approx(
        np.linalg.norm(turned.sum(0) - true[:, 4:].sum(0)), abs=0.01
    )
