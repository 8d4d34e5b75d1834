"""Encoder forward throughput: our jitted V-JEPA 2 encoder vs transformers' VJEPA2Model (PyTorch).

Both run the same random-initialised weights (the reference's, loaded through lawm.weights) at the same
configuration and dtype, bidirectional as released; the figure is the ratio of clips/s, ours / reference,
from the medians of several timed runs after warm-up. Run it on one machine in one go (shared machines
are noisy):

    python benchmarks/encoder_throughput.py                       # CPU: ViT 12 x 384, 16 frames, 128 px
    python benchmarks/encoder_throughput.py --preset=vitl --dtype=bfloat16 --batch=8   # GPU: ViT-L, 256 px
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

PRESETS = {
    "small": dict(width=384, depth=12, heads=6, frames=16, image_size=128),
    "vitl": dict(width=1024, depth=24, heads=16, frames=16, image_size=256),
    "tiny": dict(width=64, depth=2, heads=4, frames=4, image_size=64),  # benchmarks/gpu_check.sh --tiny
}


def timed(fn, runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--json", help="Also write the result to this JSON file.")
    args = parser.parse_args()
    p = PRESETS[args.preset]

    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch
    from flax import nnx
    from transformers import VJEPA2Config, VJEPA2Model

    from lawm import weights
    from lawm.models.encoder import VideoEncoder

    torch.set_num_threads(os.cpu_count())
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    config = VJEPA2Config(
        hidden_size=p["width"],
        num_hidden_layers=p["depth"],
        num_attention_heads=p["heads"],
        crop_size=p["image_size"],
        frames_per_clip=p["frames"],
        pred_num_hidden_layers=1,
    )
    reference = VJEPA2Model(config).eval()
    with tempfile.TemporaryDirectory() as folder:
        reference.save_pretrained(folder)
        spec, params = weights.load(folder)
    reference = reference.to(device=device, dtype=torch_dtype)

    jax_dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[args.dtype]
    encoder = VideoEncoder(**spec.build_kwargs(), causal="none", dtype=jax_dtype, rngs=nnx.Rngs(0))
    graphdef, _ = nnx.split(encoder)
    params = jax.device_put(jax.tree.map(lambda x: x.astype(jax_dtype), params))
    forward = jax.jit(lambda params, video: nnx.merge(graphdef, params)(video))

    video = np.random.default_rng(0).normal(
        size=(args.batch, p["frames"], p["image_size"], p["image_size"], 3)
    )
    video_jax = jax.device_put(video.astype(jax_dtype))
    video_torch = torch.from_numpy(video).permute(0, 1, 4, 2, 3).to(device=device, dtype=torch_dtype)

    def run_ours():
        jax.block_until_ready(forward(params, video_jax))

    @torch.inference_mode()
    def run_reference():
        reference.encoder(video_torch)
        if device == "cuda":
            torch.cuda.synchronize()

    with torch.inference_mode():
        expected = reference.encoder(video_torch).last_hidden_state.float().cpu().numpy()
    ours = np.asarray(forward(params, video_jax), np.float32).reshape(expected.shape)
    ours_times = timed(run_ours, args.runs, args.warmup)
    reference_times = timed(run_reference, args.runs, args.warmup)
    ours_clips = args.batch / statistics.median(ours_times)
    reference_clips = args.batch / statistics.median(reference_times)
    result = {
        "preset": args.preset,
        **p,
        "batch": args.batch,
        "dtype": args.dtype,
        "jax_device": str(jax.devices()[0].device_kind),
        "torch_device": device,
        "torch_threads": torch.get_num_threads(),
        "runs": args.runs,
        "ours_clips_per_s": round(ours_clips, 3),
        "reference_clips_per_s": round(reference_clips, 3),
        "ratio_ours_over_reference": round(ours_clips / reference_clips, 3),
        "max_abs_diff": float(np.abs(ours - expected).max()),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
