"""The real jitted train step of a config on in-memory batches: step time, clips/s, TFLOP/s and MFU.

    python benchmarks/train_step.py --config=experiments/configs/quickstart.py
    python benchmarks/train_step.py --config=experiments/configs/lawm_yt1b.py:noisy-high \\
        --per_device_batch=16 --config.model.compute.dtype=bfloat16 \\
        --config.model.compute.encoder_dtype=bfloat16 --config.model.compute.remat=dots    # the GPU recipe
    python benchmarks/train_step.py --config=experiments/configs/lawm_yt1b.py:noisy-high \\
        --memory=1,2,4,8 --devices=8 --mesh_fsdp=8       # ahead-of-time memory on simulated CPU devices

The step is lawm.step's: frozen encoder forward + IDM + regularizer + world model forward/backward +
optimiser, the train state donated, one batch of random uint8 video resident on the devices (no input
pipeline: this measures the step alone; TensorFlow, grain and clu are never imported). After `--warmup`
steps, `--repeats` chunks of `--steps` steps are timed (the host waits only at the end of each chunk) and
the median chunk gives the step time.

FLOPs: lawm.flops' analytic count (model FLOPs: block-causal attention counted at its causal share, the
frozen encoder forward only, no optimiser) gives TFLOP/s and MFU against the device's bf16 peak
(lawm.hardware); the executed count (full masked attention + Muon's Newton-Schulz) is cross-checked
against XLA's cost analysis of the compiled step. `--config.model.compute.*` switches the optimisations
(lawm.config.compute_config). `--memory=B1,B2,..` compiles ahead of time only, for each per-device batch,
and prints the compiled executable's per-device memory; `--devices=N` simulates N CPU devices.

Where the time goes: the frozen encoder's forward is also timed alone on the same batch; `--profile=DIR`
traces one more chunk (jax.profiler, Perfetto JSON) for `benchmarks/profile_summary.py DIR`, which splits
the device time by kernel kind. `benchmarks/sweep.sh` runs this under several compute switches;
`--json=PATH` also writes the numbers (with the device's peak memory) for `benchmarks/gpu_check.sh`.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file (PATH[:ARG]).")
_PER_DEVICE_BATCH = flags.DEFINE_integer("per_device_batch", None, "Clips per device (default: config's).")
_FRAMES = flags.DEFINE_integer("frames", None, "Frames per clip (default: the config's data).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Frame side in px (default: the model's).")
_STEPS = flags.DEFINE_integer("steps", 5, "Steps per timed chunk.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed chunks; the median is reported.")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps after compilation.")
_MEMORY = flags.DEFINE_list("memory", [], "Per-device batches to compile ahead of time (no run).")
_DEVICES = flags.DEFINE_integer("devices", None, "Simulate this many CPU devices (set before JAX starts).")
_MESH_FSDP = flags.DEFINE_integer("mesh_fsdp", None, "Override mesh.fsdp (the rest goes to data).")
_PROFILE = flags.DEFINE_string(
    "profile", None, "Trace one more chunk into this folder (jax.profiler, with a Perfetto JSON trace)."
)
_JSON = flags.DEFINE_string("json", None, "Also write the run's numbers to this JSON file.")


def data_frames(config) -> int:
    data = config.data
    return int(data.get("num_frames") or data.world.num_frames)


def prepare(config, per_device_batch: int, frames: int, abstract: bool):
    """(jitted step, state, frozen, batch, global batch, system) for `config`; abstract: shapes only."""
    import jax
    import jax.numpy as jnp

    from lawm import sharding, step

    mesh = sharding.make_mesh(config.mesh)
    batch_size = per_device_batch * jax.device_count()
    parts = step.build(config, mesh, abstract_frozen=abstract)
    train_step = jax.jit(
        step.make_train_step(parts.system, parts.optimizer, parts.reset_every), donate_argnums=0
    )
    side = config.model.encoder.image_size
    video_shape = (batch_size, frames, side, side, 3)
    batch_sharding = sharding.batch_sharding(mesh)
    if abstract:
        abstract_state = jax.eval_shape(parts.make_state, parts.rng)
        state = sharding.abstract_like(abstract_state, parts.shardings)
        batch = {"video": jax.ShapeDtypeStruct(video_shape, jnp.uint8, sharding=batch_sharding)}
    else:
        state = jax.jit(parts.make_state, out_shardings=parts.shardings)(parts.rng)
        make_video = lambda key: jax.random.randint(key, video_shape, 0, 256).astype(jnp.uint8)  # noqa: E731
        batch = {"video": jax.jit(make_video, out_shardings=batch_sharding)(jax.random.key(1))}
    return train_step, state, parts.frozen, batch, batch_size, parts.system


def configure(config):
    from lawm import config as config_lib

    if _IMAGE_SIZE.value:
        config.model.encoder.image_size = _IMAGE_SIZE.value
    if _MESH_FSDP.value:
        config.mesh = dict(data=-1, fsdp=_MESH_FSDP.value, tensor=1)
    config_lib.validate_model_config(config.model)
    return config


def gib(n: float) -> str:
    return f"{n / 2**30:.2f}"


def compiled_memory_bytes(compiled) -> int | None:
    """Per-device bytes of a compiled step: arguments + outputs - aliased + temporaries (None if unknown)."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # some backends do not implement it
        return None
    if m is None:
        return None
    return m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes


