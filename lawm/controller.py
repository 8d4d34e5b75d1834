"""The controller as a trainable system (PAPER.md §8.5): real actions (+ the previous state) -> the latent
actions of a frozen, already trained latent action world model, so that model can plan with real actions.

    world model run (config.controller.world_model_workdir): its frozen encoder, IDM, regularizer, world model
    video (B, F) --frames repeated (below)--> encoder --> states s_0..s_{T-1}                 (B, T, N, E)
    targets  z_t = g(s_t, s_{t+1})   the IDM's latents in evaluation mode (noisy: the mean)   (B, T-1, L)
    outputs  c(u_t, s_t)             the controller (lawm.models.controller), u_t the step's   (B, T-1, L)
                                     real action (below)
    loss = mean over clips, steps and latent dims of (c(u_t, s_t) - z_t)^2                    (L2)

How frame actions map to latents (`controller.frame_duplication`). A state of a tubelet encoder covers
k = tubelet_size frames, so a native clip has one latent per k frames and a single frame's action has no
latent of its own.
  True (the paper): every frame is repeated k times before encoding ([f_0, f_0, f_1, f_1, ...] for k = 2),
    so state t encodes the static tubelet of frame t alone and z_t = g(s_t, s_{t+1}) spans exactly the frame
    action a_t that takes frame t to t+1: actions (B, F-1, A) and latents (B, F-1, L) correspond one to one,
    by index. An 8-frame clip becomes 16 frames, 8 states and 7 (action, latent) pairs.
  False: native tubelets, state t = frames kt..kt+k-1, and the action of transition t is the block of the
    k frame actions between the newest frames of s_t and s_{t+1}, summed: u_t = a_{kt+k-1} + ... + a_{kt+2k-2}
    (k = 2: a_{2t+1} + a_{2t+2}). A planned u_t is executed as k frame steps of u_t / k, which takes the
    newest frame of s_t to that of s_{t+1} with total displacement exactly u_t. (lawm.evals.latent_actions'
    transition_actions, the difference of mean positions, mixes in a_{kt} of the previous block, so a plan
    of such actions could not be executed block by block.)
A per-frame encoder (encoder.causal = "per_frame") has k = 1: both modes are the same. Static tubelets are
not what a tubelet world model was trained on; `evaluate` measures what that costs (the world model's error
with IDM latents against the copy-last-state baseline), and the synthetic preset uses native tubelets
because of it (experiments/configs/controller.py).

Planning uses `controlled_rollout`, Eq. 2 of the paper: ŝ_{i+1} = p(ŝ_{0..i}, c(a_{0..i}, ŝ_{0..i})), the
controller seeing each predicted state, and `plan_cost`, Eq. 1: ‖s_g - ŝ_H‖.

Params: frozen {"encoder", "idm", "world_model", "regularizer"} (the world model run's latest checkpoint,
`frozen_params`), trained {"controller"}. The config's `model` must equal the world model run's (the trainer
checks data against it); experiments/configs/controller.py copies it from the world model's config.

Dimension keys: B batch, F frames, T state steps, N tokens per step, E state dim, A action dim, L latent dim,
H horizon, S samples.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath
from flax import nnx

from lawm import config as config_lib
from lawm import planning
from lawm.models.controller import ActionMlp, CrossAttentionAdapter
from lawm.system import System

Params = dict[str, Any]
KINDS = ("adapter", "mlp")
CONTROLLER_FIELDS = (
    "world_model_workdir",
    "kind",
    "action_dim",
    "action_scale",
    "width",
    "depth",
    "num_heads",
    "action_mlp_depth",
    "mlp_ratio",
    "mlp_width",
    "mlp_depth",
    "frame_duplication",
)
FROZEN = ("encoder", "idm", "world_model", "regularizer")
_CONTROLLER_STREAM = 0xC0DE  # folded into the run's rng for the controller's init


def _first_difference(a, b, path=""):
    """The dotted path of the first leaf where two JSON-like trees differ, or None. Keys only one tree has
    are skipped: a run written before an optional field existed has its default."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) & set(b)):
            found = _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else key)
            if found is not None:
                return found
        return None
    return None if a == b else path


