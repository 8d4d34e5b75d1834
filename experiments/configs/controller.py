"""Controllers (paper §8.5): real actions (+ the previous state) -> a trained world model's latent actions.

COMMAND:  lawm-train --config=experiments/configs/controller.py:synthetic --workdir=/tmp/lawm_controller \
              --config.controller.world_model_workdir=/tmp/lawm_quickstart
          lawm-train ... --config.controller.kind=mlp --workdir=/tmp/lawm_controller_mlp  # actions only
          ARG is PROTOCOL[:WORLD_CONFIG[:WORLD_ARG]]. PROTOCOL: synthetic, droid or recon. WORLD_CONFIG:
          the world model run's config in experiments/configs with its own argument (default: quickstart
          for synthetic, lawm_yt1b for droid and recon), e.g. controller.py:synthetic:synthetic_eval:noisy.
          The config's `model` must equal the run's (repeat the run's --config.model.* overrides); a
          mismatch fails before compute, naming the field. droid and recon read clip records with actions
          from `lawm-prepare rlds --eval_fraction F --output OUT`: --config.rlds_output=OUT trains on
          OUT/train and evaluates (and lawm-plan plans) on the held-out OUT/eval; or set
          --config.data.paths.train and .eval.
RUNTIME:  synthetic: about 10 minutes on 2 CPU cores (600 steps).
EXPECTED: WORKDIR/eval/600.json: controller/latent_mse_over_var (1 - R^2 of the IDM's latents) well below 1
          and next-state error with the controller's latents below that with zero actions; measured values
          in the README's "Controllers and planning".

Where the paper is silent, ours: global-norm clipping 1.0, the MLP's width 256 and depth 3, and the action
scaling (`controller.action_scale`; planning bounds stay in real units). The synthetic preset is CPU-sized
(batch 32, 600 steps; the loss is flat after ~300) and uses native tubelets of 16-frame clips (8 states, as
the world model was trained) instead of the paper's frame duplication (why: README).
"""

from __future__ import annotations

import importlib

import ml_collections
from ml_collections import config_dict

from experiments.configs import common

PROTOCOLS = ("synthetic", "droid", "recon")
DEFAULT_WORLD = {"synthetic": "quickstart", "droid": "lawm_yt1b", "recon": "lawm_yt1b"}
FRAMES = 8  # per clip at 4 fps; 16 after duplication for a tubelet-2 encoder
PAPER = dict(total_steps=3000, batch_size=256)  # droid, recon: the paper's (its optimiser: below)
SYNTHETIC = dict(total_steps=600, batch_size=32)
# Real-action dimensionality (data_pipelines/tools/rlds.py conventions) and the scale the controller sees.
ACTIONS = {
    "droid": dict(action_dim=7, action_scale=10.0),  # 7-D end-effector deltas, ~0.01-0.1 m per step
    "recon": dict(action_dim=3, action_scale=1.0),  # (dx, dy, dyaw), ~0.1-0.5 m per step at 4 Hz
}


def get_config(arg="synthetic"):
    protocol, _, world_spec = (arg or "synthetic").partition(":")
    if protocol not in PROTOCOLS:
        raise ValueError(f"controller.py: PROTOCOL must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    name, _, world_arg = (world_spec or DEFAULT_WORLD[protocol]).partition(":")
    try:
        module = importlib.import_module(f"experiments.configs.{name}")
    except ModuleNotFoundError:
        raise ValueError(f"controller.py: no world model config experiments/configs/{name}.py") from None
    world = module.get_config(world_arg) if world_arg else module.get_config()

    preset = SYNTHETIC if protocol == "synthetic" else PAPER
    config = common.base_config(preset["total_steps"])
    config.task = "controller"
    config.model = world.model  # must equal the world model run's (checked before compute)
    if protocol == "synthetic":
        from data_pipelines.sources import synthetic

        # Native tubelets (frame_duplication False below): 16 frames give 8 states, as in training.
        config.data.world = dict(world.data.world.to_dict(), num_frames=2 * FRAMES, fps=4.0)
        actions = dict(
            action_dim=synthetic.action_dim(synthetic.WorldConfig(**config.data.world)), action_scale=1.0
        )
    else:
        config.data.update(  # data.paths: clip records written by `lawm-prepare rlds`
            source="records", num_frames=FRAMES, fps=4.0, image_size=world.model.encoder.image_size
        )
        # `lawm-prepare rlds --output` with held-out episodes: its train/ and eval/ (unset: paths unset).
        config.rlds_output = config_dict.placeholder(str)
        config.data.paths.train = config.get_ref("rlds_output") + "/train"
        config.data.paths.eval = config.get_ref("rlds_output") + "/eval"
        actions = ACTIONS[protocol]
    encoder = world.model.encoder
    config.controller = ml_collections.ConfigDict(
        dict(
            world_model_workdir=config_dict.placeholder(str),
            kind="adapter",
            # The adapter (kind "adapter"): at the encoder's width, 2 self-attention blocks over the
            # previous state's tokens, a 3-layer action MLP, one cross-attention block.
            width=encoder.width,
            num_heads=encoder.num_heads,
            depth=2,
            action_mlp_depth=3,
            mlp_ratio=4.0,
            mlp_width=256,  # the actions-only MLP (kind "mlp")
            mlp_depth=3,
            # The paper's mapping of one frame action to one latent; the synthetic preset uses native
            # tubelets instead (lawm/systems/controller.py; why: README "Controllers and planning").
            frame_duplication=protocol != "synthetic",
            **actions,
        )
    )
    config.batch_size = preset["batch_size"]
    config.optim.update(use_muon=False, adamw_lr=1e-3, weight_decay=0.04, warmup_fraction=0.1)
    config.log_every = 50
    config.checkpoint_every = 500
    config.eval.update(num_clips=256 if protocol == "synthetic" else 1024, batch_size=32)
    return config
