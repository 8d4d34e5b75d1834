"""Evaluation models on the synthetic world: one per regularizer, trained long enough to compare them.

COMMAND:  lawm-train --config=experiments/configs/synthetic_eval.py:REG --workdir=/tmp/lawm_eval/REG
          with REG in sparse | noisy | discrete | deterministic | none
          then lawm-eval --config=experiments/configs/synthetic_eval.py:REG --workdir=/tmp/lawm_eval/REG
The world is shaped so that an agent's motion matters: one large agent always present (slot 0), moving
faster than the camera pans, as a person entering a room does in the paper's videos.
"""

from __future__ import annotations

from experiments.configs import common

REGULARIZERS = {
    "deterministic": dict(name="deterministic"),
    "none": dict(name="none"),
    "noisy": dict(name="noisy", beta=1e-4),
    "sparse": dict(name="sparse", l1=0.01, scale=0.1),
    "discrete": dict(name="discrete", codebook_size=64),
}


def get_config(arg="noisy"):
    arg = arg or "noisy"
    if arg not in REGULARIZERS:
        raise ValueError(f"synthetic_eval.py: unknown regularizer {arg!r} (one of {sorted(REGULARIZERS)})")
    total_steps = 3000
    config = common.base_config(total_steps)
    config.model.latent_dim = 16
    config.model.encoder.update(width=64, depth=0, num_heads=4, patch_size=8, tubelet_size=2, image_size=64)
    config.model.idm.update(width=64, depth=1, num_heads=4)
    config.model.world_model.update(width=64, depth=2, num_heads=4, cond_dim=32, residual=True)
    config.model.regularizer = dict(REGULARIZERS[arg])
    config.data.world = dict(
        image_size=64,
        num_frames=16,
        fps=4.0,
        num_agents=(1, 1),
        num_distractors=(0, 1),
        sprite_radius=(9.0, 12.0),
        max_speed=4.0,
        camera_pan=True,
        max_pan=1.0,
        smoothness=0.3,
        agent_pattern=0.0,
    )
    config.batch_size = 8
    config.optim.update(muon_lr=0.02, adamw_lr=2e-3, weight_decay=0.0)
    config.log_every = 100
    config.checkpoint_every = 500
    config.eval.update(num_clips=256, batch_size=16)
    return config
