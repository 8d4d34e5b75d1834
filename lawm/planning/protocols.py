"""Planning protocols for a trained controller (paper §8.6-8.7, and the synthetic world): the engine of
`lawm-plan` (experiments/plan.py), which checks a plan config against the run with `validate` first.

Every protocol plans with the world model and the controller only: CEM (lawm.planning.cem) samples real-action
sequences, the controller maps them to latents, the world model rolls out from the start state, and the
cost is the distance of the last predicted state to the goal state (`plan_cost`, Eq. 1-2). Start and goal
states are encoded like the controller's training clips (lawm.systems.controller: frame duplication
or native tubelets), so one planned step is one latent step of k = `system.frames_per_step` frames, and
the true action of a step is the sum of its k frame actions (`ControllerSystem.step_actions`).

  synthetic  Episode e is held-out clip e of the controller run's synthetic world (eval seeds; fields in
             the plan config's `world` override the run's, e.g. camera_pan False), k(P + 1) frames long.
             Start: the frames of state 0; goal: those of state P, from the true dynamics. The plan (P
             steps; the dims of absent agents, of agents that cannot move (max_speed 0) and of a camera
             that cannot pan masked out) is executed in the true simulator (`synthetic.step`, each step as
             k frame steps of action / k, from the start state's newest frame) and scored by the final
             agent and camera position errors against the true clip and by Δ = ‖Σ planned - Σ true‖₁ over
             the controlled dims, also split into `delta_agents` and `delta_camera`.
  droid      Episode e: a clip of P + 1 states from the run's eval records (the held-out episodes,
             `lawm-prepare rlds --eval_fraction`), a seeded sample spread over the episodes
             (lawm.planning.eval_clips). Δxyz (Eq. 3), in metres.
  recon      The NWM protocol on such clips: one straight line (`straight_line`, NWM's definition)
             planned with one CEM iteration; P from `horizon_s` (2 s) at the run's clip rate. ATE and RPE
             as NWM's evo calls: positions in the start's frame, the P poses after the shared start,
             translation only (identity orientations), RPE with delta 1; `rpe_se2` also compares the steps
             in each pose's frame. Metres (NWM's are in units of 0.25 m, RECON's waypoint spacing).
Baselines, scored the same way: `zero` actions and `random` ones (uniform within the planner's bounds;
for recon a random straight line).

`run(model, config)` returns a flat dict of mean metrics: `planned/<metric>`, `zero/<metric>`,
`random/<metric>`, and `<metric>_over_zero`, `<metric>_over_random` for the protocol's main metrics
(RATIOS; the first is the headline: Δ, Δxyz, RPE).

Dimension keys: P horizon (planned latent steps), Q CEM samples, A action dim, N tokens, E state dim,
H/W frame height/width; k frames per latent step.
"""

from __future__ import annotations

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from data_pipelines import poses
from lawm import config as config_lib
from lawm.planning import cem as cem_lib
from lawm.planning import metrics as planning_metrics
from lawm.systems.base import task_of

PROTOCOLS = ("synthetic", "droid", "recon")
# Metrics reported also as ratios to each baseline (`<metric>_over_zero`, `<metric>_over_random`).
RATIOS = {
    "synthetic": ("delta", "delta_agents", "delta_camera"),
    "droid": ("delta_xyz",),
    "recon": ("rpe", "ate"),
}


@dataclasses.dataclass
class Episode:
    """One planning problem (numpy arrays)."""

    start_frames: np.ndarray  # (k, H, W, 3) uint8: the frames of the start state
    goal_frames: np.ndarray  # (k, H, W, 3) uint8: the frames of the goal state
    true_actions: np.ndarray  # (P, A): the true action of each latent step
    mask: np.ndarray  # (A,): 1 on the dims the planner controls
    extra: dict = dataclasses.field(default_factory=dict)  # protocol data (the true clip, ...)


# -- the planner ------------------------------------------------------------------------------------------


