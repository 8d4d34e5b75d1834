"""A controller run on held-out clips: its latents against the IDM's, and the world model driven by each.

The trainer's periodic evaluation of a controller run (`ControllerSystem.evaluator`); what each metric
means is in `evaluate`'s docstring.

Dimension keys: B clips, T state steps, L latent dim.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from lawm.evals import common


def evaluate(context: common.Context, batches) -> dict:
    """Held-out latent error, and the world model's errors driven by controller vs IDM latents.

    controller/latent_mse, latent_mse_over_var (1 - R^2 of the latents). Teacher-forced next-state L1
    (`error/...`) and the last state of an open-loop rollout from s_0 (`rollout_error/...`, as planning
    uses it) with latents from: the IDM (`idm`), the controller (`controller`), the controller given zero
    actions (`zero_action`) and given another clip's actions (`shuffled_actions`); and `copy_last`
    (teacher-forced) / `copy_start` (rollout): no model.
    """
    system, params = context.model.system, context.model.params
    per_clip = _eval_fn(system)
    values = {}
    for batch in batches:
        if len(batch["video"]) < 2:
            continue  # shuffling needs another clip
        out = jax.device_get(per_clip(params, batch["video"], np.asarray(batch["actions"], np.float32)))
        for key, value in out.items():
            values.setdefault(key, []).append(value)
    if not values:
        raise ValueError("controller evaluation needs batches of at least 2 clips with actions")
    idm = np.concatenate([z.reshape(-1, z.shape[-1]) for z in values.pop("idm_latents")])
    ctrl = np.concatenate([z.reshape(-1, z.shape[-1]) for z in values.pop("controller_latents")])
    mse = float(np.square(ctrl - idm).mean())
    results = {
        "controller/latent_mse": mse,
        "controller/latent_mse_over_var": mse / float(np.square(idm - idm.mean(0)).mean()),
    }
    results.update({f"controller/{k}": float(np.concatenate(v).mean()) for k, v in values.items()})
    for prefix in ("error", "rollout_error"):
        for other in ("idm", "zero_action"):
            results[f"controller/{prefix}/controller_over_{other}"] = (
                results[f"controller/{prefix}/controller"] / results[f"controller/{prefix}/{other}"]
            )
    return results


@functools.lru_cache(maxsize=8)
def _eval_fn(system):
    """Per-clip metrics of one batch, jitted once per system."""

    @jax.jit
    def metrics(params, video, frame_actions):
        states = system.encode_frames(params, video)
        context, targets = states[:, :-1], states[:, 1:]
        actions = system.step_actions(frame_actions, targets.shape[1])
        z_idm = system.idm_latents(params, states)
        drives = {
            "controller": actions,
            "zero_action": jnp.zeros_like(actions),
            "shuffled_actions": jnp.roll(actions, 1, axis=0),
        }
        latents = {name: system.controller_latents(params, context, a) for name, a in drives.items()}
        latents["idm"] = z_idm
        error = lambda predicted: jnp.abs(predicted - targets).mean(axis=(1, 2, 3))  # noqa: E731
        last = lambda predicted: jnp.abs(predicted[:, -1] - targets[:, -1]).mean(axis=(1, 2))  # noqa: E731
        out = {
            f"error/{name}": error(system.world.predict(params, context, z)) for name, z in latents.items()
        }
        out["error/copy_last"] = error(context)
        for name, a in drives.items():
            out[f"rollout_error/{name}"] = last(system.controlled_rollout(params, states[:, :1], a))
        steps = targets.shape[1]
        out["rollout_error/idm"] = last(system.world.rollout(params, states[:, :1], z_idm, steps))
        out["rollout_error/copy_start"] = last(jnp.broadcast_to(states[:, :1], targets.shape))
        return out | {"idm_latents": z_idm, "controller_latents": latents["controller"]}

    return metrics
