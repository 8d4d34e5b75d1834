"""Capacity (paper §8.1): how well the world model predicts with the IDM's latents, which see the future.

With the IDM inferring every latent from the true clip, the prediction error is an upper bound on what any
controller or planner can reach. Reported in state space (mean L1 over tokens and features):
  - one step: teacher-forced prediction of every s_{t+1} from s_{0..t} and z_{0..t};
  - rollout: autoregressive, from the first `context` true states over the rest of the clip, feeding each
    prediction back (per-step errors too);
against the copy-last-state baseline and, when given, a deterministic world model trained with the same
recipe (its latents are 0: it predicts from the past alone). Ratios below 1 mean the latents help.
With a decoder: PSNR of the decoded rollout against the true frames, and a picture grid per clip
(rows: true frames, IDM rollout, deterministic rollout).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from lawm.evals import common, pictures


@functools.lru_cache(maxsize=16)
def _errors_fn(system, context: int):
    """jit(params, video) -> states, per-step one-step errors, rollout errors, rolled-out states."""

    @jax.jit
    def errors(params, video):
        states = system.encode(params, video)
        z = system.infer_latents(params, states)
        one_step = common.l1_per_step(system.predict(params, states[:, :-1], z), states[:, 1:])
        rolled = system.rollout(params, states[:, :context], z, states.shape[1] - context)
        return states, one_step, common.l1_per_step(rolled, states[:, context:]), rolled

    return errors


def _errors(model: common.Model, video, context: int):
    return _errors_fn(model.system, context)(model.params, video)


def evaluate(context: common.Context, batches, *, context_steps: int = 2, max_pictures: int = 4) -> dict:
    sums: dict[str, list] = {}
    pixels: dict[str, list] = {}
    picture_rows = []
    for batch in batches:
        video = batch["video"]
        states, one_step, rollout, rolled = _errors(context.model, video, context_steps)
        copy_one = common.l1_per_step(states[:, :-1], states[:, 1:])
        last = jnp.broadcast_to(states[:, context_steps - 1 : context_steps], rolled.shape)
        copy_rollout = common.l1_per_step(last, states[:, context_steps:])
        for key, value in (
            ("one_step", one_step),
            ("rollout", rollout),
            ("copy_last_one_step", copy_one),
            ("copy_last_rollout", copy_rollout),
        ):
            sums.setdefault(key, []).append(np.asarray(value))  # (B, steps)
        reference_rolled = None
        if context.reference is not None:
            _, ref_one, ref_rollout, reference_rolled = _errors(context.reference, video, context_steps)
            sums.setdefault("reference_one_step", []).append(ref_one)
            sums.setdefault("reference_rollout", []).append(ref_rollout)
        if context.decoder is not None:
            rows = pictures.decode_rollouts(
                context.decoder, states[:, :context_steps], {"idm": rolled, "deterministic": reference_rolled}
            )
            truth = pictures.frames_of_steps(video, states.shape[1], context.decoder)[:, context_steps:]
            for name, frames in rows.items():
                pixels.setdefault(f"psnr_{name}", []).append(pictures.psnr(frames, truth))
                if context.lpips is not None:
                    pixels.setdefault(f"lpips_{name}", []).append(
                        pictures.lpips(context.lpips, frames, truth)
                    )
            if len(picture_rows) < max_pictures:
                picture_rows.extend(pictures.clip_rows(truth, rows, limit=max_pictures - len(picture_rows)))

    mean = {k: common.mean_over(v) for k, v in sums.items()}
    per_step = np.concatenate(sums["rollout"]).mean(axis=0)
    results = {f"capacity/{k}": v for k, v in mean.items()}
    results.update({f"capacity/rollout_step_{i + 1}": float(e) for i, e in enumerate(per_step)})
    results["capacity/one_step_over_copy_last"] = common.ratio(mean["one_step"], mean["copy_last_one_step"])
    results["capacity/rollout_over_copy_last"] = common.ratio(mean["rollout"], mean["copy_last_rollout"])
    if context.reference is not None:
        results["capacity/one_step_over_reference"] = common.ratio(
            mean["one_step"], mean["reference_one_step"]
        )
        results["capacity/rollout_over_reference"] = common.ratio(mean["rollout"], mean["reference_rollout"])
    results.update({f"capacity/{k}": common.mean_over(v) for k, v in pixels.items()})
    if picture_rows and context.picture_dir is not None:
        pictures.save_grid(context.picture_dir / "capacity.png", picture_rows)
    return results
