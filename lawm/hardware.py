"""Accelerator facts for throughput reports: peak bf16 FLOP/s by device kind, FLOPs of a compiled step."""

from __future__ import annotations

# Dense bf16 peak per device, TFLOP/s (vendor figures). Matched against jax's `device_kind` strings.
PEAK_BF16_TFLOPS = {
    "H200": 989.0,
    "H100": 989.0,
    "A100": 312.0,
    "TPU v4": 275.0,
    "TPU v5 lite": 197.0,  # v5e
    "TPU v5e": 197.0,
    "TPU v5p": 459.0,
    "TPU v6 lite": 918.0,  # v6e (Trillium)
    "TPU v6e": 918.0,
}


def peak_flops(device) -> float | None:
    """Peak bf16 FLOP/s of one device, or None where unknown (CPUs: report TFLOP/s only)."""
    kind = getattr(device, "device_kind", "")
    for name in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):  # "TPU v5 lite" before "TPU v5"
        if name.lower() in kind.lower():
            return PEAK_BF16_TFLOPS[name] * 1e12
    return None


def compiled_flops(compiled) -> float | None:
    """Total FLOPs of one call of a compiled computation, from XLA's cost analysis (None if unavailable)."""
    try:
        analysis = compiled.cost_analysis()
    except Exception:  # some backends do not implement it
        return None
    if isinstance(analysis, list | tuple):
        analysis = analysis[0] if analysis else {}
    flops = (analysis or {}).get("flops")
    return float(flops) if flops and flops > 0 else None
