"""CEM planning: it minimises known costs, respects bounds, is deterministic, and steers the synthetic world's
true dynamics to a goal (in closed loop too)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_pipelines.sources import synthetic as S
from lawm.planning import cem as planning
from lawm.planning.cem import CemConfig, cem
from lawm.planning.metrics import final_position_error


def quadratic(actions_QPA, target_PA):
    return jnp.sum(jnp.square(actions_QPA - target_PA), axis=(1, 2))


def target(horizon, action_dim, seed=0):
    return jax.random.uniform(jax.random.key(seed), (horizon, action_dim), minval=-0.8, maxval=0.8)


@pytest.mark.parametrize(
    "config",
    [
        CemConfig(num_samples=300, num_elites=10, iterations=15, horizon=3),  # the paper's DROID setting
        CemConfig(num_samples=128, num_elites=16, iterations=25, horizon=5, momentum=0.3),
        CemConfig(num_samples=300, num_elites=10, iterations=15, horizon=3, return_best=False),
        CemConfig(num_samples=128, num_elites=16, iterations=25, horizon=5, return_best=False),
    ],
    ids=["droid-best", "momentum-best", "droid-mean", "small-mean"],
)
def test_cem_finds_the_minimum_of_a_quadratic(config):
    config = dataclasses.replace(config, action_low=-1.0, action_high=1.0)
    goal = target(config.horizon, 3)
    actions, info = cem(quadratic, 3, config, jax.random.key(1), cost_args=(goal,))
    assert actions.shape == (config.horizon, 3)
    np.testing.assert_allclose(actions, goal, atol=0.01)
    # The search improved on its first iteration by a wide margin, and the returned plan is what it says.
    assert info["best_cost_per_iteration"][-1] < 1e-3 * info["best_cost_per_iteration"][0]
    returned = info["best_actions"] if config.return_best else info["mean"]
    np.testing.assert_array_equal(actions, returned)
    assert float(info["best_cost"]) == pytest.approx(float(quadratic(info["best_actions"][None], goal)[0]))


def test_a_single_iteration_from_a_tight_warm_start_returns_about_the_start():
    config = CemConfig(
        num_samples=16, num_elites=4, iterations=1, horizon=2, init_std=1e-4, return_best=False
    )
    start = jnp.array([[0.5, -0.25], [1.0, 2.0]])
    actions, _ = cem(quadratic, 2, config, jax.random.key(0), init_mean=start, cost_args=(jnp.zeros((2, 2)),))
    np.testing.assert_allclose(actions, start, atol=1e-3)


def test_samples_and_results_are_clipped_to_per_dimension_bounds():
    # The cost rewards leaving the box (up in dim 0, down in dim 1, up in dim 2): only clipping stops it.
    low, high = (-1.0, -2.0, 0.0), (1.0, 0.5, 0.25)
    push = jnp.array([1.0, -1.0, 1.0])
    cost = lambda a: -jnp.sum(a * push, axis=(1, 2))  # noqa: E731
    for return_best in (True, False):
        config = CemConfig(
            num_samples=64, num_elites=8, iterations=5, horizon=2, init_mean=5.0, init_std=3.0,
            action_low=low, action_high=high, return_best=return_best,
        )  # fmt: skip
        actions, info = cem(cost, 3, config, jax.random.key(0))
        for x in (actions, info["elites"]):
            assert np.all(np.asarray(x) >= np.array(low)) and np.all(np.asarray(x) <= np.array(high))
        np.testing.assert_allclose(actions, np.broadcast_to([high[0], low[1], high[2]], (2, 3)), atol=0.05)


def test_cem_is_deterministic_given_the_rng():
    config = CemConfig(num_samples=32, num_elites=4, iterations=3, horizon=2)
    goal = target(2, 2)
    run = lambda seed: cem(quadratic, 2, config, jax.random.key(seed), cost_args=(goal,))[0]  # noqa: E731
    np.testing.assert_array_equal(run(0), run(0))
    assert not np.array_equal(run(0), run(1))


def test_episodes_passing_data_through_cost_args_share_one_compiled_program():
    config = CemConfig(num_samples=16, num_elites=4, iterations=2, horizon=2)
    before = planning._cem._cache_size()
    for i in range(3):  # e.g. three episodes with different goals
        cem(quadratic, 2, config, jax.random.key(i), cost_args=(jnp.full((2, 2), float(i)),))
    assert planning._cem._cache_size() - before == 1


def test_nan_costs_never_become_elites():
    # NaN for every sample with a positive first component; the rest is a quadratic pulling towards +0.5.
    def cost(a):
        return jnp.where(a[:, 0, 0] > 0, jnp.nan, jnp.sum(jnp.square(a - 0.5), axis=(1, 2)))

    config = CemConfig(num_samples=64, num_elites=8, iterations=4, horizon=1)
    actions, info = cem(cost, 1, config, jax.random.key(0))
    assert float(actions[0, 0]) <= 0.0 and np.all(np.asarray(info["elites"]) <= 0.0)
    assert np.isfinite(float(info["best_cost"]))


def test_config_validation():
    with pytest.raises(ValueError, match="num_elites"):
        CemConfig(num_samples=5, num_elites=6)
    with pytest.raises(ValueError, match="cost"):
        CemConfig(cost="lpips")
    with pytest.raises(ValueError, match="exceeds"):
        CemConfig(action_low=1.0, action_high=0.0)
    with pytest.raises(ValueError, match="entries"):
        cem(quadratic, 3, CemConfig(action_low=(-1.0, -1.0)), jax.random.key(0), cost_args=(target(3, 3),))
    # Per-dimension bounds given as a list or an array become a hashable tuple (a static jit argument).
    assert hash(CemConfig(action_low=np.array([-1.0, -2.0]), action_high=[1, 2])) is not None


def test_goal_cost_reduces_over_the_goal_axes():
    goal = jnp.zeros((2, 2))  # e.g. (N tokens, E features)
    finals = jnp.array([[[3.0, 0.0], [0.0, 4.0]], [[1.0, -1.0], [-1.0, 1.0]]])  # two samples
    np.testing.assert_allclose(planning.goal_cost(finals, goal, "l2"), [5.0, 2.0])
    np.testing.assert_allclose(planning.goal_cost(finals, goal, "l1"), [7.0, 4.0])
    np.testing.assert_allclose(planning.goal_cost(finals[0], goal, "l2"), 5.0)  # no batch axis
    with pytest.raises(ValueError, match="kind"):
        planning.goal_cost(finals, goal, "cosine")


def test_shift_plan():
    plan = jnp.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(planning.shift_plan(plan, 1), [[2, 3], [4, 5], [0, 0]])
    np.testing.assert_array_equal(planning.shift_plan(plan, 2, fill=-1.0), [[4, 5], [-1, -1], [-1, -1]])


def test_receding_horizon_bookkeeping():
    calls = []

    def plan_fn(obs, t):
        calls.append((obs, t))
        return np.array([[1.0], [10.0], [100.0]]), {"t": t}

    out = planning.receding_horizon(plan_fn, lambda obs, a: obs + float(a[0]), 0.0, 5, execute_first=2)
    # Plans at t = 0, 2, 4; each executes its first two actions (the last only one, to stop at 5 steps).
    assert calls == [(0.0, 0), (11.0, 2), (22.0, 4)]
    np.testing.assert_array_equal(out["actions"][:, 0], [1, 10, 1, 10, 1])
    assert out["observations"] == [0.0, 1.0, 11.0, 12.0, 22.0, 23.0]
    assert [info["t"] for info in out["infos"]] == [0, 2, 4] and len(out["plans"]) == 3


# --- the synthetic world's true dynamics ----------------------------------------------------------------

WORLD = S.WorldConfig(
    image_size=64, num_agents=(1, 1), num_distractors=(0, 0), camera_pan=False, entering_objects=0.0
)
GOAL_ACTIONS = np.array([[3.0, -2.0], [2.5, 2.5], [1.0, 2.5]], np.float32)  # a 7.2 px displacement


def full_action(agent_action):
    """The world's action layout for one agent: (dy, dx), then a (zero) camera pan."""
    return np.concatenate([np.asarray(agent_action, np.float32), np.zeros(2, np.float32)])


