"""Quickstart: the built-in synthetic world, tiny models, a laptop-class CPU.

COMMAND:  lawm-train --config=experiments/configs/quickstart.py --workdir=/tmp/lawm_quickstart
RUNTIME:  about 6.5 minutes on 2 CPU cores (no accelerator, nothing downloaded).
EXPECTED: /tmp/lawm_quickstart/eval/<last step>.json shows the latents carrying each clip's own motion
          on held-out clips: own_over_shuffled <= 0.75 (error with the clip's own latents vs latents of
          other clips), own_over_copy_last < 1, and a linear probe recovering the camera pan from the
          latents (probe_r2/camera_dy, probe_r2/camera_dx >= 0.5). Measured 2026-11-21: 0.68, 0.61,
          R^2 0.59 / 0.63 in 6 min 23 s (deterministic: a rerun on the same machine gives the same).
"""

from __future__ import annotations

from experiments.configs import common


def get_config(arg=None):
    del arg
    total_steps = 1500
    config = common.base_config(total_steps)
    config.model.latent_dim = 16
    # A frozen patch embedding is enough of an encoder for 64 px sprites, and cheap on a CPU.
    config.model.encoder.update(width=64, depth=0, num_heads=4, patch_size=8, tubelet_size=2, image_size=64)
    config.model.idm.update(width=64, depth=1, num_heads=4)
    config.model.world_model.update(width=64, depth=2, num_heads=4, cond_dim=32)
    config.model.regularizer = dict(name="noisy", beta=1e-4)
    config.data.world = dict(image_size=64, num_frames=16, fps=4.0, smoothness=0.5)
    config.batch_size = 8
    config.optim.update(muon_lr=0.02, adamw_lr=2e-3, weight_decay=0.0)
    config.log_every = 50
    config.checkpoint_every = 500
    config.eval.update(num_clips=128, batch_size=16)
    return config
