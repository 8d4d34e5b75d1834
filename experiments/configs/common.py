"""What the training configs share: the trainer's fields (`base_config`), a CPU-sized model (`cpu_model`)."""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from lawm import config as model_configs
from lawm import optim


def base_config(total_steps: int) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.task = "world_model"  # lawm.systems: what is trained (decoder.py, controller.py set theirs)
    config.seed = 0
    config.model = model_configs.model_config()
    # Every source's fields are here (data_pipelines/sources/__init__.py says what each reads), so any
    # training config takes --config.data.source=NAME and that source's paths from the command line.
    config.data = ml_collections.ConfigDict(
        dict(
            source="synthetic",  # synthetic | records | video_folder | yt_temporal
            world=dict(
                image_size=256, num_frames=16, fps=4.0
            ),  # data_pipelines.sources.synthetic.WorldConfig
            paths=dict(train="", eval=""),  # records: clip records (`lawm-prepare videos` / `rlds`)
            videos=dict(train="", eval=""),  # video_folder: a folder, glob or list file of videos
            yt_temporal=dict(
                mode="videos", ids=dict(train="", eval=""), video_dir="", records=dict(train="", eval="")
            ),
            # camera_pan: a window panned over `over`'s clips (read canvas x canvas) by a known motion.
            camera_pan=dict(over="records", canvas=96, max_pan=3.0, max_zoom=0.0, repeats=1),
            # Clip shape of the file sources; None: data.world's (so the model's image size still fits).
            num_frames=config_dict.placeholder(int),
            fps=config_dict.placeholder(float),
            image_size=config_dict.placeholder(int),
            windows_per_video=1,  # video_folder / yt_temporal videos: windows per video per pass
            scene_cuts="split",  # video_folder / yt_temporal videos: split | drop | keep (at a scene cut)
            max_bad_fraction=0.01,  # file sources: bad records or videos skipped, up to this fraction
            seed=0,  # which clips (the world's seed; the file sources' windows and crops)
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
