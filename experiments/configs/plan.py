"""Planning with a trained controller and its world model (PAPER.md §8.6-8.7; lawm/planning_protocols.py).

COMMAND:  lawm-plan --config=experiments/configs/plan.py:synthetic --workdir=/tmp/lawm_controller
          WORKDIR is a controller run (experiments/configs/controller.py); results go to
          WORKDIR/plan/<protocol>.json and a picture of planned vs true trajectories to
          WORKDIR/plan/<protocol>.png. ARG: synthetic | droid | recon. droid and recon plan on the run's
          eval records (override with --config.eval_records=PATH).
RUNTIME:  synthetic, 32 episodes: 17.5 min (adapter) / 11.3 min (mlp) on 2 CPU cores shared with other
          training runs (load ~4-8), measured 2026-11-21.
EXPECTED: synthetic, controllers of experiments/configs/controller.py:synthetic on /tmp/lawm_quickstart,
          WORKDIR/plan/synthetic.json (adapter / mlp; the baselines are the same for both):
            Δ (present agents + camera, px)  planned 22.1 / 20.3, zero 19.8, random 32.2
                                             -> delta_over_zero 1.12 / 1.03, delta_over_random 0.69 / 0.63
            Δ camera                         planned 1.63 / 1.64, zero 5.57, random 8.86 -> 0.29 / 0.29 of
                                             zero, 0.18 / 0.18 of random; final camera error 1.27 / 1.27
                                             px (zero 4.33, random 6.81)
            Δ agents                         planned 20.5 / 18.7, zero 14.2, random 23.3 -> 1.44 / 1.31
                                             of zero; final agent error 8.1 / 7.9 px (zero 6.0)
          The camera (ego-motion) is planned well by both controllers; the agents not at all, by either:
          the quickstart world model does not represent their motion. Rolled out with the IDM's latents of
          the true clip, its last predicted state is as far from the goal (L2 33.9) as with the latents
          of the same clip re-simulated with the agents standing still (34.1); without the pan, 46.3
          (13 single-agent eval clips; 30.8 vs 30.8 vs 33.9 for a 1-agent, large-sprite world model,
          synthetic_eval.py:noisy before `residual`). So Δ <= 0.5x zero and random holds for the
          camera dims only there, and the two controllers tie (a pan's latent does not depend on the
          state; the turned-camera world below is one where it does).
          Elite mean instead of best sample: no change (8 episodes: Δ 26.4 vs 26.7).
          With controllers on the agent world's noisy model (controller.py:synthetic:synthetic_eval:
          noisy:agent on /tmp/lawm_eval/noisy_agent, whose latents carry the agent's move; no camera):
            Δ agent                          planned 1.60 / 1.42, zero 3.40, random 6.56 -> 0.47 / 0.42
                                             of zero, 0.24 / 0.22 of random; final agent error
                                             1.12 / 1.00 px (zero 2.73, random 4.88)
          32 episodes in 13.6 / 12.3 min on 2 CPU cores, measured 2026-11-21.
          With controllers on the turned-camera world's noisy model (controller.py:synthetic:
          synthetic_eval:noisy:rotated on /tmp/lawm_eval/noisy_rotated: the camera turned by a random
          quarter turn per clip, actions in the world's frame, the agent still), where the latent of a
          pan depends on the turn that only the state shows:
            Δ camera                         planned 0.52 / 7.79, zero 2.05, random 4.47 -> 0.25 / 3.8
                                             of zero, 0.12 / 1.7 of random; final camera error
                                             0.40 / 5.85 px (zero 1.61, random 3.42)
          The adapter beats the MLP by 15x; the MLP's latents are those of no movement. 32 episodes in
          11.9 / 10.2 min, measured 2026-11-21.
Protocols. droid (Terver et al., as the paper): H = 3, CEM N = 300, K = 10, I = 15 from N(0, 1), the best
sample, 64 episodes, Δxyz; the action bounds (±0.1 on the 6 pose deltas, ±0.75 on the gripper) are the
[JWM] code's (the paper states none). recon (NWM): H = 8 (2 s at 4 fps), one straight-line action, N = 120,
one iteration, ATE and RPE; the cost (representation L2), the elite count and the bounds (±3 m, ±pi/2 rad
over the 2 s) are our choices (PAPER.md §13). synthetic: H = 3 latent steps, the droid CEM with 10
iterations (CPU time) and a std of 2 px (actions are pixel displacements, bounded by the world's speeds),
32 episodes.
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
    config.horizon = 3
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
        config.horizon = 8
        config.cem.update(num_samples=120, iterations=1)
        config.action_low = [-3.0, -3.0, -math.pi / 2]
        config.action_high = [3.0, 3.0, math.pi / 2]
    return config