def plan_cost(system, kind: str = "l2", expand=None):
    """A `cem` cost_fn: cost_fn(samples_QPA, params, start_1NE, goal_NE, *expand_args) -> (Q,).

    Each sample's actions (through `expand(samples_QPA, *expand_args) -> actions_QPA`, e.g. a mask or a
    straight line, when given) drive the controller system's `controlled_rollout` from the start state; the
    last predicted state is scored against the goal by `goal_cost` (Eq. 1). Cached per (system, kind,
    expand), so `cem` compiles once per protocol.
    """
    return _plan_cost(system, kind, expand)


@functools.lru_cache(maxsize=32)
def _plan_cost(system, kind, expand):
    def cost_fn(samples_QPA, params, start_1NE, goal_NE, *expand_args):
        actions = samples_QPA if expand is None else expand(samples_QPA, *expand_args)
        start = jnp.broadcast_to(start_1NE[None], (actions.shape[0], *start_1NE.shape))
        final = system.controlled_rollout(params, start, actions)[:, -1]
        return cem_lib.goal_cost(final, goal_NE, kind)

    return cost_fn


def masked(samples_QPA, mask_A):
    """`plan_cost` expand for synthetic and droid: the samples with uncontrolled dims zeroed."""
    return samples_QPA * mask_A


def straight_line(samples_Q1A, horizon_P):
    """`plan_cost` expand for recon, NWM's straight line: (Δx, Δy, θ) -> P robot-frame step actions (Q, P, 3).

    NWM (facebookresearch/nwm, planning_eval.py `generate_actions` with misc.py `calculate_delta_yaw`)
    repeats one (dx, dy) step, in the start's frame, over the P steps; the heading turns to the line's
    direction φ = atan2(dy, dx) on the first step (calculate_delta_yaw of equal steps) and by the sampled
    final offset θ on the last. Here a sample is the line's total (Δx, Δy) = P (dx, dy) in metres and θ in
    radians (NWM samples normalised per-step deltas and θ / π). Step i's action is the step in the frame of
    pose i (heading 0 before the first step, φ before the others) and the heading change, as the records'
    se2 actions. Only horizon_P's (static) length is used.
    """
    total = samples_Q1A[:, 0]
    steps = horizon_P.shape[0]
    dx, dy = total[:, 0:1] / steps, total[:, 1:2] / steps  # (Q, 1)
    heading = jnp.arctan2(dy, dx)  # atan2(0, 0) = 0: no turn for no motion
    before = jnp.where(jnp.arange(steps) == 0, 0.0, heading)  # (Q, P): the heading each step starts from
    after = jnp.broadcast_to(heading, before.shape).at[:, -1].add(total[:, 2])
    c, s = jnp.cos(before), jnp.sin(before)
    return jnp.stack([c * dx + s * dy, -s * dx + c * dy, after - before], axis=-1)


def horizon_steps(config, run_config) -> int:
    """Planned latent steps: `horizon`, or when it is 0, `horizon_s` at the controller run's clip rate (a
    latent step per clip frame with frame duplication, per k-frame tubelet without)."""
    if config.horizon:
        return config.horizon
    from data_pipelines import sources

    fps = sources.clip_shape(run_config.data)[1]
    duplicate = run_config.controller.get("frame_duplication", True)
    k = 1 if duplicate else config_lib.frames_per_state(run_config.model.encoder)
    return round(config.get("horizon_s", 0.0) * fps / k)


@functools.lru_cache(maxsize=8)
def _encode_fn(system):
    """frames (k, H, W, 3) -> the state they make (N, E), jitted once per system."""
    return jax.jit(lambda params, frames: system.encode_frames(params, frames[None])[0, -1])


def cem_config(config, num_dims: int, bounds) -> cem_lib.CemConfig:
    """The plan config's `cem` fields with per-dimension bounds (recon: a horizon of one line action)."""
    low, high = bounds
    if len(low) != num_dims or len(high) != num_dims:
        raise ValueError(f"action bounds need {num_dims} values each, got {len(low)} and {len(high)}")
    return cem_lib.CemConfig(
        horizon=1 if config.protocol == "recon" else config.horizon,
        action_low=tuple(float(v) for v in low),
        action_high=tuple(float(v) for v in high),
        **dict(config.cem),
    )