def _lookup(tree, path):
    for key in path.split("."):
        tree = tree.get(key) if isinstance(tree, dict) else None
    return tree


def read_world_model_config(workdir):
    """The world model run's config (its config.json), checked to be a trainable world model run."""
    from lawm.evals import runner

    if not workdir:
        raise ValueError("controller.world_model_workdir is not set: name a lawm-train world model run")
    try:
        world = runner.read_config(workdir)
    except FileNotFoundError as error:
        raise ValueError(f"controller.world_model_workdir: {error}") from None
    if world.get("task", "world_model") != "world_model":
        raise ValueError(
            f"controller.world_model_workdir: {workdir} is a {world.task!r} run, not a world model run"
        )
    checkpoints = epath.Path(workdir) / "checkpoints"
    if not checkpoints.exists() or not any(p.name.isdigit() for p in checkpoints.iterdir()):
        raise ValueError(f"controller.world_model_workdir: no checkpoint in {checkpoints}")
    return world


def validate_controller_config(config) -> dict:
    """The controller's constructor options from a trainer config; one-line ValueError naming a bad field.

    Reads the world model run's config.json (controller.world_model_workdir), checks it has a checkpoint
    and that config.model is its model config.
    """
    controller = config.get("controller")
    if controller is None:
        raise ValueError("controller is missing: task 'controller' needs config.controller")
    unknown = sorted(set(controller) - set(CONTROLLER_FIELDS))
    if unknown:
        raise ValueError(f"controller has no field {unknown[0]!r} (valid: {', '.join(CONTROLLER_FIELDS)})")
    if controller.get("kind") not in KINDS:
        raise ValueError(f"controller.kind must be one of {KINDS}, got {controller.get('kind')!r}")
    adapter = ("width", "depth", "num_heads", "action_mlp_depth")
    for field in ("action_dim", *(adapter if controller.kind == "adapter" else ("mlp_width", "mlp_depth"))):
        value = controller.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"controller.{field} must be a positive integer, got {value!r}")
    if controller.kind == "adapter" and controller.width % controller.num_heads:
        raise ValueError(
            f"controller.width ({controller.width}) is not divisible by controller.num_heads "
            f"({controller.num_heads})"
        )
    if not isinstance(controller.get("frame_duplication", True), bool):
        raise ValueError(f"controller.frame_duplication must be a bool, got {controller.frame_duplication!r}")
    mlp_ratio = controller.get("mlp_ratio", 4.0)
    if isinstance(mlp_ratio, bool) or not isinstance(mlp_ratio, int | float) or not 0 < mlp_ratio < np.inf:
        raise ValueError(f"controller.mlp_ratio must be a number > 0, got {mlp_ratio!r}")
    scale = np.asarray(controller.get("action_scale", 1.0), np.float64)
    if scale.ndim > 1 or (scale.ndim == 1 and scale.shape != (controller.action_dim,)):
        raise ValueError(
            f"controller.action_scale must be a number or {controller.action_dim} numbers, got "
            f"{controller.get('action_scale')!r}"
        )
    if not np.all(np.isfinite(scale) & (scale > 0)):
        raise ValueError(f"controller.action_scale must be finite and > 0, got {controller.action_scale!r}")
    world_model = read_world_model_config(controller.get("world_model_workdir"))
    if config.data.source == "synthetic":
        from data_pipelines.sources import synthetic

        world_dim = synthetic.action_dim(synthetic.WorldConfig(**config.data.world))
        if controller.action_dim != world_dim:
            raise ValueError(
                f"controller.action_dim ({controller.action_dim}) != the synthetic world's action dim "
                f"({world_dim})"
            )
    ours, theirs = json.loads(config.model.to_json_best_effort()), world_model.model.to_dict()
    differs = _first_difference(ours, theirs)
    if differs is not None:
        raise ValueError(
            f"model.{differs} is {_lookup(ours, differs)!r} but the world model run "
            f"({controller.world_model_workdir}) has {_lookup(theirs, differs)!r}: use the run's model config"
        )
    if controller.kind == "adapter":
        options = {field: controller[field] for field in adapter} | dict(mlp_ratio=float(mlp_ratio))
    else:
        options = dict(width=controller.mlp_width, depth=controller.mlp_depth)
    return dict(
        options=options,
        action_scale=np.broadcast_to(scale, (controller.action_dim,)),
        world_model=world_model,
    )


