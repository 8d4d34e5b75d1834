"""Evaluation models on the synthetic world: one per regularizer, trained long enough to compare them.

COMMAND:  for REG in deterministic sparse noisy discrete; do
            lawm-train --config=experiments/configs/synthetic_eval.py:$REG --workdir=/tmp/lawm_eval/$REG
          done
          lawm-train --config=experiments/configs/decoder.py:synthetic_eval --workdir=/tmp/lawm_eval/decoder
          lawm-eval --config=experiments/configs/synthetic_eval.py:$REG --workdir=/tmp/lawm_eval/$REG
          python -m experiments.eval_table /tmp/lawm_eval/{sparse,noisy,discrete,deterministic}
          The deterministic run is the capacity reference and the decoder draws the pictures of every
          model (they share the frozen encoder): train those two first, or point eval.reference_workdir /
          eval.decoder_workdir elsewhere. REG also takes `none` (unconstrained).
          ARG is REG[:WORLD], WORLD `camera` (the default), `agent` or `rotated`: for the agent world
          use synthetic_eval.py:$REG:agent, workdirs /tmp/lawm_eval/${REG}_agent and the decoder
          decoder.py:synthetic_eval:noisy:agent in /tmp/lawm_eval/decoder_agent (`rotated` likewise;
          only its noisy model is trained, for the controllers of experiments/configs/controller.py).
RUNTIME:  2000 steps; about 9 minutes per model alone on 2 CPU cores (4 steps/s; the agent world's
          depth-2 IDM: 12.5 minutes at 2.7 steps/s), lawm-eval ~2 minutes.
EXPECTED: see the README's results tables (measured values and the machine).

The camera world: one large agent (radius 14-18 px in 64 px frames) painted with a pattern that moves
with it (period 6 px), always present (slot 0), moving up to 1.5 px per frame with little momentum
(smoothness 0.3, so the past does not give its next move away), over a background the camera pans by up
to 1 px per frame; no distractors. Its models' latents carry the pan, not the agent.

The agent world (WORLD `agent`), where latents carry the agent's own move: the agent is huge (radius
22-26 px: most of the frame, as a person close to the camera), its pattern has a period of 16 px (more
than twice its largest move per state, so a move cannot alias into another), nothing else moves (no pan,
no entering object), and the IDM reads each place's pair of states as one token (`idm.pairing =
"channels"`, depth 2). Measured 2026-11-21 (2-core CPU, 2000 steps, 256 held-out clips): noisy beta 1e-5
own/shuffled 0.67, own/copy-last 0.68, ridge probe R^2 0.87 (dy) / 0.89 (dx) of the agent's displacement;
sparse 0.67, R^2 0.88 / 0.86; discrete 0.81, R^2 0.67 / 0.70 (the README's agent-world table).

The turned-camera world (WORLD `rotated`), where a controller must look at the state: the camera world
with the camera turned by a random quarter turn per clip (`camera_rotation`: actions in the world's
frame, a dark band along the world's top edge shows the turn) and the agent standing still (max_speed 0),
so the pan is all that moves; the agent world's IDM and noisy beta. Measured 2026-11-21 (2-core CPU, 2000
steps in 8.3 minutes, 256 held-out clips): own/shuffled 0.25, own/copy-last 0.31; ridge probe R^2 of the
world-frame pan -0.01 / -0.02 (the latents carry the pan as the picture shows it, which the world-frame
action alone does not give: experiments/configs/controller.py). With the camera world's IDM and noisy
beta 1e-4 the latents collapsed (KL 5 -> 0.03 nats by step 1300).

The choices made, and what they did:
  - the sparse regularizer's coefficients as printed (l1 0.01 ...) leave the latents unused (own/shuffled
    0.998 at step 500, in an earlier version of the camera world); `scale` (the whole sparse loss times
    it) lets the prediction loss win: 0.92 at scale 0.1 and 0.81 at scale 0.01 (2000 steps), so the
    preset uses 0.01;
  - the world model predicts the change of state (`world_model.residual`), so it does not spend its two
    blocks re-drawing the static scene (its effect alone was not measured);
  - what the world model can use at all, measured by training it alone with the *true* actions as its
    latent (1500 steps, L1 on held-out clips, no action / with the agent's action / copy-last): camera
    world 0.1772 with no action, 0.1398 with the pan, 0.1357 with pan + agent (the agent adds 3 %); plain or
    period-6 agents of radius 14-18 moving up to 8 px per frame gained 2-3 % at most; the agent world
    0.1179 / 0.0997 / 0.1365 (the agent's action: 15 %). Where the oracle gains nothing the latents
    never carried the agent (agent R^2 ~ 0 with noisy beta 1e-4 / 1e-5, sparse, huge period-6 agents,
    flat backgrounds, with and without pan, IDM depth 1 and 2);
  - in the agent world with the default pairing (`tokens`: 2N tokens, IDM depth 2) the latents still
    did not help: noisy beta 1e-4 collapsed (KL 4.6 -> 0.06 by step 1100) and beta 1e-5 kept a KL of
    10-19 nats that the world model did not use (prediction L1 0.116 at step 1000 either way, the
    oracle's no-action level). With `channels` pairing, same seed and data: 0.100 at step 1000 and the
    result above. Our reading: a random-init IDM's readout averages the tokens of each state, which a
    moving pattern hardly changes, so its first latents carry little motion; and under AdaLN-zero the IDM
    gets no gradient until the world model's modulation has grown. Concatenating s_t and s_{t+1} per
    place puts the local change in every token from the start. Beta 1e-5 (not 1e-4) for noisy in this
    world: 1e-4 with `channels` keeps a KL of ~2.3 and gives own/shuffled 0.91, agent R^2 0.30 / 0.47;
  - the unconstrained regularizer (`none`) in a flat-background agent world kept the world model at
    copy-last (own/copy-last 0.9999, latents L1 44 over 16 dims): a pathology of unbounded latents under
    AdaLN-zero, not investigated further.
"""

