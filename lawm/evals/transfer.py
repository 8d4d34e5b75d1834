"""Transfer and cycle consistency (paper §8.3): do latent actions mean the same thing on another video?

For clips A and B (B = another clip of the batch):
  1. infer latents on A with the IDM;
  2. apply them to B: roll the world model out from B's context with A's latents;
  3. re-infer latents with the IDM on the predicted B;
  4. apply those to A: roll out from A's context.
Reported: the rollout error on A over `horizon` steps with the original latents and with the cycled ones,
and their ratio (the paper: x1.03-1.34; a model that ignores its latents gives exactly 1, so read it with
the scene-cut and shuffled-latent tests). The horizon defaults to 4 steps (2 s at 4 fps, tubelet 2).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from lawm.evals import common, pictures


@functools.lru_cache(maxsize=16)
def transfer_fn(system, context: int, horizon: int):
    """The jitted computation, `(params, video (B, F, H, W, 3)) -> (errors, rollouts, states, latents)`,
    for each clip b (A) and its partner b-1 (B): errors {"original", "cycled"} (B,); rollouts {"idm",
    "transfer_on_B", "cycled"} (B, horizon, N, E); A's states (B, T, N, E); latents {"A": z on A,
    "cycled": the latents the cycled rollout is given} (B, context + horizon - 1, L). `lawm.api`'s
    `Model.transfer` runs it on the pair (A, B)."""

    @jax.jit
    def run(params, video):
        states_a = system.encode(params, video)
        states_b = common.partner(states_a)
        z_a = system.infer_latents(params, states_a)
        z_b = common.partner(z_a)
        end = context + horizon - 1  # latents used by a rollout: z_0 .. z_{end-1}
        # Context latents are each clip's own; the predicted steps get the transferred ones.
        on_b = system.rollout(
            params,
            states_b[:, :context],
            jnp.concatenate([z_b[:, : context - 1], z_a[:, context - 1 : end]], 1),
            horizon,
        )
        z_again = system.infer_latents(params, jnp.concatenate([states_b[:, :context], on_b], axis=1))
        cycled_latents = jnp.concatenate([z_a[:, : context - 1], z_again[:, context - 1 : end]], axis=1)
        cycled = system.rollout(params, states_a[:, :context], cycled_latents, horizon)
        original = system.rollout(params, states_a[:, :context], z_a[:, :end], horizon)
        target = states_a[:, context : context + horizon]
        errors = {
            "original": common.l1_per_step(original, target).mean(1),
            "cycled": common.l1_per_step(cycled, target).mean(1),
        }
        rollouts = {"idm": original, "transfer_on_B": on_b, "cycled": cycled}
        return errors, rollouts, states_a, {"A": z_a[:, :end], "cycled": cycled_latents}

    return run


def evaluate(
    context: common.Context,
    batches,
    *,
    horizon: int = 4,
    context_steps: int | None = None,
    max_pictures: int = 4,
) -> dict:
    system, params = context.model.system, context.model.params
    k = pictures.frames_per_state(system)
    sums: dict[str, list] = {}
    rows = []
    for batch in common.usable(batches):
        video = batch["video"]
        steps = video.shape[1] // k
        c = context_steps if context_steps is not None else steps - horizon
        if c < 1 or c + horizon > steps:
            raise ValueError(
                f"transfer: context_steps ({c}) + horizon ({horizon}) must fit the clip's {steps} states"
            )
        errors, rollouts, states, _ = transfer_fn(system, c, horizon)(params, video)
        for name, value in errors.items():
            sums.setdefault(f"error_{name}", []).append(np.asarray(value))
        if context.decoder is not None:
            truth = pictures.frames_of_steps(video, steps, context.decoder)[:, c : c + horizon]
            frames = pictures.decode_rollouts(context.decoder, states[:, :c], {"idm": rollouts["idm"]})
            frames_b = pictures.decode_rollouts(
                context.decoder, common.partner(states)[:, :c], {"transfer_on_B": rollouts["transfer_on_B"]}
            )
            frames |= pictures.decode_rollouts(context.decoder, states[:, :c], {"cycled": rollouts["cycled"]})
            sums.setdefault("psnr_original", []).append(pictures.psnr(frames["idm"], truth))
            sums.setdefault("psnr_cycled", []).append(pictures.psnr(frames["cycled"], truth))
            if context.lpips is not None:
                sums.setdefault("lpips_original", []).append(
                    pictures.lpips(context.lpips, frames["idm"], truth)
                )
                sums.setdefault("lpips_cycled", []).append(
                    pictures.lpips(context.lpips, frames["cycled"], truth)
                )
            if len(rows) < max_pictures:
                shown = {
                    "idm": frames["idm"],
                    "B": np.roll(truth, 1, axis=0),
                    **frames_b,
                    "cycled": frames["cycled"],
                }
                rows.extend(pictures.clip_rows(truth, shown, limit=max_pictures - len(rows)))
    mean = {k: common.mean_over(v) for k, v in sums.items()}
    results = {f"transfer/{k}": v for k, v in mean.items()}
    results["transfer/ratio"] = common.ratio(mean["error_cycled"], mean["error_original"])
    if "lpips_original" in mean:
        results["transfer/lpips_ratio"] = common.ratio(mean["lpips_cycled"], mean["lpips_original"])
    if rows and context.picture_dir is not None:
        pictures.save_grid(context.picture_dir / "transfer.png", rows)
    return results
