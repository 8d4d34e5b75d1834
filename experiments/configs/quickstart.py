"""Quickstart: the built-in synthetic world, tiny models, a laptop-class CPU.

COMMAND:  lawm-train --config=experiments/configs/quickstart.py --workdir=/tmp/lawm_quickstart
RUNTIME:  about 6.5 minutes on 2 CPU cores (no accelerator, nothing downloaded).
EXPECTED: /tmp/lawm_quickstart/eval/<last step>.json: own_over_shuffled <= 0.75, own_over_copy_last < 1,
          probe_r2/camera_dx and camera_dy >= 0.5 (the latents carry each clip's camera pan); measured
          values in the README's quickstart table.
"""

from __future__ import annotations

from experiments.configs import common


def get_config(arg=None):
    del arg
    total_steps = 1500
    config = common.cpu_model(common.base_config(total_steps))
    config.model.regularizer = dict(name="noisy", beta=1e-4)
    config.data.world = dict(image_size=64, num_frames=16, fps=4.0, smoothness=0.5)
    config.batch_size = 8
    config.optim.update(muon_lr=0.02, adamw_lr=2e-3, weight_decay=0.0)
    config.log_every = 50
    config.checkpoint_every = 500
    config.eval.update(num_clips=128, batch_size=16)
    return config
