"""Controller training (task "controller"): a tiny world model trained here, then a controller on it."""

import jax
import ml_collections
import numpy as np
import pytest

from lawm import checkpoint, optim, sharding, step, systems, train
from lawm.systems.controller import ControllerSystem
from tests.helpers import tiny_train_config


def controller_config(world_workdir, world_config, *, kind="adapter", steps=24, duplication=True):
    """experiments/configs/controller.py:synthetic shrunk to the tiny world model: seconds on a CPU."""
    from experiments.configs import controller

    config = controller.get_config("synthetic")
    config.model = ml_collections.ConfigDict(world_config.model.to_dict())
    config.data.world = dict(world_config.data.world.to_dict(), num_frames=4)
    config.data.num_threads = 1
    config.controller.update(
        world_model_workdir=str(world_workdir),
        kind=kind,
        width=16,
        num_heads=2,
        mlp_width=16,
        frame_duplication=duplication,
    )
    config.total_steps = config.optim.total_steps = steps
    config.batch_size = 8
    config.log_every = 1
    config.checkpoint_every = steps
    config.eval.update(num_clips=8, batch_size=8)
    return config


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(workdir, config) of a world model trained for a few steps."""
    workdir = tmp_path_factory.mktemp("world")
    config = tiny_train_config(total_steps=3)
    train.train_and_evaluate(config, workdir)
    return workdir, config


@pytest.mark.parametrize("kind", ["adapter", "mlp"])
def test_controller_trains_on_a_frozen_world_model(world, tmp_path, kind):
    # The tiny world model is barely trained, so its latents are mostly a function of the states: the
    # adapter, which sees them, fits them; the actions-only MLP cannot, so it only has to run.
    config = controller_config(*world, kind=kind, steps=24 if kind == "adapter" else 4)
    out = train.train_and_evaluate(config, tmp_path)
    losses = [h["loss"] for h in out["history"]]
    if kind == "adapter":
        assert np.mean(losses[-4:]) < 0.5 * np.mean(losses[:4]), losses
    assert (tmp_path / "checkpoints" / str(config.total_steps)).is_dir()
    results = out["eval"]
    for key in (
        "latent_mse",
        "error/idm",
        "error/controller",
        "error/zero_action",
        "rollout_error/controller",
    ):
        assert np.isfinite(results[f"controller/{key}"]), key
    # Only the controller trains: the world model's params are the run's, untouched.
    system = systems.make(config)
    assert system.trainable == ("controller",) and set(system.init(jax.random.key(0))) == {"controller"}


def leaves_by_path(tree):
    """{"idm/blocks/0/...": leaf}: a checkpoint's metadata names list indices "0" where init has 0."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(str(getattr(k, "key", k)) for k in path): leaf for path, leaf in flat}


def test_frozen_params_are_the_world_model_runs(world):
    workdir, world_config = world
    system = ControllerSystem(controller_config(*world))
    mesh = sharding.make_mesh(dict(data=-1))
    frozen = jax.device_get(system.frozen_params(jax.random.key(123), mesh))
    assert set(frozen) == {"encoder", "idm", "world_model", "regularizer"}
    # The run's final trained state, read back the way the trainer resumes: its checkpoint of the last
    # step restored into the trainer's own abstract state, and its frozen encoder from the run's seed.
    parts = step.build(world_config, mesh)
    abstract = sharding.abstract_like(jax.eval_shape(parts.make_state, parts.rng), parts.shardings)
    checkpointer = checkpoint.Checkpointer(workdir / "checkpoints")
    try:
        trained = jax.device_get(checkpointer.restore(world_config.total_steps, abstract)["params"])
    finally:
        checkpointer.close()
    expected = {**jax.device_get(parts.frozen), **trained}
    assert set(trained) == {"idm", "world_model", "regularizer"}
    got, want = leaves_by_path(frozen), leaves_by_path({k: expected[k] for k in frozen})
    assert got.keys() == want.keys()
    for path, value in want.items():
        np.testing.assert_array_equal(got[path], value, err_msg=path)
    # Training moved the weights, so the comparison above tells the trained model from a fresh one.
    initial = jax.device_get(parts.make_state(parts.rng)["params"])
    for part in ("idm", "world_model"):
        moved = jax.tree.map(lambda a, b: bool(np.any(a != b)), trained[part], initial[part])
        assert any(jax.tree.leaves(moved)), part


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("controller.world_model_workdir", None, "controller.world_model_workdir is not set"),
        ("controller.world_model_workdir", "/nonexistent/run", "controller.world_model_workdir: "),
        ("controller.kind", "transformer", "controller.kind must be one of"),
        ("controller.action_dim", 3, "controller.action_dim (3) != the synthetic world's action dim"),
        ("controller.width", 15, "controller.width (15) is not divisible by controller.num_heads"),
        ("controller.action_scale", -1.0, "controller.action_scale must be finite and > 0"),
        ("model.latent_dim", 9, "model.latent_dim is 9 but the world model run"),
        ("task", "planner", "task must be one of"),
    ],
)
def test_bad_config_fails_before_compute_with_one_line(world, tmp_path, field, value, message):
    config = controller_config(*world)
    parent, _, name = field.rpartition(".")
    (config[parent] if parent else config)[name] = value
    with pytest.raises(train.ConfigError) as error:
        train.train_and_evaluate(config, tmp_path / "run")
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "run").exists()  # nothing written, nothing compiled


