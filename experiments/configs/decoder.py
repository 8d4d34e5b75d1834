"""The frame-causal decoder (paper §7) for a world model config's frozen encoder states.

COMMAND:  lawm-train --config=experiments/configs/decoder.py:synthetic_eval --workdir=/tmp/lawm_decoder
          ARG names a world model config in experiments/configs, with its own argument after a second colon
          (decoder.py:synthetic_eval:noisy, decoder.py:lawm_yt1b:noisy-high); use the world model run's
          seed (the default 0), so the decoder reads the states of that run's encoder.
          Add --config.decoder.lpips_weights=PATH for the L1 + LPIPS loss (PATH: lawm.models.lpips weights).
RUNTIME:  synthetic_eval: about 10 minutes on 2 CPU cores (600 steps).
EXPECTED: /tmp/lawm_decoder/eval/600.json: decoder/psnr far above the best constant video's (~13 dB) and
          recognisable pictures; measured values in the README's "Evaluation".

Paper-sized preset (`decoder.py:lawm_yt1b`, paper §7): a ViT-L decoder with RoPE, trained with L1 + LPIPS
(the weights' path must be given); the paper does not state the loss weights: we use 1.0.
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
        # lpips_weights: LPIPS network weights (lawm/models/lpips.py) for the L1 + LPIPS loss; "": L1 only.
        dict(preset["decoder"], lpips_weights="", lpips_weight=1.0)
    )
    config.total_steps = preset["total_steps"]  # optim.total_steps follows (a reference in common.py)
    config.optim.update(preset["optim"])
    if "batch_size" in preset:
        config.batch_size = preset["batch_size"]
    return config
