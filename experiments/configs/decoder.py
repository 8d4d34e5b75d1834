"""The frame-causal decoder (PAPER.md §7) for a world model config's frozen encoder states.

COMMAND:  lawm-train --config=experiments/configs/decoder.py:synthetic_eval --workdir=/tmp/lawm_decoder
          ARG names a world model config in experiments/configs, with its own argument after a second colon
          (decoder.py:synthetic_eval:noisy, decoder.py:lawm_yt1b:noisy-high); use the world model run's
          seed (the default 0), so the decoder reads the states of that run's encoder.
          Add --config.decoder.lpips_weights=PATH for the L1 + LPIPS loss (PATH: lawm.evals.lpips weights).
RUNTIME:  9.6 minutes on 2 CPU cores shared with other training runs (600 steps at ~1.25 steps/s).
EXPECTED: /tmp/lawm_decoder/eval/600.json: decoder/psnr ~25.8 dB on held-out clips (vs 13.3 dB for the
          best constant video, the per-pixel mean), decoder/l1 ~0.14 (normalised pixels). Measured
          2026-11-21: 25.78 dB, l1 0.143; sprites and background come back recognisable, blurred at the
          8 px patch edges (the synthetic configs' encoder is a frozen random patch embedding, 384 -> 64
          dims). PSNR still rises at the end (+0.2 dB over the last 100 steps): longer runs do better.

Paper-sized preset (`decoder.py:lawm_yt1b`, PAPER.md §7): a ViT-L decoder (24 x 1024, 16 heads) with RoPE,
Muon lr 0.02, AdamW lr 3e-4, weight decay 0.01, batch 512, 90k steps, linear warmup 12k then cosine,
L1 + LPIPS (the weights' path must be given; the paper does not state the loss weights: we use 1.0).
"""

from __future__ import annotations

import importlib

import ml_collections

# Decoder sizes and training settings per world model config (the default: the synthetic-world ones).
SMALL = dict(
    decoder=dict(width=128, depth=2, num_heads=4, mlp_ratio=4.0),
    total_steps=600,
    optim=dict(muon_lr=0.02, adamw_lr=1e-3, weight_decay=0.0),
)
PAPER = dict(
    decoder=dict(width=1024, depth=24, num_heads=16, mlp_ratio=4.0),
    total_steps=90_000,
    optim=dict(muon_lr=0.02, adamw_lr=3e-4, weight_decay=0.01, warmup_fraction=12_000 / 90_000),
    batch_size=512,
)
PRESETS = {"lawm_yt1b": PAPER}


def get_config(arg="synthetic_eval"):
    name, _, world_arg = (arg or "synthetic_eval").partition(":")
    try:
        world = importlib.import_module(f"experiments.configs.{name}")
    except ModuleNotFoundError:
        raise ValueError(f"decoder.py: no world model config experiments/configs/{name}.py") from None
    config = world.get_config(world_arg) if world_arg else world.get_config()
    preset = PRESETS.get(name, SMALL)
    config.task = "decoder"
    config.decoder = ml_collections.ConfigDict(
        # lpips_weights: LPIPS network weights (lawm/evals/lpips.py) for the L1 + LPIPS loss; "": L1 only.
        dict(preset["decoder"], lpips_weights="", lpips_weight=1.0)
    )
    config.total_steps = preset["total_steps"]  # optim.total_steps follows (a reference in common.py)
    config.optim.update(preset["optim"])
    if "batch_size" in preset:
        config.batch_size = preset["batch_size"]
    return config
