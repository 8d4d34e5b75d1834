"""Planning through an oracle model beats doing nothing and acting at random, by a wide margin.

The episodes are the synthetic protocol's own (lawm.planning.protocols: held-out clips, k frames per step,
one agent, no camera pan) and are scored by its own scorer (agent_error: the final position error in
pixels, executed in the true simulator). The model is an oracle: the simulator's agent update written in
jax (clip to the speed bound, round to the 1/256 px grid, stop at the walls; k frame steps per planned
step), so CEM plans through an exact rollout, as it would through a perfect world model."""

import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from data_pipelines.sources import synthetic as S
from lawm.planning import cem as planning
from lawm.planning import protocols
from lawm.systems.controller import ControllerSystem

K, HORIZON = 2, 3  # frames per planned step, planned steps
WORLD = dict(
    image_size=32, num_agents=(1, 1), num_distractors=(0, 0), camera_pan=False, entering_objects=0.0,
    sprite_radius=(2.0, 4.0), max_speed=2.0,
)  # fmt: skip


def episodes(num=6):
    """The synthetic protocol's episodes for a stand-in system of K frames per step."""
    system = types.SimpleNamespace(
        frames_per_step=K, config=ml_collections.ConfigDict(dict(data=dict(world=WORLD, seed=0)))
    )
    system.step_actions = lambda actions, steps: ControllerSystem.step_actions(system, actions, steps)
    config = ml_collections.ConfigDict(dict(horizon=HORIZON, num_episodes=num))
    return protocols.synthetic_episodes(system, config)


def start_state(episode):
    """The simulator's state at the start state's newest frame (where execute_synthetic starts)."""
    extra = episode.extra
    state = S.initial_state(extra["world"], extra["seed"], extra["index"])
    for action in extra["clip"]["actions"][: K - 1]:
        state = S.step(state, action)
    return state


SPEED = S._grid_bound(WORLD["max_speed"])


def oracle_step(position_2, action_A, low, high):
    """One planned step of the agent, exactly as the simulator runs it: K frame steps of action / K, each
    clipped to the speed bound, rounded to the grid and stopped at the walls (low, high: the centre's)."""
    for _ in range(K):
        move = jnp.round(jnp.clip(action_A[:2] / K, -SPEED, SPEED) / S.QUANTUM) * S.QUANTUM
        position_2 = jnp.clip(position_2 + move, low, high)
    return position_2


def agent_error(episode, actions_PA):
    return protocols.score_synthetic(episode, actions_PA)["agent_error"]


def test_cem_through_an_oracle_beats_zero_and_random_actions():
    eps, (low_A, high_A) = episodes()
    config = planning.CemConfig(
        num_samples=200, num_elites=10, iterations=10, horizon=HORIZON, init_std=float(high_A[0]) / 2,
        action_low=tuple(low_A), action_high=tuple(high_A),
    )  # fmt: skip
    cost_fn = planning.rollout_cost(oracle_step, config.cost)  # one cost_fn: cem compiles once
    rng = np.random.default_rng(0)
    errors = {"planned": [], "zero": [], "random": []}
    for i, episode in enumerate(eps):
        state = start_state(episode)
        start = jnp.asarray(state.agents.position[0])
        walls = tuple(float(x[0, 0]) for x in S._limits(state.agents.radius[:1], WORLD["image_size"]))
        goal = episode.extra["clip"]["agent_positions"][K * (HORIZON + 1) - 1, 0]  # where the clip ends
        actions, _ = planning.cem(
            cost_fn, len(low_A), config, jax.random.key(i), cost_args=(start, goal, *walls)
        )
        actions = np.asarray(actions)
        # The oracle is exact: its rollout of the plan ends where the simulator takes it.
        oracle_final = start
        for action in actions:
            oracle_final = oracle_step(oracle_final, action, *walls)
        np.testing.assert_allclose(
            oracle_final, protocols.execute_synthetic(episode, actions)[0][-1, 0], atol=1e-5
        )

        errors["planned"].append(agent_error(episode, actions))
        errors["zero"].append(agent_error(episode, np.zeros_like(actions)))
        random = rng.uniform(low_A, high_A, size=(5, *actions.shape))
        errors["random"].append(float(np.mean([agent_error(episode, plan) for plan in random])))

    planned, zero, random = (float(np.mean(errors[name])) for name in ("planned", "zero", "random"))
    assert zero > 1.0 and random > 1.0, errors  # the baselines are pixels off: there is something to plan
    assert planned < 0.1, errors  # the oracle plan lands on the goal (up to the 1/256 px grid)
    assert planned < 0.1 * min(zero, random), errors