def plan_episode(model, episode: Episode, cem: cem_lib.CemConfig, protocol: str, rng):
    """(planned step actions (P, A), the planner's best cost) of one episode."""
    system, params = model.system, model.params
    encode = _encode_fn(system)
    start = encode(params, jnp.asarray(episode.start_frames))[None]  # (1, N, E)
    goal = encode(params, jnp.asarray(episode.goal_frames))
    if protocol == "recon":
        horizon = jnp.zeros(len(episode.true_actions))
        cost_args = (params, start, goal, horizon)
        best, info = cem_lib.cem(plan_cost(system, cem.cost, straight_line), 3, cem, rng, cost_args=cost_args)
        actions = straight_line(best[None], horizon)[0]
    else:
        mask = jnp.asarray(episode.mask, jnp.float32)
        cost_fn = plan_cost(system, cem.cost, masked)
        best, info = cem_lib.cem(cost_fn, len(episode.mask), cem, rng, cost_args=(params, start, goal, mask))
        actions = best * mask
    return np.asarray(actions, np.float64), float(info["best_cost"])


# -- episodes and scores ----------------------------------------------------------------------------------


def synthetic_episodes(system, config):
    """Held-out clips of the controller run's world, k(P + 1) frames each; bounds allow k full frame steps."""
    from data_pipelines.sources import synthetic

    k, horizon = system.frames_per_step, config.horizon
    fields = {**system.config.data.world.to_dict(), **dict(config.get("world", {}))}
    world = synthetic.WorldConfig(**{**fields, "num_frames": k * (horizon + 1)})
    seed = synthetic.SPLIT_SEED_OFFSETS["eval"] + system.config.data.seed
    episodes = []
    for index in range(config.num_episodes):
        clip = synthetic.generate(world, seed, index)
        mask = np.zeros(synthetic.action_dim(world), np.float32)
        mask[: 2 * clip["num_agents"]] = 1.0 if world.max_speed > 0 else 0.0
        mask[-2:] = 1.0 if world.camera_pan else 0.0
        true = system.step_actions(clip["actions"][None], horizon)[0]
        episodes.append(
            Episode(
                clip["video"][:k],
                clip["video"][k * horizon :],
                np.asarray(true, np.float64),
                mask,
                dict(world=world, seed=seed, index=index, clip=clip, k=k),
            )
        )
    speed = [k * world.max_speed] * (2 * world.max_agents) + [k * world.max_pan] * 2
    return episodes, (-np.asarray(speed), np.asarray(speed))


def execute_synthetic(episode: Episode, actions_PA):
    """Runs step actions in the true simulator from the start state's newest frame: (agents
    (P+1, max_agents, 2), camera (P+1, 2), the final frame) at each step's newest frame."""
    from data_pipelines.sources import synthetic

    world, k, clip = episode.extra["world"], episode.extra["k"], episode.extra["clip"]
    state = synthetic.initial_state(world, episode.extra["seed"], episode.extra["index"])
    for action in clip["actions"][: k - 1]:  # the true frames inside the start state
        state = synthetic.step(state, action)
    agents, camera = [state.agents.position], [state.camera]
    for action in np.asarray(actions_PA, np.float32):
        for _ in range(k):
            state = synthetic.step(state, action / k)
        agents.append(state.agents.position)
        camera.append(state.camera)
    return np.stack(agents), np.stack(camera), synthetic.render(state)