def peak_memory_bytes() -> int | None:
    """The first device's allocator peak so far (GPU/TPU); None where the backend keeps no stats (CPU)."""
    import jax

    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # not implemented on every backend
        return None
    return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None


def memory_table(config, frames: int):
    import jax

    print(f"devices: {jax.device_count()} x {jax.devices()[0].device_kind}; mesh {dict(config.mesh)}")
    print("| per-device batch | arguments GiB | outputs GiB | aliased GiB | temporaries GiB | peak GiB |")
    print("|---|---|---|---|---|---|")
    for per_device in map(int, _MEMORY.value):
        started = time.perf_counter()
        train_step, state, frozen, batch, _, _ = prepare(config, per_device, frames, abstract=True)
        compiled = train_step.lower(state, frozen, batch).compile()
        m = compiled.memory_analysis()
        peak = compiled_memory_bytes(compiled)
        print(
            f"| {per_device} | {gib(m.argument_size_in_bytes)} | {gib(m.output_size_in_bytes)} | "
            f"{gib(m.alias_size_in_bytes)} | {gib(m.temp_size_in_bytes)} | **{gib(peak)}** |"
            f"  (compiled in {time.perf_counter() - started:.0f} s)",
            flush=True,
        )


def xla_check(config, executed, xla) -> str:
    """Per device, the network's work splits over the devices; the optimiser's over fsdp x tensor only
    (data-parallel replicas each run the whole update)."""
    import jax

    from lawm import sharding

    shape = dict(zip(sharding.AXES, sharding.mesh_shape(config.mesh, jax.device_count()), strict=True))
    analytic = executed.model / jax.device_count() + executed.optimizer / (shape["fsdp"] * shape["tensor"])
    if not xla:
        return f"{analytic:.4g} vs unavailable"
    return f"{analytic:.4g} vs {xla:.4g} (XLA / analytic {xla / analytic:.3f})"


def timed_chunks(run, carry):
    """Median seconds per call of `carry = run(carry)` over `--repeats` chunks of `--steps` calls."""
    import jax

    for _ in range(_WARMUP.value):
        carry = run(carry)
    jax.block_until_ready(carry)
    chunks = []
    for _ in range(_REPEATS.value):
        started = time.perf_counter()
        for _ in range(_STEPS.value):
            carry = run(carry)
        jax.block_until_ready(carry)
        chunks.append((time.perf_counter() - started) / _STEPS.value)
    return statistics.median(chunks), chunks, carry