from __future__ import annotations

from experiments.configs import common

REGULARIZERS = {
    "deterministic": dict(name="deterministic"),
    "none": dict(name="none"),
    "noisy": dict(name="noisy", beta=1e-4),
    "sparse": dict(name="sparse", l1=0.01, scale=0.01),
    "discrete": dict(name="discrete", codebook_size=64, reset_every=200),
}


# The agent world: ARG REG:agent. Changes to the camera world above, and why (see the docstring).
AGENT_WORLD = dict(
    camera_pan=False, sprite_radius=(22.0, 26.0), agent_pattern_period=16.0, entering_objects=0.0
)
AGENT_REGULARIZERS = dict(REGULARIZERS, noisy=dict(name="noisy", beta=1e-5))
# The turned-camera world: ARG REG:rotated (see the docstring), with the agent world's IDM and regularizers.
ROTATED_WORLD = dict(camera_rotation=True, max_speed=0.0)
WORLDS = ("camera", "agent", "rotated")


def get_config(arg="noisy"):
    name, _, world = (arg or "noisy").partition(":")
    world = world or "camera"
    if name not in REGULARIZERS:
        raise ValueError(f"synthetic_eval.py: unknown regularizer {name!r} (one of {sorted(REGULARIZERS)})")
    if world not in WORLDS:
        raise ValueError(f"synthetic_eval.py: unknown world {world!r} (one of {WORLDS})")
    total_steps = 2000
    config = common.base_config(total_steps)
    config.model.latent_dim = 16
    config.model.encoder.update(width=64, depth=0, num_heads=4, patch_size=8, tubelet_size=2, image_size=64)
    config.model.idm.update(width=64, depth=1, num_heads=4)
    config.model.world_model.update(width=64, depth=2, num_heads=4, cond_dim=32, residual=True)
    config.model.regularizer = dict((REGULARIZERS if world == "camera" else AGENT_REGULARIZERS)[name])
    config.data.world = dict(
        image_size=64,
        num_frames=16,
        fps=4.0,
        num_agents=(1, 1),
        num_distractors=(0, 0),
        sprite_radius=(14.0, 18.0),
        max_speed=1.5,
        camera_pan=True,
        max_pan=1.0,
        smoothness=0.3,
        agent_pattern=80.0,
    )
    if world != "camera":
        config.data.world.update(AGENT_WORLD if world == "agent" else ROTATED_WORLD)
        config.model.idm.update(depth=2, pairing="channels")
    config.batch_size = 8
    config.optim.update(muon_lr=0.02, adamw_lr=2e-3, weight_decay=0.0)
    config.log_every = 100
    config.checkpoint_every = 500
    suffix = "" if world == "camera" else f"_{world}"  # other worlds' runs sit beside the camera world's
    config.eval.update(
        num_clips=256,
        batch_size=16,
        reference_workdir="/tmp/lawm_eval/deterministic" + suffix,
        decoder_workdir="/tmp/lawm_eval/decoder" + suffix,
    )
    return config
