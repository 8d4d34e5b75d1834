"""The command-line tools as run: re-running a command replaces its results, and a bad input is one line.

Each command runs as a subprocess of its real entry point (python -m experiments.<command>) on one tiny
world-model run shared by the module (trained by lawm-train itself) and a controller run on top of it.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from lawm import train
from tests.helpers import tiny_train_config
from tests.test_controller_training import controller_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 2
# The world run's config file: the tests' tiny config, with one cheap evaluator for lawm-eval.
WORLD_CONFIG = f"""
def get_config(arg=None):
    from tests.helpers import tiny_train_config

    config = tiny_train_config(total_steps={STEPS})
    config.evaluators = dict(latent_stats={{}})
    return config
"""
TINY_PLAN = [
    "--config.num_episodes=2",
    "--config.horizon=2",
    "--config.cem.num_samples=16",
    "--config.cem.num_elites=4",
    "--config.cem.iterations=2",
    "--config.num_pictures=2",
]


def command(name, *args):
    """Runs `python -m experiments.<name> args...` from the repository root; returns the finished process."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, "-m", f"experiments.{name}", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def succeeds(process):
    assert process.returncode == 0, process.stderr[-3000:]
    return process


def leftover_temporaries(workdir):
    return [p for p in workdir.rglob(".*") if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(config file, workdir, train arguments) of a world model trained to completion by lawm-train."""
    folder = tmp_path_factory.mktemp("cli")
    config_file = folder / "world.py"
    config_file.write_text(textwrap.dedent(WORLD_CONFIG))
    workdir = folder / "world"
    args = [f"--config={config_file}", f"--workdir={workdir}"]
    succeeds(command("train", *args))
    return config_file, workdir, args


@pytest.fixture(scope="module")
def controller(world, tmp_path_factory):
    """A controller run on the world model (trained in-process, as tests/test_plan.py does)."""
    _, world_workdir, _ = world
    workdir = tmp_path_factory.mktemp("controller")
    config = controller_config(
        world_workdir, tiny_train_config(total_steps=STEPS), steps=2, duplication=False
    )
    config.data.world.num_frames = 8
    train.train_and_evaluate(config, workdir)
    return workdir


def test_train_again_after_completion_replaces_the_final_evaluation(world):
    _, workdir, args = world
    result = workdir / "eval" / f"{STEPS}.json"
    before = result.stat().st_ino
    succeeds(command("train", *args))
    assert result.stat().st_ino != before  # written anew, by a rename over the old file
    assert json.loads(result.read_text())["step"] == STEPS
    assert [p.name for p in (workdir / "eval").glob("*.json")] == [result.name]
    assert not leftover_temporaries(workdir)


def test_eval_twice_on_the_same_step(world):
    config_file, workdir, _ = world
    result = workdir / "eval" / f"{STEPS}.json"
    inodes = []
    for _ in range(2):
        succeeds(command("eval", f"--config={config_file}", f"--workdir={workdir}", f"--step={STEPS}"))
        record = json.loads(result.read_text())
        assert record["evaluated_by_lawm_eval"] and record["step"] == STEPS
        inodes.append(result.stat().st_ino)
    assert inodes[0] != inodes[1]
    assert [p.name for p in (workdir / "eval").glob("*.json")] == [result.name]
    assert not leftover_temporaries(workdir)


def test_plan_twice_on_the_same_controller_run(controller):
    result = controller / "plan" / "synthetic.json"
    inodes = []
    for _ in range(2):
        args = ["--config=experiments/configs/plan.py:synthetic", f"--workdir={controller}", *TINY_PLAN]
        succeeds(command("plan", *args))
        record = json.loads(result.read_text())
        assert record["protocol"] == "synthetic" and record["episodes"] == 2
        inodes.append(result.stat().st_ino)
    assert inodes[0] != inodes[1]
    assert sorted(p.name for p in (controller / "plan").iterdir()) == ["synthetic.json", "synthetic.png"]
    assert not leftover_temporaries(controller)


def one_line_error(process, name):
    """The command failed with one line `lawm-<name>: error: ...` last on stderr and no traceback."""
    assert process.returncode != 0
    assert "Traceback" not in process.stderr, process.stderr[-3000:]
    last = [line for line in process.stderr.splitlines() if line.strip()][-1]
    assert last.startswith(f"lawm-{name}: error: "), process.stderr[-3000:]
    return last


@pytest.mark.parametrize(
    "args,named",
    [
        (["--config=experiments/configs/quickstart.py", "--config.model.bogus=3"], "--config.model.bogus"),
        (["--config=experiments/configs/nope.py"], "experiments/configs/nope.py"),
        (["--config=experiments/configs/nope.py", "--config.total_steps=3"], "experiments/configs/nope.py"),
        (["--config=experiments/configs/lawm_yt1b.py:bogus"], "got 'bogus'"),
        (["--config=experiments/configs/quickstart.py", "--bogus_flag"], "bogus_flag"),
        (["--config=experiments/configs/quickstart.py", "--config.total_steps=many"], "total_steps=many"),
    ],
)
def test_a_bad_train_command_line_is_one_line(tmp_path, args, named):
    last = one_line_error(command("train", f"--workdir={tmp_path / 'run'}", *args), "train")
    assert named in last
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "name,config",
    [
        ("train", "experiments/configs/quickstart.py"),
        ("eval", "experiments/configs/synthetic_eval.py:noisy"),
        ("plan", "experiments/configs/plan.py:synthetic"),
    ],
)
def test_a_workdir_that_is_a_file_is_one_line(tmp_path, name, config):
    workdir = tmp_path / "file"
    workdir.write_text("not a run")
    last = one_line_error(command(name, f"--config={config}", f"--workdir={workdir}"), name)
    assert last == f"lawm-{name}: error: workdir {workdir} is a file, not a folder"


def test_verbose_shows_the_traceback(tmp_path):
    args = ["--config=experiments/configs/quickstart.py", f"--workdir={tmp_path}", "--config.model.bogus=3"]
    process = command("train", *args, "--verbose")
    assert process.returncode != 0 and "Traceback" in process.stderr
