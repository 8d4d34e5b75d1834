"""Numerics of the fast paths: a few train steps on one fixed batch, float32 reference vs bf16 candidates.

    python benchmarks/numerics_check.py --config=experiments/configs/lawm_yt1b.py:noisy-high \\
        --per_device_batch=2 --steps=3 [--candidate=dtype=bfloat16,encoder_dtype=bfloat16,attention=cudnn]

Each variant is the config with `model.compute` overridden (comma-separated key=value): the reference
(default float32 activations and encoder, einsum attention, matmuls at `--reference_precision`, default
highest, so no TF32 on GPUs) and each `--candidate` (default bf16 activations and encoder with fused
attention). All start from the same params (checked) and run `--steps` real train steps
(benchmarks/train_step.py's `prepare`: the jitted lawm.step step, state donated) on the same batch of random
uint8 video; the loss after every step is compared.

Tolerance (`--rtol`, default 2e-2): |loss - loss_ref| / |loss_ref| at every step. bfloat16 keeps 8
mantissa bits (a relative step of 0.4 %); tests/test_compute.py holds one bf16 loss of the tiny model to
1 %; this allows twice that for the recipe's depth and a few optimiser steps (each on the same batch, so
the two runs' params drift apart only through round-off). Exit status 1 if a candidate is outside it or
fails to run. `--json=PATH` writes the losses and differences.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import train_step as bench  # noqa: E402  (its flags: --config, --per_device_batch, --frames, --steps, --json, ...)

_REFERENCE = flags.DEFINE_string(
    "reference", "dtype=float32,encoder_dtype=float32,attention=einsum", "model.compute overrides."
)
_REFERENCE_PRECISION = flags.DEFINE_string(
    "reference_precision", "highest", "jax_default_matmul_precision for the reference ('' for default)."
)
_CANDIDATES = flags.DEFINE_multi_string(
    "candidate", ["dtype=bfloat16,encoder_dtype=bfloat16,attention=fused"], "model.compute overrides."
)
_RTOL = flags.DEFINE_float("rtol", 2e-2, "Largest relative loss difference allowed at any step.")
_FULL_LR = flags.DEFINE_bool(
    "full_lr",
    True,
    "optim.warmup_fraction=0: every step updates at the peak lr (the config's warmup makes "
    "the first updates ~0, so the losses would only compare forward passes at the initial params).",
)


def parse_overrides(text: str) -> dict:
    values = {}
    for pair in filter(None, text.split(",")):
        key, _, value = pair.partition("=")
        lowered = value.lower()
        values[key.strip()] = lowered == "true" if lowered in ("true", "false") else value
    return values


@contextlib.contextmanager
def matmul_precision(precision: str | None):
    """jax_default_matmul_precision set for the block (part of the jit cache key), then restored."""
    import jax

    if not precision:
        yield
        return
    previous = jax.config.jax_default_matmul_precision
    jax.config.update("jax_default_matmul_precision", precision)
    try:
        yield
    finally:
        jax.config.update("jax_default_matmul_precision", previous)


def run_variant(base, overrides: dict, per_device: int, frames: int, steps: int, precision: str | None):
    """(initial squared param norm, [(loss, grad norm)] of each step, compute dict) of a variant."""
    import jax
    import jax.numpy as jnp

    from lawm import config as config_lib

    config = copy.deepcopy(base)
    config.model.compute.update(overrides)
    if _FULL_LR.value:
        config.optim.warmup_fraction = 0.0
    config_lib.validate_model_config(config.model)
    with matmul_precision(precision):
        train_step, state, frozen, batch, _, _ = bench.prepare(config, per_device, frames, abstract=False)
        norm = jax.jit(lambda p: sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree.leaves(p)))
        param_norm = float(norm(state["params"]))
        losses = []
        for _ in range(steps):
            state, metrics = train_step(state, frozen, batch)
            losses.append((float(metrics["loss"]), float(metrics["grad_norm"])))
    return param_norm, losses, dict(config.model.compute)


def relative(a: float, b: float) -> float:
    return abs(a - b) / abs(b) if b else abs(a - b)


def main(argv):
    del argv
    import jax

    base = bench.configure(bench._CONFIG.value)
    frames = bench._FRAMES.value or bench.data_frames(base)
    per_device = bench._PER_DEVICE_BATCH.value or 2
    steps = bench._STEPS.value
    ref_norm, ref_pairs, ref_compute = run_variant(
        base, parse_overrides(_REFERENCE.value), per_device, frames, steps, _REFERENCE_PRECISION.value or None
    )
    ref_losses, ref_grads = [x for x, _ in ref_pairs], [g for _, g in ref_pairs]
    print(f"reference {ref_compute}: losses {', '.join(f'{x:.6f}' for x in ref_losses)}", flush=True)
    record = dict(
        device=jax.devices()[0].device_kind,
        per_device_batch=per_device,
        frames=frames,
        steps=steps,
        rtol=_RTOL.value,
        reference=dict(
            compute=ref_compute, precision=_REFERENCE_PRECISION.value, losses=ref_losses, grad_norms=ref_grads
        ),
        candidates=[],
    )
    ok = bool(ref_losses) and all(math.isfinite(x) for x in ref_losses)
    for text in _CANDIDATES.value:
        entry = dict(overrides=text)
        try:
            norm, pairs, compute = run_variant(base, parse_overrides(text), per_device, frames, steps, None)
        except Exception as error:  # e.g. cuDNN attention unavailable: recorded, the others still run
            entry.update(error=f"{type(error).__name__}: {str(error)[:500]}", passed=False)
            print(f"candidate {text}: FAILED to run: {entry['error']}", flush=True)
            ok = False
            record["candidates"].append(entry)
            continue
        losses, grads = [x for x, _ in pairs], [g for _, g in pairs]
        diffs = [relative(x, r) for x, r in zip(losses, ref_losses, strict=True)]
        grad_diffs = [relative(g, r) for g, r in zip(grads, ref_grads, strict=True)]
        same_params = relative(norm, ref_norm) < 1e-5
        finite = all(math.isfinite(x) for x in losses + diffs)
        passed = finite and same_params and max(diffs) <= _RTOL.value
        entry.update(
            compute=compute,
            losses=losses,
            rel_diffs=diffs,
            max_rel_diff=max(diffs),
            grad_norms=grads,
            grad_norm_rel_diffs=grad_diffs,
            same_initial_params=same_params,
            passed=passed,
        )
        ok = ok and passed
        print(
            f"candidate {compute}: losses {', '.join(f'{x:.6f}' for x in losses)}; "
            f"max |dloss|/loss {max(diffs):.3g} (tolerance {_RTOL.value:g}): {'pass' if passed else 'FAIL'}; "
            f"grad norm max rel diff {max(grad_diffs):.3g} (not gated)"
            + ("" if same_params else " (initial params differ!)"),
            flush=True,
        )
        record["candidates"].append(entry)
    record["passed"] = ok
    if bench._JSON.value:
        with open(bench._JSON.value, "w") as f:
            json.dump(record, f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    app.run(main)