def agent_step_fn(state):
    """The agent's position update of S.step, in jax: clip to the speed bound, round to the 1/256 px grid,
    clip the centre to the frame (agents stop at walls)."""
    speed = S._grid_bound(WORLD.max_speed)
    low, high = (float(x[0, 0]) for x in S._limits(state.agents.radius[:1], WORLD.image_size))

    def step(position_2, action_2):
        move = jnp.round(jnp.clip(action_2, -speed, speed) / S.QUANTUM) * S.QUANTUM
        return jnp.clip(position_2 + move, low, high)

    return step


def simulate(state, agent_actions):
    for action in agent_actions:
        state = S.step(state, full_action(action))
    return state


def test_jax_dynamics_match_the_simulator():
    state = S.initial_state(WORLD, 0, 0)
    step = agent_step_fn(state)
    rng = np.random.default_rng(0)
    position, true = jnp.asarray(state.agents.position[0]), state
    for action in rng.uniform(-5, 5, size=(20, 2)).astype(np.float32):  # beyond the bound, into walls
        position, true = step(position, action), S.step(true, full_action(action))
        np.testing.assert_allclose(position, true.agents.position[0], atol=1e-5)


@pytest.mark.parametrize("return_best", [True, False])
def test_cem_with_the_true_dynamics_reaches_the_goal(return_best):
    start = S.initial_state(WORLD, 0, 0)
    goal = simulate(start, GOAL_ACTIONS).agents.position[0]
    speed = WORLD.max_speed
    config = CemConfig(
        horizon=3, init_std=speed / 2, action_low=-speed, action_high=speed, return_best=return_best
    )
    cost_fn = planning.rollout_cost(agent_step_fn(start), config.cost)
    actions, _ = cem(cost_fn, 2, config, jax.random.key(0), cost_args=(start.agents.position[0], goal))
    reached = simulate(start, np.asarray(actions)).agents.position[0]
    assert final_position_error(reached, goal) < 0.5
    assert final_position_error(start.agents.position[0], goal) > 5.0  # doing nothing is far off


def test_receding_horizon_with_the_simulator_reaches_the_goal():
    start = S.initial_state(WORLD, 0, 0)
    goal = simulate(start, GOAL_ACTIONS).agents.position[0]
    speed = WORLD.max_speed
    base = CemConfig(num_samples=100, num_elites=10, iterations=8, init_std=speed / 2,
                     action_low=-speed, action_high=speed)  # fmt: skip
    step_fn = agent_step_fn(start)

    def plan_fn(state, t):  # the horizon shrinks towards the deadline of 3 steps
        config = dataclasses.replace(base, horizon=3 - t)
        cost_fn = planning.rollout_cost(step_fn, config.cost)
        args = (state.agents.position[0], goal)
        return cem(cost_fn, 2, config, jax.random.fold_in(jax.random.key(0), t), cost_args=args)

    out = planning.receding_horizon(plan_fn, lambda s, a: S.step(s, full_action(a)), start, num_steps=3)
    assert [len(p) for p in out["plans"]] == [3, 2, 1]
    assert final_position_error(out["observations"][-1].agents.position[0], goal) < 0.5
