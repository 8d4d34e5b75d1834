"""Future leakage (paper §8.2): does the latent smuggle the next frame into the world model?

Stitch the start of clip A to the end of clip B at a state boundary (the cut), infer latents on the
stitched clip and predict teacher-forced. A latent that only describes the action cannot announce a new
scene, so the prediction error at the cut step jumps; a latent that encodes the next state predicts the
cut as well as any step. Reported: error at the cut step, error at the same step of A without the cut,
and their ratio (the paper finds x2.0-2.5 for every regularizer; a cheating latent gives ~1).
With a decoder, PSNR (and LPIPS) of the decoded prediction at the cut step, with and without the cut.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from lawm.evals import common, pictures


@functools.lru_cache(maxsize=16)
def _prediction_fn(system, cut_step: int):
    """jit(params, clip) -> (error per clip at the cut step, the prediction of s_cut, the clip's states)."""

    @jax.jit
    def predict(params, video):
        states = system.encode(params, video)
        z = system.infer_latents(params, states)
        predicted = system.predict(params, states[:, :cut_step], z[:, :cut_step])[:, -1]
        return jnp.abs(predicted - states[:, cut_step]).mean(axis=(-2, -1)), predicted, states

    return predict


def evaluate(context: common.Context, batches, *, cut_step: int | None = None) -> dict:
    system, params = context.model.system, context.model.params
    k = pictures.frames_per_state(system)
    sums: dict[str, list] = {}
    for batch in common.usable(batches):
        video = batch["video"]
        steps = video.shape[1] // k
        cut = cut_step if cut_step is not None else steps // 2
        if not 1 <= cut < steps:
            raise ValueError(f"scene_cut.cut_step must be in [1, {steps - 1}], got {cut}")
        for name, clip in (("cut", _stitched(video, cut * k)), ("no_cut", video)):
            error, predicted, states = _prediction_fn(system, cut)(params, clip)
            sums.setdefault(f"error_{name}", []).append(np.asarray(error))
            if context.decoder is not None:
                truth = pictures.frames_of_steps(clip, steps, context.decoder)[:, cut : cut + 1]
                frames = pictures.decode_rollouts(
                    context.decoder, states[:, :cut], {name: predicted[:, None]}
                )[name]
                sums.setdefault(f"psnr_{name}", []).append(pictures.psnr(frames, truth))
                if context.lpips is not None:
                    sums.setdefault(f"lpips_{name}", []).append(pictures.lpips(context.lpips, frames, truth))
    mean = {key: common.mean_over(v) for key, v in sums.items()}
    results = {f"scene_cut/{key}": v for key, v in mean.items()}
    results["scene_cut/ratio"] = common.ratio(mean["error_cut"], mean["error_no_cut"])
    if "lpips_cut" in mean:
        results["scene_cut/lpips_ratio"] = common.ratio(mean["lpips_cut"], mean["lpips_no_cut"])
    return results


def _stitched(video, cut_frame: int):
    """Clip b's frames up to the cut, then its partner's (clip b-1, as common.partner) from the cut on."""
    video = np.asarray(video)
    return np.concatenate([video[:, :cut_frame], np.roll(video, 1, axis=0)[:, cut_frame:]], axis=1)
