"""lawm.flops' analytic count against XLA's cost analysis of the compiled train step."""

import gzip
import json
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from lawm import config as config_lib
from lawm import flops, hardware, optim, step
from lawm.systems.world_model import WorldModelSystem as System

BATCH, FRAMES = 8, 8


def small_config(causal="tubelet", regularizer="noisy", pairing="tokens"):
    """Wide enough (head dim 64, width 128) that matmuls dominate, as at real sizes."""
    config = config_lib.model_config()
    config.latent_dim = 16
    config.encoder.update(width=128, depth=1, num_heads=2, patch_size=8, image_size=32, causal=causal)
    config.idm.update(width=128, depth=2, num_heads=2, pairing=pairing)
    config.world_model.update(width=128, depth=2, num_heads=2, cond_dim=64)
    config.regularizer = {"noisy": dict(name="noisy", beta=1e-4), "sparse": dict(name="sparse")}[regularizer]
    return config


def xla_flops(model_config, use_muon):
    system = System(model_config)
    params = jax.eval_shape(system.init, jax.random.key(0))
    trainable = {k: params[k] for k in system.trainable}
    optim_config = optim.optim_config(10)
    optim_config.use_muon = use_muon
    optimizer = optim.make_optimizer(optim_config, trainable)
    state = jax.eval_shape(lambda: step.init_state(system, optimizer, jax.random.key(0)))
    side = model_config.encoder.image_size
    batch = {"video": jax.ShapeDtypeStruct((BATCH, FRAMES, side, side, 3), jnp.uint8)}
    train_step = jax.jit(step.make_train_step(system, optimizer, None))
    compiled = train_step.lower(state, {"encoder": params["encoder"]}, batch).compile()
    return hardware.compiled_flops(compiled)


@pytest.mark.parametrize(
    "causal, use_muon, regularizer, pairing",
    [
        ("tubelet", True, "noisy", "tokens"),
        ("per_frame", False, "sparse", "tokens"),
        ("none", True, "sparse", "channels"),
    ],
)
def test_analytic_count_agrees_with_xla_within_ten_percent(causal, use_muon, regularizer, pairing):
    config = small_config(causal, regularizer, pairing)
    executed = flops.train_step_flops(config, BATCH, FRAMES, use_muon=use_muon, executed=True)
    measured = xla_flops(config, use_muon)
    assert measured is not None, "XLA:CPU gave no cost analysis"
    # The analytic count leaves out elementwise work, which XLA counts: it may only read a bit lower.
    assert 0.9 <= measured / executed.total <= 1.1, (measured, executed)
    if use_muon:
        assert executed.optimizer > 0
    else:
        assert executed.optimizer == 0


def test_model_flops_count_the_causal_share_of_attention():
    config = small_config("tubelet")
    model = flops.train_step_flops(config, BATCH, FRAMES)
    executed = flops.train_step_flops(config, BATCH, FRAMES, executed=True)
    T, N = FRAMES // 2, (32 // 8) ** 2
    # Attention FLOPs per query per block: 4 x keys x width. Queries attend (T+1)/2 of T steps on average.
    saved_keys = lambda steps: steps * N - N * (steps + 1) / 2  # noqa: E731  (full minus causal)
    encoder, wm = config.encoder, config.world_model
    encoder_saved = BATCH * T * N * encoder.depth * 4 * encoder.width * saved_keys(T)
    wm_saved = 3 * BATCH * (T - 1) * N * wm.depth * 4 * wm.width * saved_keys(T - 1)  # forward + backward
    assert executed.encoder - model.encoder == pytest.approx(encoder_saved)
    assert executed.world_model - model.world_model == pytest.approx(wm_saved)
    assert executed.idm == model.idm  # full attention: nothing saved
    assert model.optimizer == executed.optimizer
    # The network's work grows with the batch; the optimiser's does not.
    double = flops.train_step_flops(config, 2 * BATCH, FRAMES)
    assert double.model == pytest.approx(2 * model.model)
    assert double.optimizer == model.optimizer


