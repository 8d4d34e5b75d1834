"""What the training configs share: the trainer's fields (`base_config`), a CPU-sized model (`cpu_model`)."""

from __future__ import annotations

import ml_collections

from lawm import config as model_configs
from lawm import optim


def base_config(total_steps: int) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.task = "world_model"  # lawm.systems: what is trained (decoder.py, controller.py set theirs)
    config.seed = 0
    config.model = model_configs.model_config()
    config.data = ml_collections.ConfigDict(
        dict(
            source="synthetic",
            world=dict(
                image_size=256, num_frames=16, fps=4.0
            ),  # data_pipelines.sources.synthetic.WorldConfig
            seed=0,  # which clips (the world's seed)
            shuffle_seed=0,  # the order they come in
            num_threads=2,
            prefetch=4,
        )
    )
    config.batch_size = 1024  # global, over all processes and devices
    config.total_steps = total_steps
    config.optim = optim.optim_config(total_steps)
    config.optim.total_steps = config.get_ref("total_steps")  # the schedule follows --config.total_steps
    config.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))  # -1: all remaining devices
    config.log_every = 50
    config.checkpoint_every = 1000
    config.keep_checkpoints = 3  # the newest N ...
    config.keep_every = 0  # ... plus every step divisible by this (0: none)
    config.eval_every = 0  # 0: evaluate at the end only
    config.eval = ml_collections.ConfigDict(
        dict(
            num_clips=256,
            batch_size=32,
            # lawm-eval (experiments/eval.py): other runs it compares with, and perceptual-metric weights.
            reference_workdir="",  # a run of the same recipe with regularizer `deterministic`
            decoder_workdir="",  # a decoder run (experiments/configs/decoder.py) over this model's states
            lpips_weights="",  # local LPIPS weights (lawm/models/lpips.py): LPIPS metrics when given
        )
    )
    # lawm-eval's evaluators (lawm/evals/<name>.py) and their options.
    config.evaluators = ml_collections.ConfigDict(
        dict(
            latent_actions={},
            latent_stats={},
            probes={},
            capacity=dict(context_steps=2),
            scene_cut={},
            transfer=dict(horizon=4),
        )
    )
    return config


def cpu_model(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """In place (and returned): the synthetic-world configs' model, sized for 64 px clips on a CPU.

    A frozen patch embedding (depth 0) is enough of an encoder for 64 px sprites, and cheap on a CPU.
    """
    config.model.latent_dim = 16
    config.model.encoder.update(width=64, depth=0, num_heads=4, patch_size=8, tubelet_size=2, image_size=64)
    config.model.idm.update(width=64, depth=1, num_heads=4)
    config.model.world_model.update(width=64, depth=2, num_heads=4, cond_dim=32)
    return config