def test_a_run_without_checkpoints_is_refused(world, tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "config.json").write_text((world[0] / "config.json").read_text())
    with pytest.raises(ValueError, match="no checkpoint in"):
        ControllerSystem(controller_config(tmp_path, world[1]))


def test_frame_actions_map_to_latent_steps(world):
    system = ControllerSystem(controller_config(*world, duplication=True))
    frame_actions = np.arange(5 * 2, dtype=np.float32).reshape(1, 5, 2)  # a_0..a_4, F = 6 frames
    # Duplicated frames: one frame action per latent, by index.
    assert system.frame_repeats == 2 and system.frames_per_step == 1
    np.testing.assert_array_equal(system.step_actions(frame_actions, 5), frame_actions)
    # Native tubelets (k = 2): u_t = a_{2t+1} + a_{2t+2}, the actions between the states' newest frames.
    native = ControllerSystem(controller_config(*world, duplication=False))
    assert native.frame_repeats == 1 and native.frames_per_step == 2
    a = frame_actions[0]
    np.testing.assert_array_equal(native.step_actions(frame_actions, 2)[0], [a[1] + a[2], a[3] + a[4]])


def test_duplicated_frames_give_one_state_per_frame(world):
    system = ControllerSystem(controller_config(*world))
    params = system.frozen_params(jax.random.key(0))
    video = np.random.default_rng(0).integers(0, 255, (2, 4, 32, 32, 3), dtype=np.uint8)
    states = np.asarray(system.encode_frames(params, video))
    assert states.shape[1] == 4
    # State 0 is the world model's encoding of frame 0 repeated over a tubelet ...
    repeated = np.repeat(video[:, :1], 2, axis=1)
    np.testing.assert_allclose(
        states[:, 0], np.asarray(system.world.encode(params, repeated))[:, 0], atol=1e-5
    )
    # ... and a frame changes its own state and no earlier one.
    other = video.copy()
    other[:, 3] = 255 - other[:, 3]
    changed = np.asarray(system.encode_frames(params, other))
    assert np.abs(changed[:, 3] - states[:, 3]).max() > 1e-3
    np.testing.assert_array_equal(changed[:, :3], states[:, :3])


def test_to_device_carries_actions_as_float32():
    mesh = sharding.make_mesh(dict(data=-1))
    batch = {"video": np.zeros((8, 2, 4, 4, 3), np.uint8), "actions": np.ones((8, 1, 3)), "meta": "dropped"}
    out = train.to_device(batch, mesh, ControllerSystem.batch_keys)
    assert set(out) == {"video", "actions"}
    assert out["actions"].dtype == np.float32 and out["video"].dtype == np.uint8


def test_adamw_only_optimiser_has_no_muon_leaves():
    trainable = {
        "controller": {
            "blocks": {"0": {"kernel": np.zeros((4, 4), np.float32)}},
            "head": {"kernel": np.zeros((4, 2), np.float32)},
        }
    }
    assert optim.MUON in jax.tree.leaves(optim.param_labels(trainable))
    assert set(jax.tree.leaves(optim.param_labels(trainable, use_muon=False))) == {optim.ADAMW}
    config = optim.optim_config(10)
    config.use_muon = False
    opt = optim.make_optimizer(config, trainable)
    updates, _ = opt.update(jax.tree.map(np.ones_like, trainable), opt.init(trainable), trainable)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(updates))
    with pytest.raises(ValueError, match="optim.use_muon must be a bool"):
        optim.validate_optim_config(ml_collections.ConfigDict(dict(config.to_dict(), use_muon="no")))
