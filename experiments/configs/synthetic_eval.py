"""Evaluation models on the synthetic world: one per regularizer, trained long enough to compare them.

COMMAND:  for REG in deterministic sparse noisy discrete; do
            lawm-train --config=experiments/configs/synthetic_eval.py:$REG --workdir=/tmp/lawm_eval/$REG
          done
          lawm-train --config=experiments/configs/decoder.py:synthetic_eval --workdir=/tmp/lawm_eval/decoder
          lawm-eval --config=experiments/configs/synthetic_eval.py:$REG --workdir=/tmp/lawm_eval/$REG
          python -m experiments.eval_table /tmp/lawm_eval/{sparse,noisy,discrete,deterministic}
          Train the deterministic run (the capacity reference) and the decoder (it draws every model's
          pictures: they share the frozen encoder) first, or point eval.reference_workdir /
          eval.decoder_workdir elsewhere. REG also takes `none` (unconstrained). ARG is REG[:WORLD], WORLD
          `camera` (the default), `agent` or `rotated`: workdirs /tmp/lawm_eval/${REG}_agent, decoder
          decoder.py:synthetic_eval:noisy:agent in /tmp/lawm_eval/decoder_agent (`rotated` likewise; only
          its noisy model is trained, for the controllers of experiments/configs/controller.py).
RUNTIME:  2000 steps: about 9 minutes per model on 2 CPU cores (agent world 12.5), lawm-eval ~2 minutes.
EXPECTED: the README's "Results on the synthetic world" tables (camera and agent world); how the worlds and
          presets were arrived at: its "What was tried" list.

The worlds are ours (the paper has none): `camera`, one large patterned agent over a background the camera
pans (its latents carry the pan); `agent`, a huge agent and nothing else moving (its latents carry the
agent's move); `rotated`, the camera world turned by a random quarter turn per clip, the agent still.
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


# The agent world: ARG REG:agent. Changes to the camera world below: the agent fills most of the frame (as a
# person close to the camera), its pattern's period (16 px) is over twice its largest move per state (no
# aliasing), no pan, no entering object; the IDM reads each place's pair of states as one token.
AGENT_WORLD = dict(
    camera_pan=False, sprite_radius=(22.0, 26.0), agent_pattern_period=16.0, entering_objects=0.0
)
AGENT_REGULARIZERS = dict(REGULARIZERS, noisy=dict(name="noisy", beta=1e-5))
# The turned-camera world: ARG REG:rotated, the camera turned per clip (a dark band along the world's top
# edge shows the turn; actions in the world's frame) and the agent still; the agent world's IDM and
# regularizers.
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
    config = common.cpu_model(common.base_config(total_steps))
    config.model.world_model.residual = True  # predicts the change of state: no re-drawing the static scene
    config.model.regularizer = dict((REGULARIZERS if world == "camera" else AGENT_REGULARIZERS)[name])
    # The camera world: one agent (slot 0, radius 14-18 px, a pattern moving with it) with little momentum
    # (the past does not give its next move away), no distractors, a camera panning up to 1 px per frame.
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