def score_synthetic(episode: Episode, actions_PA) -> dict:
    agents, camera, frame = execute_synthetic(episode, actions_PA)
    clip, k = episode.extra["clip"], episode.extra["k"]
    n = clip["num_agents"]
    true_agents = clip["agent_positions"][k - 1 :: k][:, :n]
    true_camera = clip["camera_positions"][k - 1 :: k]
    dims = np.flatnonzero(episode.mask)
    agent_dims, camera_dims = dims[dims < 2 * n], dims[dims >= len(episode.mask) - 2]
    delta = functools.partial(planning_metrics.delta_xyz, actions_PA, episode.true_actions)
    return {
        "delta": delta(xyz=dims),
        "delta_agents": delta(xyz=agent_dims),
        "delta_camera": delta(xyz=camera_dims),
        "agent_error": float(
            np.mean(
                [planning_metrics.final_position_error(agents[:, i], true_agents[:, i]) for i in range(n)]
            )
        ),
        "camera_error": planning_metrics.final_position_error(camera, true_camera),
        "_agents": agents[:, :n],
        "_true_agents": true_agents,
        "_camera": camera,
        "_true_camera": true_camera,
        "_frame": frame,
    }


def record_episodes(system, config, protocol: str):
    """`num_episodes` clips of the run's eval records, P + 1 states long, spread over their episodes."""
    from lawm.planning import eval_clips

    k, horizon = system.frames_per_step, config.horizon
    data = system.config.data.copy_and_resolve_references()
    if config.get("eval_records"):
        data.paths.eval = config.eval_records
    episodes = []
    for clip, where in eval_clips.episode_clips(data, config.num_episodes, k * (horizon + 1), config.seed):
        true = system.step_actions(np.asarray(clip["actions"], np.float64)[None], horizon)[0]
        episodes.append(
            Episode(
                clip["video"][:k],
                clip["video"][k * horizon :],
                true,
                np.ones(true.shape[1], np.float32),
                dict(clip=clip, k=k, where=where),
            )
        )
    return episodes, (np.asarray(config.action_low, np.float64), np.asarray(config.action_high, np.float64))


def score_droid(episode: Episode, actions_PA) -> dict:
    return {
        "delta_xyz": planning_metrics.delta_xyz(actions_PA, episode.true_actions),
        "_path": np.cumsum(np.concatenate([np.zeros((1, 3)), actions_PA[:, :3]]), axis=0),
        "_true_path": np.cumsum(np.concatenate([np.zeros((1, 3)), episode.true_actions[:, :3]]), axis=0),
    }


def integrate_poses(actions_TA, every: int = 1):
    """Robot-frame (dx, dy, dyaw) actions -> poses (x, y, yaw) from the origin, every `every` actions."""
    return poses.se2_poses(actions_TA)[::every]


def score_recon(episode: Episode, actions_PA) -> dict:
    """NWM's metrics over the P poses after the shared start (planning_eval.py `eval_metrics`)."""
    k, horizon = episode.extra["k"], len(actions_PA)
    frame_actions = np.asarray(episode.extra["clip"]["actions"], np.float64)[k - 1 : k - 1 + k * horizon]
    true, planned = integrate_poses(frame_actions, every=k), integrate_poses(actions_PA)
    xy, true_xy = planned[1:, :2], true[1:, :2]
    return {
        "ate": planning_metrics.ate(xy, true_xy),
        "rpe": planning_metrics.rpe(xy, true_xy),
        "rpe_se2": planning_metrics.rpe(xy, true_xy, planned[1:, 2], true[1:, 2]),
        "final_error": planning_metrics.final_position_error(xy, true_xy),
        "final_yaw_error": float(np.abs(poses.wrap_angles(planned[-1, 2] - true[-1, 2]))),
        "_path": planned[:, :2],
        "_true_path": true[:, :2],
    }


SCORERS = {"synthetic": score_synthetic, "droid": score_droid, "recon": score_recon}


# -- the run ----------------------------------------------------------------------------------------------