class ControllerSystem:
    """A frozen world model run + a trainable controller, from a trainer config with a `controller` field."""

    trainable = ("controller",)

    def __init__(self, config):
        checked = validate_controller_config(config)
        action_dim = config.controller.action_dim
        self.config = config
        self.world = System(checked["world_model"].model)
        self.kind = config.controller.kind
        self.workdir = config.controller.world_model_workdir
        self.grid_hw = self.world.grid_hw
        self.action_dim = action_dim
        self.action_scale = tuple(float(s) for s in checked["action_scale"])
        encoder = self.world.config.encoder
        k = config_lib.frames_per_state(encoder)
        duplicate = config.controller.get("frame_duplication", True)
        # Each frame is repeated this many times before encoding (1: native tubelets) ...
        self.frame_repeats = k if duplicate else 1
        # ... and this many frame actions make one latent step's action.
        self.frames_per_step = 1 if duplicate else k
        latent_dim = self.world.config.latent_dim
        if self.kind == "adapter":
            build = functools.partial(
                CrossAttentionAdapter,
                state_dim=encoder.width,
                action_dim=action_dim,
                latent_dim=latent_dim,
                **checked["options"],
            )
        else:
            build = functools.partial(
                ActionMlp, action_dim=action_dim, latent_dim=latent_dim, **checked["options"]
            )
        self._build = build
        self._graphdef = nnx.split(nnx.eval_shape(lambda: build(rngs=nnx.Rngs(0))))[0]
        self._frozen_cache = None

    # -- parameters ------------------------------------------------------------------------------
    def init(self, rng) -> Params:
        """Random-init controller params, pure in `rng` (the frozen parts come from `frozen_params`)."""
        module = self._build(rngs=nnx.Rngs(jax.random.fold_in(rng, _CONTROLLER_STREAM)))
        return {"controller": nnx.to_pure_dict(nnx.state(module))}

    def param_counts(self) -> dict[str, int]:
        """Parameters per part, from shapes only (no allocation)."""
        shapes = jax.eval_shape(self.init, jax.random.key(0))
        counts = {name: sum(x.size for x in jax.tree.leaves(tree)) for name, tree in shapes.items()}
        return self.world.param_counts() | counts

    def frozen_params(self, rng, mesh=None) -> Params:
        """The world model run's latest checkpoint (and its encoder), placed on `mesh` (FSDP) if given."""
        del rng  # the world model run's own seed rebuilds its encoder
        if self._frozen_cache is None:
            from lawm.evals import runner

            params = runner.load_run(self.workdir).params
            self._frozen_cache = jax.device_get({name: params[name] for name in FROZEN})
        frozen = self._frozen_cache
        if mesh is None:
            return jax.device_put(frozen)
        from lawm import sharding

        return jax.device_put(frozen, sharding.param_shardings(frozen, mesh))

    # -- the pieces --------------------------------------------------------------------------------
    def encode_frames(self, params: Params, video_BFHWC):
        """uint8 video (B, F, ...) -> states (B, T, N, E): T = F with frame duplication, else F / k."""
        return self.world.encode(params, jnp.repeat(video_BFHWC, self.frame_repeats, axis=1))

    def step_actions(self, frame_actions_BFA, transitions: int):
        """Frame actions (B, F-1, A) -> each latent step's action (B, transitions, A) (module docstring)."""
        k = self.frames_per_step
        blocks = frame_actions_BFA[:, k - 1 : k - 1 + k * transitions]
        return blocks.reshape(blocks.shape[0], transitions, k, blocks.shape[-1]).sum(axis=2)

    def idm_latents(self, params: Params, states_BTNE):
        """The IDM's latents of consecutive states, evaluation mode, no gradient: (B, T-1, L)."""
        return jax.lax.stop_gradient(self.world.infer_latents(params, states_BTNE))

    def controller_latents(self, params: Params, states_BTNE, actions_BTA):
        """c(a_t, s_t): real actions (B, T, A) and the state each starts from -> latents (B, T, L)."""
        scaled = jnp.asarray(actions_BTA, jnp.float32) * jnp.asarray(self.action_scale, jnp.float32)
        return nnx.merge(self._graphdef, params["controller"])(states_BTNE, scaled, self.grid_hw)

    def controlled_rollout(self, params: Params, start_B1NE, actions_BHA):
        """Eq. 2: ŝ_0 = start, ŝ_{i+1} = p(ŝ_{0..i}, c(a_{0..i}, ŝ_{0..i})): predicted states (B, H, N, E).

        The controller sees each predicted state; the world model its whole (block-causal) history. H is
        static and small (3-8), so the loop unrolls.
        """
        states, latents = start_B1NE.astype(jnp.float32), []
        for i in range(actions_BHA.shape[1]):
            latents.append(self.controller_latents(params, states[:, i : i + 1], actions_BHA[:, i : i + 1]))
            prediction = self.world.predict(params, states, jnp.concatenate(latents, axis=1))[:, -1]
            states = jnp.concatenate([states, prediction[:, None].astype(jnp.float32)], axis=1)
        return states[:, 1:]

    # -- training ------------------------------------------------------------------------------------
    def loss_fn(self, params: Params, batch, rng=None, train: bool = True):
        """Mean squared error of the controller's latents to the IDM's. Returns (loss, {"metrics": ...})."""
        del rng, train  # deterministic
        if "actions" not in batch:
            raise ValueError("task 'controller' needs action-labelled clips: the data yields no `actions`")
        states = self.encode_frames(params, batch["video"])
        targets = self.idm_latents(params, states)
        actions = self.step_actions(batch["actions"], targets.shape[1])
        outputs = self.controller_latents(params, states[:, :-1], actions)
        mse = jnp.square(outputs - targets).mean()
        # What predicting the batch's mean latent would score: mse / this is 1 - R^2.
        spread = jnp.square(targets - targets.mean(axis=(0, 1))).mean()
        return mse, {"metrics": {"loss": mse, "latent_mse_over_var": mse / jnp.maximum(spread, 1e-12)}}

    def evaluate(self, params: Params, batches, *, action_names=None) -> dict:
        """Held-out latent error, and the world model's errors driven by controller vs IDM latents.

        controller/latent_mse, latent_mse_over_var (1 - R^2 of the latents). Teacher-forced next-state L1
        (`error/...`) and the last state of an open-loop rollout from s_0 (`rollout_error/...`, as planning
        uses it) with latents from: the IDM (`idm`), the controller (`controller`), the controller given zero
        actions (`zero_action`) and given another clip's actions (`shuffled_actions`); and `copy_last`
        (teacher-forced) / `copy_start` (rollout): no model.
        """
        del action_names
        per_clip = _eval_fn(self)
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
def _eval_fn(system: ControllerSystem):
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


# -- planning -------------------------------------------------------------------------------------------


def plan_cost(system: ControllerSystem, kind: str = "l2", expand=None):
    """A `planning.cem` cost_fn: cost_fn(samples_SHA, params, start_1NE, goal_NE, *expand_args) -> (S,).

    Each sample's actions (through `expand(samples_SHA, *expand_args) -> actions_SHA`, e.g. a mask or a
    straight line, when given) drive `controlled_rollout` from the start state; the last predicted state is
    scored against the goal by planning.goal_cost (Eq. 1). Cached per (system, kind, expand), so `cem`
    compiles once per protocol.
    """
    return _plan_cost(system, kind, expand)


@functools.lru_cache(maxsize=32)
def _plan_cost(system, kind, expand):
    def cost_fn(samples_SHA, params, start_1NE, goal_NE, *expand_args):
        actions = samples_SHA if expand is None else expand(samples_SHA, *expand_args)
        start = jnp.broadcast_to(start_1NE[None], (actions.shape[0], *start_1NE.shape))
        final = system.controlled_rollout(params, start, actions)[:, -1]
        return planning.goal_cost(final, goal_NE, kind)

    return cost_fn
