"""Planning with a trained controller and its world model (paper §8.6-8.7; lawm/planning/protocols.py).

COMMAND:  lawm-plan --config=experiments/configs/plan.py:synthetic --workdir=/tmp/lawm_controller
          WORKDIR is a controller run (experiments/configs/controller.py); results go to
          WORKDIR/plan/<protocol>.json and a picture of planned vs true trajectories to
          WORKDIR/plan/<protocol>.png. ARG: synthetic | droid | recon. droid and recon plan on the run's
          eval records, the held-out episodes `lawm-prepare rlds --eval_fraction` writes to OUTPUT/eval
          (override with --config.eval_records=PATH).
RUNTIME:  synthetic, 32 episodes: 10-18 minutes on 2 CPU cores.
EXPECTED: synthetic: planned Δ well below the zero-action and random baselines for what the world model's
          latents carry (the camera for the quickstart model, the agent for synthetic_eval.py:noisy:agent);
          measured values in the README's "Controllers and planning" tables.

Protocols. droid (Terver et al., as the paper): H = 3, CEM N = 300, K = 10, I = 15 from N(0, 1), the best
sample, 64 episodes drawn (seeded) across the held-out episodes, Δxyz; the action bounds (±0.1 on the 6 pose
deltas, ±0.75 on the gripper) are the [JWM] code's (the paper states none). recon (NWM): H = 2 s
(`horizon_s`; 8 steps at the 4 fps clips), NWM's straight line (lawm/planning/protocols.py), N = 120, one
iteration, ATE and RPE; the cost (representation L2), the elite count and the bounds (±3 m, ±pi rad final
heading offset) are our choices (the paper states none). synthetic: H = 3 latent steps, the droid CEM with
10 iterations (CPU time) and a std of 2 px (actions are pixel displacements, bounded by the world's
speeds), 32 episodes.
"""

from __future__ import annotations

import math

import ml_collections

PROTOCOLS = ("synthetic", "droid", "recon")
CEM = dict(
    num_samples=300,
    num_elites=10,
    iterations=15,
    init_mean=0.0,
    init_std=1.0,
    momentum=0.0,
    min_std=0.0,
    return_best=True,
    cost="l2",
)


def get_config(arg="synthetic"):
    protocol = arg or "synthetic"
    if protocol not in PROTOCOLS:
        raise ValueError(f"plan.py: ARG must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    config = ml_collections.ConfigDict()
    config.protocol = protocol
    config.seed = 0
    config.num_episodes = 64
    config.horizon = 3  # planned latent steps; 0: horizon_s seconds at the controller run's clip rate
    config.horizon_s = 0.0
    config.cem = dict(CEM)
    config.num_pictures = 4
    config.eval_records = ""  # droid / recon: eval clip records (default: the controller run's)
    config.world = {}  # synthetic: WorldConfig fields over the controller run's (e.g. camera_pan=False)
    # Per-dimension bounds of the planned actions (synthetic: from the world's speeds, k frames per step).
    config.action_low = []
    config.action_high = []
    if protocol == "synthetic":
        config.num_episodes = 32
        config.cem.update(iterations=10, init_std=2.0)
    elif protocol == "droid":
        config.action_low = [-0.1] * 6 + [-0.75]
        config.action_high = [0.1] * 6 + [0.75]
    else:
        config.horizon, config.horizon_s = 0, 2.0  # "H = 8 steps (2 s at 4 fps)", paper §8.7
        config.cem.update(num_samples=120, iterations=1)
        # The line's total (Δx, Δy) in the start's frame [m], and its final heading offset [rad].
        config.action_low = [-3.0, -3.0, -math.pi]
        config.action_high = [3.0, 3.0, math.pi]
    return config