def test_trainer_reports_mfu_per_device_from_model_flops(monkeypatch):
    """MFU = model FLOPs per device x steps/s / the device's peak (not divided by the device count again)."""
    import time

    from experiments.configs import quickstart
    from lawm import train

    config = quickstart.get_config()
    per_device = train.model_flops_per_device(config)
    total = flops.train_step_flops(config.model, config.batch_size, 16, use_muon=False).model
    assert per_device == pytest.approx(total / jax.device_count())
    monkeypatch.setattr(hardware, "peak_flops", lambda device: 1e12)
    out = train.throughput((time.perf_counter() - 2.0, 0), 10, config, per_device)
    steps_per_s = out["perf/steps_per_s"]
    assert 4.0 < steps_per_s <= 5.0
    assert out["perf/mfu"] == pytest.approx(per_device * steps_per_s / 1e12)
    assert out["perf/tflops_per_s_per_device"] == pytest.approx(per_device * steps_per_s / 1e12)


def test_benchmark_needs_no_input_pipeline_or_tensorflow():
    """benchmarks/train_step.py (config, step, AOT compile, memory) runs without grain, TF or clu."""
    code = (
        "import atexit, runpy, sys\n"
        "def check():\n"
        "    heavy = {'grain', 'array_record', 'tensorflow', 'clu'}\n"
        "    bad = sorted({m.split('.')[0] for m in sys.modules} & heavy)\n"
        "    print('HEAVY', bad)\n"
        "atexit.register(check)\n"
        "sys.argv = ['train_step.py', '--config=experiments/configs/quickstart.py', '--memory=1']\n"
        "runpy.run_path('benchmarks/train_step.py', run_name='__main__')\n"
    )
    root = pathlib.Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| 1 |" in done.stdout, done.stdout  # the memory table's row for a per-device batch of 1
    assert "HEAVY []" in done.stdout, done.stdout


def test_profile_summary_splits_device_stream_time_by_kernel_kind(tmp_path):
    """benchmarks/profile_summary.py on a hand-made Perfetto trace: only the device's stream kernels count
    (not its "XLA Ops" line, which repeats them, nor the host), grouped by kind."""

    def meta(kind, pid, tid, name):
        return {"ph": "M", "name": kind, "pid": pid, "tid": tid, "args": {"name": name}}

    def kernel(name, dur, tid=1):
        return {"ph": "X", "name": name, "pid": 7, "tid": tid, "ts": 0, "dur": dur}

    events = [
        meta("process_name", 7, 0, "/device:GPU:0"),
        meta("thread_name", 7, 1, "Stream #13(Compute)"),
        meta("thread_name", 7, 2, "XLA Ops"),
        meta("process_name", 3, 0, "/host:CPU"),
        kernel("nvjet_tst_128x256_gemm", 600.0),
        kernel("nvjet_tst_128x256_gemm", 600.0),
        kernel("cudnn_flash_fprop_sm90", 400.0),
        kernel("loop_add_fusion_3", 300.0),
        kernel("fusion.12", 5000.0, tid=2),  # the XLA Ops line: not counted again
        {"ph": "X", "name": "PjitFunction(train_step)", "pid": 3, "tid": 1, "ts": 0, "dur": 9000.0},
    ]
    trace = tmp_path / "plugins" / "profile" / "run" / "perfetto_trace.json.gz"
    trace.parent.mkdir(parents=True)
    with gzip.open(trace, "wt") as f:
        json.dump({"traceEvents": events}, f)
    root = pathlib.Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "benchmarks/profile_summary.py", str(tmp_path), "--steps=2"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "device busy time per step: 0.9 ms (4 events, 2 steps)" in done.stdout, done.stdout
    assert "| matmul | 0.60 | 63.2% |" in done.stdout, done.stdout
    assert "| attention | 0.20 | 21.1% |" in done.stdout, done.stdout
    assert "| fused elementwise | 0.15 | 15.8% |" in done.stdout, done.stdout
    assert "PjitFunction" not in done.stdout and "fusion.12" not in done.stdout
