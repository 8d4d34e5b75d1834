"""The controller as a trainable system (paper §8.5): real actions (+ the previous state) -> the latent
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

Planning (lawm.planning) uses `controlled_rollout`, Eq. 2 of the paper: ŝ_{i+1} = p(ŝ_{0..i},
c(a_{0..i}, ŝ_{0..i})), the controller seeing each predicted state. Held-out evaluation:
lawm.evals.controller.

Params: frozen {"encoder", "idm", "world_model", "regularizer"} (the world model run's latest checkpoint,
`frozen_params`), trained {"controller"}. The config's `model` must equal the world model run's (the trainer
checks data against it); experiments/configs/controller.py copies it from the world model's config.

Dimension keys: B batch, F frames, T state steps, N tokens per step, E state dim, A action dim, L latent dim,
P planned steps (the horizon; a planner's Q CEM samples come in as the batch B).
"""

from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lawm import config as config_lib
from lawm import runs, sharding
from lawm.models.controller import ActionMlp, CrossAttentionAdapter
from lawm.systems.base import Params, task_of
from lawm.systems.world_model import WorldModelSystem

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
    if not workdir:
        raise ValueError("controller.world_model_workdir is not set: name a lawm-train world model run")
    try:
        world = runs.read_config(workdir)
    except (FileNotFoundError, ValueError) as error:
        raise ValueError(f"controller.world_model_workdir: {error}") from None
    if task_of(world) != "world_model":
        raise ValueError(
            f"controller.world_model_workdir: {workdir} is a {world.task!r} run, not a world model run"
        )
    checkpoints = runs.usable_workdir(workdir) / "checkpoints"
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
    frame_duplication = controller.get("frame_duplication", True)
    if not isinstance(frame_duplication, bool):
        raise ValueError(f"controller.frame_duplication must be a bool, got {frame_duplication!r}")
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
        frame_duplication=frame_duplication,
        world_model=world_model,
    )


class ControllerSystem:
    """A frozen world model run + a trainable controller, from a trainer config with a `controller` field."""

    task = "controller"
    trainable = ("controller",)
    batch_keys = {"video": None, "actions": np.float32}  # frame actions, as float32
    evaluator = "controller"

    def __init__(self, config):
        checked = validate_controller_config(config)
        action_dim = config.controller.action_dim
        self.config = config
        self.world_config = checked["world_model"]
        self.world = WorldModelSystem(self.world_config.model)
        self.kind = config.controller.kind
        self.workdir = config.controller.world_model_workdir
        self.grid_hw = self.world.grid_hw
        self.action_dim = action_dim
        self.action_scale = tuple(float(s) for s in checked["action_scale"])
        encoder = self.world.config.encoder
        k = config_lib.frames_per_state(encoder)
        duplicate = checked["frame_duplication"]
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
            run = runs.Run(self.workdir)
            try:
                params = run.restore_params()[1]
            finally:
                run.close()
            params |= self.world.frozen_params(jax.random.key(self.world_config.seed))
            self._frozen_cache = jax.device_get({name: params[name] for name in FROZEN})
        frozen = self._frozen_cache
        if mesh is None:
            return jax.device_put(frozen)
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

    def controlled_rollout(self, params: Params, start_B1NE, actions_BPA):
        """Eq. 2: ŝ_0 = start, ŝ_{i+1} = p(ŝ_{0..i}, c(a_{0..i}, ŝ_{0..i})): predicted states (B, P, N, E).

        The controller sees each predicted state; the world model its whole (block-causal) history. P is
        static and small (3-8), so the loop unrolls.
        """
        states, latents = start_B1NE.astype(jnp.float32), []
        for i in range(actions_BPA.shape[1]):
            latents.append(self.controller_latents(params, states[:, i : i + 1], actions_BPA[:, i : i + 1]))
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
