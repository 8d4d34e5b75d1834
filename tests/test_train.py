"""Trainer: sharded steps match one device, exact resume, mesh-to-mesh restore, SIGTERM, NaN, configs."""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from data_pipelines import sources
from lawm import checkpoint as checkpoint_lib
from lawm import sharding, train
from lawm import step as step_lib
from tests.helpers import tiny_train_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def one_step(config, mesh_config, devices):
    """Loss and updated params after one real train step on the given mesh."""
    mesh = sharding.make_mesh(mesh_config, devices)
    parts = step_lib.build(config, mesh)
    state = jax.jit(parts.make_state, out_shardings=parts.shardings)(parts.rng)
    step = jax.jit(step_lib.make_train_step(parts.system, parts.optimizer, None), donate_argnums=0)
    new_state, metrics = step(
        state, parts.frozen, train.to_device(first_batch(config), mesh, parts.system.batch_keys)
    )
    return float(metrics["loss"]), jax.device_get(new_state["params"]), new_state


def first_batch(config):
    source = sources.make_source(config.data, "train")
    return {"video": np.stack([source[i]["video"] for i in range(config.batch_size)])}


@pytest.mark.parametrize("mesh_config", [dict(data=8), dict(data=2, fsdp=4), dict(fsdp=4, tensor=2)])
def test_sharded_step_matches_one_device(mesh_config):
    assert jax.device_count() == 8
    config = tiny_train_config()
    config.model.world_model.width = 32  # divisible by fsdp and tensor, so both really shard
    loss_1, params_1, _ = one_step(config, dict(data=1), jax.devices()[:1])
    loss_n, params_n, state_n = one_step(config, mesh_config, jax.devices())
    np.testing.assert_allclose(loss_n, loss_1, rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-4), params_n, params_1)
    kernel = state_n["params"]["world_model"]["blocks"][0]["mlp"]["fc1"]["kernel"]
    expected = {"fsdp", "tensor"} & {k for k, v in mesh_config.items() if v > 1}
    assert expected <= set(kernel.sharding.spec) - {None}  # the test really exercised FSDP / tensor


def test_resume_is_exact(tmp_path):
    config = tiny_train_config(total_steps=6)
    straight = train.train_and_evaluate(config, tmp_path / "straight")
    first = train.train_and_evaluate(config, tmp_path / "resumed", num_steps=3)
    assert first["stopped_at"] == 3
    second = train.train_and_evaluate(config, tmp_path / "resumed")
    resumed = first["history"] + second["history"]
    assert [h["step"] for h in resumed] == [h["step"] for h in straight["history"]] == list(range(1, 7))
    for a, b in zip(straight["history"], resumed, strict=True):
        assert a["loss"] == b["loss"] and a["grad_norm"] == b["grad_norm"], (a["step"], a["loss"], b["loss"])
    assert straight["eval"] == second["eval"]


def test_checkpoint_restores_onto_another_mesh(tmp_path):
    config = tiny_train_config()
    config.model.world_model.width = 32
    _, params, state = one_step(config, dict(fsdp=8), jax.devices())
    checkpointer = checkpoint_lib.Checkpointer(tmp_path, asynchronous=False)
    checkpointer.save(1, state)
    checkpointer.wait()

    other = sharding.make_mesh(dict(data=2, tensor=4))
    target = sharding.abstract_like(state, sharding.state_shardings(state, other))
    restored = checkpointer.restore(1, target)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored["params"]), params)
    kernel = restored["params"]["world_model"]["blocks"][0]["mlp"]["fc1"]["kernel"]
    assert kernel.sharding.mesh.shape == other.shape and "tensor" in kernel.sharding.spec


def test_sigterm_checkpoints_and_exits_zero(tmp_path):
    workdir = tmp_path / "run"
    script = (
        "import sys; from tests.helpers import tiny_train_config; from lawm import train\n"
        "config = tiny_train_config(total_steps=100000); config.checkpoint_every = 100000\n"
        "print(train.train_and_evaluate(config, sys.argv[1]).get('preempted_at'), flush=True)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(workdir)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 240
    while not list(workdir.glob("*tfevents*")) and time.time() < deadline:  # training has started
        time.sleep(0.5)
    time.sleep(3)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-2000:]
    preempted_at = int(out.strip().splitlines()[-1])
    checkpointer = checkpoint_lib.Checkpointer(workdir / "checkpoints")
    assert checkpointer.latest_step() == preempted_at > 0
    # Restorable: the trainer resumes from it and continues.
    config = tiny_train_config(total_steps=preempted_at + 2)
    result = train.train_and_evaluate(config, workdir)
    assert [h["step"] for h in result["history"]] == [preempted_at + 1, preempted_at + 2]