def benchmark(config, per_device_batch: int, frames: int):
    import jax

    from lawm import flops, hardware

    train_step, state, frozen, batch, batch_size, system = prepare(
        config, per_device_batch, frames, abstract=False
    )
    started = time.perf_counter()
    compiled = train_step.lower(state, frozen, batch).compile()
    compile_s = time.perf_counter() - started

    run = lambda carry: compiled(carry[0], frozen, batch)  # noqa: E731
    step_s, chunks, (state, metrics) = timed_chunks(run, (state, {}))
    if _PROFILE.value:
        with jax.profiler.trace(_PROFILE.value, create_perfetto_trace=True):
            for _ in range(_STEPS.value):
                state, metrics = run((state, metrics))
            jax.block_until_ready(metrics)
    # The frozen encoder's forward alone, on the same batch: its share of the step.
    encode = jax.jit(system.encode)
    encoder_s, _, _ = timed_chunks(lambda _: encode(frozen, batch["video"]), None)

    use_muon = config.optim.get("use_muon", True)
    model = flops.train_step_flops(config.model, batch_size, frames, use_muon=use_muon)
    executed = flops.train_step_flops(config.model, batch_size, frames, use_muon=use_muon, executed=True)
    xla = hardware.compiled_flops(compiled)
    devices = jax.device_count()
    achieved = model.model / step_s / devices
    peak = hardware.peak_flops(jax.devices()[0])
    compute = dict(config.model.get("compute", {}))
    measured, estimated = peak_memory_bytes(), compiled_memory_bytes(compiled)
    memory = f"{gib(measured)} GiB measured peak" if measured is not None else "not reported by this backend"
    if estimated is not None:
        memory += f"; compiled step {gib(estimated)} GiB (arguments + outputs - aliased + temporaries)"
    rows = [
        ("device", f"{devices} x {jax.devices()[0].device_kind}"),
        ("config", f"batch {batch_size} ({per_device_batch}/device) x {frames} frames, compute {compute}"),
        ("compile time", f"{compile_s:.1f} s"),
        (
            "step time (median)",
            f"{step_s * 1e3:.1f} ms  (chunks: {', '.join(f'{c * 1e3:.1f}' for c in chunks)})",
        ),
        ("clips/s per device", f"{per_device_batch / step_s:.2f}"),
        ("frozen encoder forward alone", f"{encoder_s * 1e3:.1f} ms ({encoder_s / step_s:.0%} of the step)"),
        (
            "model FLOPs/step",
            f"{model.model:.4g}  (encoder {model.encoder:.3g}, idm {model.idm:.3g}, "
            f"world model {model.world_model:.3g}; optimiser {model.optimizer:.3g} not counted)",
        ),
        ("achieved TFLOP/s per device", f"{achieved / 1e12:.2f}"),
        ("MFU", f"{achieved / peak:.1%}" if peak else "n/a (no bf16 peak known for this device)"),
        ("executed FLOPs per device: analytic vs XLA", xla_check(config, executed, xla)),
        ("device memory", memory),
        ("loss after the timed steps", f"{float(metrics['loss']):.5f}"),
    ]
    for name, value in rows:
        print(f"{name:34s} {value}")
    if _JSON.value:
        record = dict(
            device=jax.devices()[0].device_kind,
            devices=devices,
            per_device_batch=per_device_batch,
            batch=batch_size,
            frames=frames,
            compute=compute,
            compile_s=compile_s,
            step_s=step_s,
            chunks_s=chunks,
            clips_per_s_per_device=per_device_batch / step_s,
            encoder_s=encoder_s,
            model_flops=model.model,
            tflops_per_device=achieved / 1e12,
            mfu=achieved / peak if peak else None,
            xla_flops=xla,
            peak_memory_bytes=measured,
            compiled_memory_bytes=estimated,
            loss=float(metrics["loss"]),
        )
        with open(_JSON.value, "w") as f:
            json.dump(record, f, indent=2)


def main(argv):
    del argv
    config = configure(_CONFIG.value)
    frames = _FRAMES.value or data_frames(config)
    per_device = _PER_DEVICE_BATCH.value
    if per_device is None:
        import jax

        per_device = max(1, config.batch_size // jax.device_count())
    if _MEMORY.value:
        memory_table(config, frames)
    else:
        benchmark(config, per_device, frames)


if __name__ == "__main__":
    # --devices must reach XLA before JAX initialises its backend.
    for arg in sys.argv:
        if arg.startswith("--devices="):
            os.environ["XLA_FLAGS"] = (
                os.environ.get("XLA_FLAGS", "")
                + f" --xla_force_host_platform_device_count={arg.split('=')[1]}"
            )
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    app.run(main)
