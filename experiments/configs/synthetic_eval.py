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
RUNTIME:  2000 steps; about 9 minutes per model alone on 2 CPU cores (4 steps/s), lawm-eval ~2 minutes.
EXPECTED: see the README's results table (measured values and the machine).

The world: one large agent (radius 14-18 px in 64 px frames) painted with a pattern that moves with it,
always present (slot 0), moving up to 1.5 px per frame with little momentum (smoothness 0.3, so the past
does not give its next move away), over a background the camera pans by up to 1 px per frame; no
distractors. The choices made, and what they did:
  - the sparse regularizer's coefficients as printed (l1 0.01 ...) leave the latents unused (own/shuffled
    0.998 at step 500, in an earlier version of this world); `scale` (the whole sparse loss times it)
    lets the prediction loss win: 0.92 at scale 0.1 and 0.81 at scale 0.01 (2000 steps, this world), so
    the preset uses 0.01;
  - the world model predicts the change of state (`world_model.residual`), so it does not spend its two
    blocks re-drawing the static scene (its effect alone was not measured);
  - plain single-colour agents moving a few px never made it into the latents (probe R^2 ~ 0 at every
    speed and size tried, with and without camera pan, noisy beta 1e-4 / 1e-5 and sparse): only the pan
    did. The pattern makes every pixel of the agent change as it moves, like a textured person; it did
    not get the agent into the latents either (agent R^2 ~ 0 for every model: README results table);
  - why, measured: a world model of this size trained alone with the *true* actions as its latent (1500
    steps) reaches L1 0.1772 with none, 0.1398 with the pan, 0.1357 with pan + agent (4 x 128: 0.1291 vs
    0.1214; without pan: 0.0955 vs 0.0846 with the agent). Even handed the agent's action it gains 3-11 %
    (the pan: 21 %), so nothing pushes the IDM to encode it; an IDM of depth 2 (depth 1 cannot compare
    s_t with s_{t+1} token by token before its readout) lifts the camera probe to 0.53/0.62 but not the
    agent's;
  - larger, plainer agent motion does not change that (2026-11-21, the same oracle, no pan, no entering
    objects, smoothness 0): patterned agent at 4 px/frame 0.1401 none vs 0.1370 with its action (copy-last
    0.1682); plain agent at 4 px/frame 0.0908 vs 0.0925 at step 1000; plain agent at 8 px/frame 0.1646 vs
    0.1610 (copy-last 0.1885). The world model never learns to move an object it must first pick out of
    the scene, however large the move: it only learns what applies to every token (the pan). Even a flat
    background (texture_contrast 0, where an agent's move is a shift of the whole picture), no pan, IDM
    depth 2, noisy beta 1e-4, 2000 steps: own/shuffled 1.00, agent R^2 -0.02 / -0.05. So were, each with
    IDM depth 2, noisy beta 1e-4, 2000 steps: a huge patterned agent (radius 22-26) with the pan
    (own/shuffled 1.00: it even pushed the pan out, camera R^2 0.05-0.07; KL fell to 0.04), the same
    without pan (KL 4.8 -> 0.13 by step 1000; stopped), and a patterned agent whose pattern cannot alias
    (period 16 px > twice its largest move per state) on a flat background without pan, where the agent
    is the only thing that moves and a shift of the whole picture is its move (KL 0.003 at step 2000,
    own/shuffled 1.00, own/copy-last 0.83, agent R^2 -0.05 / -0.06). In that last world the
    unconstrained regularizer (`none`) is worse still: its latents grow (L1 44 over 16 dims) and the
    world model never leaves copy-last (own/copy-last 0.9999) - a pathology of unbounded latents under
    AdaLN-zero worth a look before trying larger models.
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


def get_config(arg="noisy"):
    arg = arg or "noisy"
    if arg not in REGULARIZERS:
        raise ValueError(f"synthetic_eval.py: unknown regularizer {arg!r} (one of {sorted(REGULARIZERS)})")
    total_steps = 2000
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
        num_distractors=(0, 0),
        sprite_radius=(14.0, 18.0),
        max_speed=1.5,
        camera_pan=True,
        max_pan=1.0,
        smoothness=0.3,
        agent_pattern=80.0,
    )
    config.batch_size = 8
    config.optim.update(muon_lr=0.02, adamw_lr=2e-3, weight_decay=0.0)
    config.log_every = 100
    config.checkpoint_every = 500
    config.eval.update(
        num_clips=256,
        batch_size=16,
        reference_workdir="/tmp/lawm_eval/deterministic",
        decoder_workdir="/tmp/lawm_eval/decoder",
    )
    return config
