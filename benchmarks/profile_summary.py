"""Where a traced step's device time goes: kernels of a `train_step.py --profile=DIR` trace, by kind.

    python benchmarks/train_step.py --config=... --profile=/tmp/trace
    python benchmarks/profile_summary.py /tmp/trace [--steps=5] [--top=25]

Reads the Perfetto JSON trace jax.profiler writes (`*.trace.json.gz` / `perfetto_trace.json.gz`), keeps
the kernels on the device's streams (on CPU, where there is no device, the XLA threads' events),
and prints the busy time per step by kind of kernel (matmul, attention, fused elementwise, copies, ...)
and the kernels that take the most time. Kinds come from kernel names (cuBLAS / CUTLASS / nvjet GEMMs,
cuDNN / flash attention, XLA fusions, Triton), so they are a guide, not an exact attribution.
"""

from __future__ import annotations

import collections
import gzip
import json
import pathlib
import sys

from absl import app, flags

_STEPS = flags.DEFINE_integer("steps", 5, "Steps in the traced chunk (train_step.py's --steps).")
_TOP = flags.DEFINE_integer("top", 25, "Kernels to list.")
_JSON = flags.DEFINE_string("json", None, "Also write the per-kind times to this JSON file.")

KINDS = (  # first match wins; matched against the lower-cased kernel name
    ("attention", ("flash", "fmha", "cudnn", "attention", "sdpa")),
    ("matmul", ("gemm", "cutlass", "nvjet", "xmma", "cublas", "dot", "matmul", "convolution")),
    ("copy / transpose", ("memcpy", "memset", "copy", "transpose", "dynamic-update-slice", "dynamic_slice")),
    ("reduction", ("reduce", "reduction")),
    ("collective", ("nccl", "all-reduce", "all-gather", "reduce-scatter", "collective")),
    ("fused elementwise", ("fusion", "loop_", "input_", "triton", "elementwise")),
)


def kind_of(name: str) -> str:
    lowered = name.lower()
    for kind, needles in KINDS:
        if any(needle in lowered for needle in needles):
            return kind
    return "other"


def find_trace(path: pathlib.Path) -> pathlib.Path:
    if path.is_file():
        return path
    found = sorted(path.rglob("*.json.gz"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(f"no *.json.gz trace under {path}")
    return found[-1]


def device_events(trace: dict) -> list[dict]:
    """Kernel events: complete ('X') events on the device's stream threads (its "XLA Modules" / "XLA
    Ops" lines repeat the same time at coarser grain). Without a device (CPU), XLA's own threads."""
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    processes = {e["pid"]: e["args"]["name"] for e in events if e.get("name") == "process_name"}
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e.get("name") == "thread_name"}
    devices = {pid for pid, name in processes.items() if "gpu" in name.lower() or "tpu" in name.lower()}

    def keep(event) -> bool:
        thread = threads.get((event["pid"], event.get("tid")), "").lower()
        if devices:
            return event["pid"] in devices and "stream" in thread
        return "python" not in processes.get(event["pid"], "").lower() and "python" not in thread

    return [e for e in events if e.get("ph") == "X" and "dur" in e and keep(e)]


def tally(events: list[dict]):
    """Microseconds by kind, microseconds by kernel name, calls by kernel name."""
    by_kind: collections.Counter = collections.Counter()
    by_name: collections.Counter = collections.Counter()
    counts: collections.Counter = collections.Counter()
    for event in events:
        by_kind[kind_of(event["name"])] += event["dur"]
        by_name[event["name"]] += event["dur"]
        counts[event["name"]] += 1
    return by_kind, by_name, counts


def as_record(events: list[dict], steps: int, top: int) -> dict:
    """The summary's numbers: busy ms per step, and ms per step by kind and for the top kernels."""
    by_kind, by_name, _ = tally(events)
    total = sum(by_kind.values())
    return dict(
        steps=steps,
        events=len(events),
        busy_ms_per_step=total / steps / 1e3,
        kinds_ms_per_step={kind: us / steps / 1e3 for kind, us in by_kind.most_common()},
        top_kernels_ms_per_step={name: us / steps / 1e3 for name, us in by_name.most_common(top)},
    )


def summarise(events: list[dict], steps: int, top: int) -> str:
    by_kind, by_name, counts = tally(events)
    total = sum(by_kind.values()) or 1.0
    lines = [f"device busy time per step: {total / steps / 1e3:.1f} ms ({len(events)} events, {steps} steps)"]
    lines += ["", "| kind | ms per step | share |", "|---|---|---|"]
    for kind, us in by_kind.most_common():
        lines.append(f"| {kind} | {us / steps / 1e3:.2f} | {us / total:.1%} |")
    lines += ["", "| kernel | kind | calls per step | ms per step | share |", "|---|---|---|---|---|"]
    for name, us in by_name.most_common(top):
        short = name if len(name) < 90 else name[:87] + "..."
        per_step = f"{counts[name] / steps:.0f} | {us / steps / 1e3:.2f}"
        lines.append(f"| `{short}` | {kind_of(name)} | {per_step} | {us / total:.1%} |")
    return "\n".join(lines)


def main(argv):
    if len(argv) != 2:
        raise app.UsageError("usage: profile_summary.py TRACE_DIR_OR_FILE")
    path = find_trace(pathlib.Path(argv[1]))
    with gzip.open(path, "rt") as f:
        trace = json.load(f)
    print(f"trace: {path}")
    events = device_events(trace)
    print(summarise(events, _STEPS.value, _TOP.value))
    if _JSON.value:
        with open(_JSON.value, "w") as f:
            json.dump({"trace": str(path), **as_record(events, _STEPS.value, _TOP.value)}, f, indent=2)


if __name__ == "__main__":
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    app.run(main)
