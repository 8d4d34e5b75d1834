"""benchmarks/gpu_check.sh (issue 22's one command for a lent GPU) in its tiny CPU mode, and shellcheck on it
and on benchmarks/gpu_wheels.sh: the same steps as on the GPU (environment, recipe train step, compute
switch, numerics, encoder against transformers, profile) with a tiny model and 2 steps, so the command
cannot rot while no accelerator is at hand."""

import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
WHEELS = ROOT / "benchmarks" / "gpu_wheels.sh"
# What the device tool brings back from $OUT: at most 8 files.
OUT_FILES = {"summary.md", "summary.json", "logs.tar.gz", "profile.md", "trace.json.gz"}


def _shellcheck():
    beside_python = Path(sys.executable).parent / "shellcheck"
    found = shutil.which("shellcheck") or (str(beside_python) if beside_python.exists() else None)
    assert found, 'shellcheck is missing: pip install -e ".[test]" -c constraints.txt installs it'
    return found


@pytest.mark.parametrize("script", [SCRIPT, WHEELS], ids=lambda p: p.name)
def test_bash_syntax_and_shellcheck(script):
    subprocess.run(["bash", "-n", str(script)], check=True)
    result = subprocess.run([_shellcheck(), str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpu_check")
    out, work = folder / "out", folder / "work"
    env = {**os.environ, "XLA_FLAGS": "", "GPU_CHECK_WORK": str(work), "PYTHON": sys.executable}
    env.pop("OUT", None)
    env.pop("GPU_CHECK_BUDGET_S", None)
    done = subprocess.run(
        ["bash", str(SCRIPT), "--tiny", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    return out, summary, {row["name"]: row for row in summary["steps"]}


def _finite_positive(x):
    return isinstance(x, int | float) and math.isfinite(x) and x > 0


def test_tiny_mode_runs_every_step(tiny):
    out, summary, steps = tiny
    assert summary["mode"] == "tiny"
    prefixes = sorted({name.split("_")[0] for name in steps})
    assert prefixes == ["0", "a", "b", "c", "d", "e"], steps.keys()
    assert {name: row["status"] for name, row in steps.items()} == {name: "ok" for name in steps}
    assert set(os.listdir(out)) <= OUT_FILES and {"summary.md", "summary.json", "logs.tar.gz"} <= set(
        os.listdir(out)
    )
    table = (out / "summary.md").read_text()
    for name in steps:
        assert f"| {name} | ok |" in table
    with tarfile.open(out / "logs.tar.gz") as logs:
        names = {Path(member).name for member in logs.getnames()}
    assert {f"{name}.log" for name in steps} <= names


def test_tiny_mode_numbers(tiny):
    _, summary, steps = tiny
    env = steps["0_env"]["result"]
    assert env["missing"] == {} and env["device_kind"] == "cpu"

    train = [
        row["result"] for name, row in steps.items() if name[:2] in ("a_", "b_") or name == "e_profile_run"
    ]
    assert len(train) == 3
    for r in train:
        for key in (
            "clips_per_s_per_device",
            "step_s",
            "compile_s",
            "tflops_per_device",
            "loss",
            "model_flops",
        ):
            assert _finite_positive(r[key]), (key, r)
        assert r["mfu"] is None  # no bf16 peak for CPUs
        assert r["per_device_batch"] == 2 and r["frames"] == 4
    assert steps["b_remat_dots_b2"]["result"]["compute"]["remat"] == "dots"
    assert summary["best"] in ("a_recipe_b2", "b_remat_dots_b2")

    numerics = steps["c_numerics"]["result"]
    assert numerics["passed"] and len(numerics["reference"]["losses"]) == 2
    (candidate,) = numerics["candidates"]
    assert candidate["same_initial_params"] and candidate["compute"]["dtype"] == "bfloat16"
    assert math.isfinite(candidate["max_rel_diff"]) and 0 < candidate["max_rel_diff"] <= numerics["rtol"]
    assert numerics["reference"]["losses"][1] < numerics["reference"]["losses"][0]  # the steps do train

    encoder = steps["d_encoder"]["result"]
    assert _finite_positive(encoder["ours_clips_per_s"]) and _finite_positive(
        encoder["reference_clips_per_s"]
    )
    assert encoder["max_abs_diff"] < 1e-4  # the same weights in float32

    profile = steps["e_profile"]["result"]
    assert _finite_positive(profile["busy_ms_per_step"]) and profile["kinds_ms_per_step"]