class PoisonedSource:
    """Wraps a source: float32 videos that turn into NaN after `clean` records (a corrupt input)."""

    def __init__(self, source, clean):
        self.source, self.clean, self.served = source, clean, 0

    def __len__(self):
        return len(self.source)

    def __getitem__(self, index):
        record = dict(self.source[index])
        self.served += 1
        record["video"] = record["video"].astype(np.float32)
        if self.served > self.clean:
            record["video"][:] = np.nan
        return record


def test_nan_stops_the_run_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    config = tiny_train_config(total_steps=50)
    config.checkpoint_every = 2
    config.data.prefetch = 1
    make_source = sources.make_source
    monkeypatch.setattr(
        sources,
        "make_source",
        lambda data, split: (
            PoisonedSource(make_source(data, split), clean=8 * 5)
            if split == "train"
            else make_source(data, split)
        ),
    )
    with pytest.raises(
        train.NonFiniteError, match=r"non-finite at step (\d+); stopping: the last checkpoint"
    ) as e:
        train.train_and_evaluate(config, tmp_path)
    bad_step = int(str(e.value).split("at step ")[1].split(";")[0])
    checkpointer = checkpoint_lib.Checkpointer(tmp_path / "checkpoints")
    last = checkpointer.latest_step()
    assert last is not None and 0 < last <= bad_step
    assert f"(step {last})" in str(e.value)
    restored = checkpointer.restore(last, None)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(restored["params"]))


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("model.regularizer", {"name": "gumbel"}, "unknown regularizer 'gumbel'"),
        ("mesh", {"data": 3}, r"mesh .* does not divide the 8 devices"),
        ("batch_size", 12, "batch_size 12 is not divisible by the data-parallel size 8"),
        ("data.world.num_frames", 5, "5 frames per clip, not divisible by model.encoder.tubelet_size"),
    ],
)
def test_bad_config_fails_before_compiling_with_one_line(tmp_path, field, value, message):
    config = tiny_train_config()
    config.mesh = dict(data=8)
    parent, _, key = field.rpartition(".")
    target = config
    for part in parent.split(".") if parent else []:
        target = target[part]
    target[key] = value
    with pytest.raises(train.ConfigError, match=message) as error:
        train.train_and_evaluate(config, tmp_path)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "checkpoints").exists()  # nothing was built


def test_train_step_reseeds_dead_codes_every_reset_every_steps():
    config = tiny_train_config(regularizer="discrete")
    config.model.regularizer = dict(name="discrete", codebook_size=64, reset_every=2)
    parts = step_lib.build(config, sharding.make_mesh(dict(data=1), jax.devices()[:1]))
    assert parts.reset_every == 2
    state, frozen = jax.jit(parts.make_state)(parts.rng), parts.frozen
    batch = first_batch(config)  # 8 clips x 1 transition
    step = jax.jit(step_lib.make_train_step(parts.system, parts.optimizer, reset_every=2))
    state, metrics = step(state, frozen, batch)
    assert float(metrics["latent/codes_reset"]) == 0 and int(state["code_counts"].sum()) == 8
    before = np.asarray(state["params"]["regularizer"]["codebook"])
    state, metrics = step(state, frozen, batch)
    assert int(state["code_counts"].sum()) == 0  # counters start again after a reset
    assert 64 - 16 <= float(metrics["latent/codes_dead"]) < 64  # 16 latents used at most 16 codes
    # Each of the batch's 8 latents re-seeds one dead code (without replacement); the other dead codes wait.
    assert float(metrics["latent/codes_reset"]) == 8
    after = np.asarray(state["params"]["regularizer"]["codebook"])
    moved = np.abs(after - before).max(axis=1)
    assert (moved > 0.1).sum() == 8  # re-seeded codes jumped to latents (far from their U(-1/K, 1/K) start)
