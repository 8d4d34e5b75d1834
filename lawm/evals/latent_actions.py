"""Do the latent actions carry each clip's own motion?

On held-out clips, next-state prediction error (L1, teacher-forced) with
  - the clip's own IDM latents,
  - latents of *other* clips (shuffled across the batch): the honest control. z = 0 is not one: it lies
    off the distribution of latents the model was trained on, so even a model that ignores its latent
    does worse with it;
  - no model at all: the copy-last-state baseline.
Where the data has true actions, a ridge probe from latents to each action component, fit on half of the
clips and scored (R^2) on the other half.

Dimension keys: B clips, F frames, T state steps, L latent dim, A action dim.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from lawm import config as config_lib


@functools.lru_cache(maxsize=8)
def _errors_fn(system):
    """Per-clip errors with own / shuffled latents and copy-last, jitted once per system."""

    @jax.jit
    def errors(params, video):
        states = system.encode(params, video)
        z = system.infer_latents(params, states)  # evaluation mode: e.g. the mean of noisy latents
        context, targets = states[:, :-1], states[:, 1:]
        error = lambda predictions: jnp.abs(predictions - targets).mean(axis=(1, 2, 3))  # noqa: E731
        return {
            "own": error(system.predict(params, context, z)),
            "shuffled": error(system.predict(params, context, jnp.roll(z, 1, axis=0))),
            "copy_last": jnp.abs(context - targets).mean(axis=(1, 2, 3)),
        }, z

    return errors


def evaluate(system, params, batches, *, action_names=None, ridge: float = 1e-3) -> dict:
    """`batches`: iterable of dicts with uint8 `video` (and optionally frame `actions` (B, F-1, A))."""
    errors = _errors_fn(system)
    sums, latents, actions = {}, [], []
    for batch in batches:
        if len(batch["video"]) < 2:
            continue  # shuffling needs another clip
        per_clip, z = jax.device_get(errors(params, batch["video"]))
        for key, value in per_clip.items():
            sums.setdefault(key, []).append(value)
        if "actions" in batch:
            latents.append(z)
            actions.append(transition_actions(batch["actions"], z.shape[1], system.config.encoder))
    if not sums:
        raise ValueError(
            "latent_actions: no batch of >= 2 held-out clips (more eval clips or eval.batch_size)"
        )
    mean = {k: float(np.concatenate(v).mean()) for k, v in sums.items()}
    results = {
        "error_own_latents": mean["own"],
        "error_shuffled_latents": mean["shuffled"],
        "error_copy_last": mean["copy_last"],
        "own_over_shuffled": mean["own"] / mean["shuffled"],
        "own_over_copy_last": mean["own"] / mean["copy_last"],
    }
    if latents:
        results.update(probe(np.concatenate(latents), np.concatenate(actions), action_names, ridge))
    return results


def transition_actions(frame_actions_BFA, transitions: int, encoder_config):
    """Frame actions (B, F-1, A) -> the action of each state transition (B, T-1, A).

    A state covers `k` frames (the tubelet; 1 in per-frame mode), so the motion from s_t to s_{t+1} is
    the displacement between the mean positions over their frames (positions = cumulative actions); for
    k = 2 that is a[2t]/2 + a[2t+1] + a[2t+2]/2.
    """
    k = config_lib.frames_per_state(encoder_config)
    a = np.asarray(frame_actions_BFA, np.float64)
    positions = np.concatenate([np.zeros_like(a[:, :1]), np.cumsum(a, axis=1)], axis=1)  # (B, F, A)
    steps = positions[:, : k * (transitions + 1)]
    means = steps.reshape(a.shape[0], transitions + 1, k, a.shape[-1]).mean(axis=2)
    return np.diff(means, axis=1)


def probe(latents_BTL, actions_BTA, names=None, ridge: float = 1e-3) -> dict:
    """Held-out R^2 of a ridge regression from a latent to each action component (first half of the clips
    fits, second half scores). Components with no variance (absent agents) are skipped."""
    half = len(latents_BTL) // 2
    x = latents_BTL.reshape(len(latents_BTL), -1, latents_BTL.shape[-1]).astype(np.float64)
    y = actions_BTA.astype(np.float64)
    x_fit, x_test = x[:half].reshape(-1, x.shape[-1]), x[half:].reshape(-1, x.shape[-1])
    y_fit, y_test = y[:half].reshape(-1, y.shape[-1]), y[half:].reshape(-1, y.shape[-1])
    mu, sd = x_fit.mean(0), x_fit.std(0) + 1e-8
    design = lambda v: np.concatenate([(v - mu) / sd, np.ones((len(v), 1))], axis=1)  # noqa: E731
    a = design(x_fit)
    weights = np.linalg.solve(a.T @ a + ridge * len(a) * np.eye(a.shape[1]), a.T @ y_fit)
    residual = ((design(x_test) @ weights - y_test) ** 2).sum(0)
    total = ((y_test - y_test.mean(0)) ** 2).sum(0)
    names = names or [f"action_{i}" for i in range(y.shape[-1])]
    r2 = {
        f"probe_r2/{n}": float(1 - r / t) for n, r, t in zip(names, residual, total, strict=True) if t > 1e-9
    }
    return r2 | {"probe_r2_max": max(r2.values(), default=float("nan"))}
