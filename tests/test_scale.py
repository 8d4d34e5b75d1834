"""Scale-out and faults: two processes on loopback, SIGTERM across them, kill -9, corrupt checkpoints."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from lawm import checkpoint as checkpoint_lib
from lawm import distributed, sharding, train
from lawm import step as step_lib
from tests.helpers import tiny_train_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(workdir, **options):
    command = [sys.executable, "-m", "tests.scale_worker", f"--workdir={workdir}"]
    command += [f"--{k}={v}" for k, v in options.items()]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process, timeout=300):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def losses(history):
    return {h["step"]: h["loss"] for h in history}


def steps_on_disk(workdir):
    folder = workdir / "checkpoints"
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.exists() else []


def test_two_processes_train_like_one_process_on_as_many_devices(tmp_path):
    port = free_port()
    pair = [
        start(
            tmp_path / "two",
            devices=2,
            num_processes=2,
            process_id=i,
            port=port,
            record=tmp_path / f"read_{i}.txt",
        )
        for i in range(2)
    ]
    single = start(tmp_path / "one", devices=4)
    results = [finish(p) for p in pair]
    reference = finish(single)
    assert losses(results[0]["history"]) == losses(results[1]["history"])  # one global loss, seen by both
    np.testing.assert_allclose(
        list(losses(results[0]["history"]).values()), list(losses(reference["history"]).values()), rtol=1e-5
    )
    read = [set(map(int, (tmp_path / f"read_{i}.txt").read_text().split())) for i in range(2)]
    assert read[0] and read[1] and read[0].isdisjoint(read[1])

    # The checkpoint the two processes wrote together restores in this single process (8 devices).
    config = tiny_train_config()
    parts = step_lib.build(config, sharding.make_mesh(dict(data=-1)))
    abstract = sharding.abstract_like(jax.eval_shape(parts.make_state, parts.rng), parts.shardings)
    step, state = checkpoint_lib.Checkpointer(tmp_path / "two" / "checkpoints").restore_latest(abstract)
    _, reference_state = checkpoint_lib.Checkpointer(tmp_path / "one" / "checkpoints").restore_latest(
        abstract
    )
    assert step == 6
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
        jax.device_get(state["params"]),
        jax.device_get(reference_state["params"]),
    )


def test_sigterm_to_one_of_two_processes_checkpoints_both_at_the_same_step(tmp_path):
    port = free_port()
    options = dict(devices=2, num_processes=2, port=port, total_steps=100000, checkpoint_every=100000)
    pair = [start(tmp_path / "run", process_id=i, **options) for i in range(2)]
    deadline = time.time() + 240
    while not list((tmp_path / "run").glob("*tfevents*")) and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(3)
    pair[1].send_signal(signal.SIGTERM)  # maintenance events may reach only some hosts
    results = [finish(p) for p in pair]
    assert results[0]["preempted_at"] == results[1]["preempted_at"] > 0
    assert steps_on_disk(tmp_path / "run") == [results[0]["preempted_at"]]


def test_kill_9_at_any_moment_resumes_with_the_uninterrupted_losses(tmp_path):
    config = tiny_train_config(total_steps=10)
    config.mesh = dict(data=-1)
    config.checkpoint_every = 2
    straight = losses(train.train_and_evaluate(config, tmp_path / "straight")["history"])
    for moment, (after_checkpoint, delay) in enumerate([(2, 0.0), (4, 0.7)]):
        workdir = tmp_path / f"killed_{moment}"
        process = start(workdir, devices=8, total_steps=10, checkpoint_every=2)
        deadline = time.time() + 240
        while not [s for s in steps_on_disk(workdir) if s >= after_checkpoint] and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(delay)
        process.kill()  # SIGKILL: no handler runs, an async save may be half-written
        process.communicate()
        resumed = losses(train.train_and_evaluate(config, workdir)["history"])
        first = min(resumed)
        assert first > after_checkpoint and max(resumed) == 10
        assert resumed == {step: straight[step] for step in range(first, 11)}


def corrupt(checkpoint_dir):
    """Truncates the largest file of a checkpoint (its array data)."""
    biggest = max((p for p in checkpoint_dir.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    biggest.write_bytes(biggest.read_bytes()[: biggest.stat().st_size // 2])


def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    config = tiny_train_config(total_steps=6)
    config.checkpoint_every = 2
    straight = losses(train.train_and_evaluate(config, tmp_path / "straight")["history"])
    train.train_and_evaluate(config, tmp_path / "run", num_steps=4)
    corrupt(tmp_path / "run" / "checkpoints" / "4")
    resumed = losses(train.train_and_evaluate(config, tmp_path / "run")["history"])
    assert resumed == {step: straight[step] for step in (3, 4, 5, 6)}  # resumed from step 2
    assert any("checkpoints/4 is unreadable" in r.getMessage() for r in caplog.records)
    assert (tmp_path / "run" / "checkpoints" / "4.corrupt").is_dir()


def test_no_readable_checkpoint_is_an_error_and_changes_nothing(tmp_path):
    config = tiny_train_config(total_steps=4)
    config.checkpoint_every = 2
    train.train_and_evaluate(config, tmp_path, num_steps=4)
    for step in (2, 4):
        corrupt(tmp_path / "checkpoints" / str(step))
    message = r"no readable checkpoint .* \(tried steps 4, 2\)"
    with pytest.raises(checkpoint_lib.CheckpointError, match=message):
        train.train_and_evaluate(config, tmp_path)
    assert steps_on_disk(tmp_path) == [2, 4] and not list((tmp_path / "checkpoints").glob("*.corrupt"))


def test_slurm_steps_are_recognised_as_multi_process_launches(monkeypatch):
    assert not distributed.launched_by_cluster()  # this machine: a plain process
    for var, value in dict(
        SLURM_JOB_ID="7",
        SLURM_STEP_NODELIST="node[0-1]",
        SLURM_NTASKS="2",
        SLURM_PROCID="1",
        SLURM_LOCALID="0",
    ).items():
        monkeypatch.setenv(var, value)
    assert distributed.launched_by_cluster()