def run(model, config, picture_path=None) -> dict:
    """Plans every episode of `config.protocol` and scores it and the baselines; returns mean metrics."""
    protocol = config.protocol
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    system = model.system
    config = config.copy_and_resolve_references()
    config.horizon = horizon_steps(config, system.config)
    if protocol == "synthetic":
        episodes, bounds = synthetic_episodes(system, config)
    else:
        episodes, bounds = record_episodes(system, config, protocol)
    cem = cem_config(config, len(bounds[0]), bounds)
    rng, key = np.random.default_rng(config.seed), jax.random.key(config.seed)
    scorer, scores, outcomes, started = SCORERS[protocol], {}, [], time.perf_counter()
    for e, episode in enumerate(episodes):
        planned, cost = plan_episode(model, episode, cem, protocol, jax.random.fold_in(key, e))
        if protocol == "recon":  # a random straight line, like the planner's
            line = rng.uniform(bounds[0], bounds[1])[None, None]
            random = np.asarray(straight_line(jnp.asarray(line, jnp.float32), jnp.zeros(len(planned)))[0])
        else:
            random = rng.uniform(bounds[0], bounds[1], size=planned.shape) * episode.mask
        candidates = {"planned": planned, "zero": np.zeros_like(planned), "random": random}
        outcome = {name: scorer(episode, actions) for name, actions in candidates.items()}
        outcome["planned"]["cost"] = cost
        outcomes.append((episode, outcome))
        for name, metrics in outcome.items():
            for metric, value in metrics.items():
                if not metric.startswith("_"):
                    scores.setdefault(f"{name}/{metric}", []).append(float(value))
        logging.info(
            "Episode %d/%d: %s", e + 1, len(episodes), {k: round(v[-1], 3) for k, v in scores.items()}
        )
    results = {key: float(np.mean(values)) for key, values in scores.items()}
    for metric in RATIOS[protocol]:
        for baseline in ("zero", "random"):
            reference = max(results[f"{baseline}/{metric}"], 1e-12)
            results[f"{metric}_over_{baseline}"] = results[f"planned/{metric}"] / reference
    results.update(episodes=len(episodes), horizon=config.horizon, seconds=time.perf_counter() - started)
    if picture_path is not None and config.num_pictures > 0:
        from lawm.planning import pictures

        pictures.save(protocol, outcomes[: config.num_pictures], picture_path)
    return results


# -- the plan config --------------------------------------------------------------------------------------

# The data source a protocol's controller must have been trained on.
SOURCES = {"synthetic": "synthetic", "droid": "records", "recon": "records"}


def validate(config, run_config) -> None:
    """Fails before any compute, naming the field, on a plan config that cannot run on this run."""
    if config.protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {config.protocol!r}")
    if task_of(run_config) != "controller":
        raise ValueError(f"the workdir holds a {task_of(run_config)!r} run, not a controller")
    if run_config.data.source != SOURCES[config.protocol]:
        raise ValueError(
            f"protocol {config.protocol!r} needs a controller trained on {SOURCES[config.protocol]!r}"
        )
    if not isinstance(config.num_episodes, int) or config.num_episodes < 1:
        raise ValueError(f"num_episodes must be a positive integer, got {config.num_episodes!r}")
    if not isinstance(config.horizon, int) or config.horizon < 0:
        raise ValueError(f"horizon must be an integer >= 0 (0: from horizon_s), got {config.horizon!r}")
    horizon = horizon_steps(config, run_config)
    least = 2 if config.protocol == "recon" else 1  # recon: RPE needs 2 poses after the start
    if horizon < least:
        raise ValueError(
            f"horizon: {horizon} planned steps (horizon {config.horizon}, horizon_s "
            f"{config.get('horizon_s')} at the run's clip rate); {config.protocol} needs >= {least}"
        )
    cem_lib.CemConfig(horizon=horizon, **dict(config.cem))  # checks the cem fields
    if config.protocol == "synthetic" and config.get("world"):
        from data_pipelines.sources import synthetic

        fields = {**run_config.data.world.to_dict(), **dict(config.world)}
        dim = synthetic.action_dim(synthetic.WorldConfig(**fields))
        if dim != run_config.controller.action_dim:
            raise ValueError(
                f"world: action dim {dim} != the controller's {run_config.controller.action_dim}"
            )
    if config.protocol != "synthetic":
        dim = run_config.controller.action_dim if config.protocol == "droid" else 3
        for field in ("action_low", "action_high"):
            if len(config[field]) != dim:
                raise ValueError(f"{field} needs {dim} values, got {len(config[field])}")
