"""Cross-Entropy Method (CEM) planning over real-action sequences (paper §8.6-8.7), in pure JAX.

CEM keeps a diagonal Gaussian over action sequences (P, A). Each iteration draws Q sequences, clips them to
the action bounds, scores them with a batched cost function, and refits the Gaussian to the J lowest-cost
("elite") sequences (optionally with momentum). After I iterations it returns either the best sequence seen
(the paper: "select the first action of the best sequence") or the final mean (the [JWM] code's choice).

The planner knows nothing about models. The caller supplies `cost_fn(actions_QPA, *cost_args) -> costs_Q`,
batched over the Q samples; `rollout_cost` builds one from a per-sample `step_fn` (lax.scan over the horizon,
vmap over samples) and `goal_cost`. For the latent world model, step_fn is Eq. 2:
ŝ_{i+1} = p(ŝ_i, c(a_i, ŝ_i)), and the cost is Eq. 1: ‖s_g - ŝ_{t+P}‖₂.

Compilation: `cem` is jitted with cost_fn, action_dim and config static (cost_fn is hashed by identity).
Pass per-episode data (params, start state, goal) through `cost_args`, not a fresh closure, so every
episode reuses one compiled program. Inside an outer jit, closures are fine too (cem is traced inline).

Cost convention (`goal_cost`): "l2" is the Euclidean norm of the whole flattened difference (tokens x
features), Eq. 1 as printed; "l1" is the sum of absolute differences (V-JEPA 2-AC's energy). CEM only ranks
costs, so replacing a norm by its square or a sum by a mean (any monotone rescaling) plans identically;
the choice only changes reported cost values.

`receding_horizon` is the plain-Python outer loop: plan, execute the first k actions in a real simulator
(or a model), re-plan from the new observation.

Dimension keys: Q samples, J elites, I iterations, P horizon (planned steps), A action dim; the paper calls
them N, K, I and H.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

COSTS = ("l2", "l1")


def _bound(value, name):
    """A bound as a float or a tuple of floats (hashable, so the config can be a static jit argument)."""
    array = np.asarray(value, np.float64)
    if array.ndim > 1 or np.isnan(array).any():
        raise ValueError(f"CemConfig.{name} must be a number or a 1-D sequence of numbers, got {value!r}")
    return float(array) if array.ndim == 0 else tuple(float(v) for v in array)


@dataclasses.dataclass(frozen=True)
class CemConfig:
    """CEM settings. Defaults: the paper's DROID protocol (the paper's N 300, K 10, I 15, H 3, i.e. Q, J, I, P
    here; N(0, 1), best sample).

    action_low / action_high: scalars or per-dimension sequences (length A); every sample (and the initial
    and returned mean) is clipped to them. momentum: mean, std <- momentum * old + (1 - momentum) * elite
    statistic (0 = plain CEM). min_std: floor on the std after each refit. return_best: return the lowest-
    cost sample seen over all iterations (True) or the final mean (False). cost: the goal-cost kind the
    caller should build its cost_fn with (`goal_cost`); `cem` itself only sees costs.
    """

    num_samples: int = 300
    num_elites: int = 10
    iterations: int = 15
    horizon: int = 3
    init_mean: float = 0.0
    init_std: float = 1.0
    action_low: float | tuple[float, ...] = -math.inf
    action_high: float | tuple[float, ...] = math.inf
    momentum: float = 0.0
    min_std: float = 0.0
    return_best: bool = True
    cost: str = "l2"

    def __post_init__(self):
        for name in ("num_samples", "num_elites", "iterations", "horizon"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"CemConfig.{name} must be a positive integer, got {value!r}")
        if self.num_elites > self.num_samples:
            raise ValueError(f"num_elites {self.num_elites} exceeds num_samples {self.num_samples}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"CemConfig.momentum must be in [0, 1), got {self.momentum!r}")
        if not (self.init_std >= 0.0 and self.min_std >= 0.0):
            raise ValueError("CemConfig.init_std and min_std must be >= 0")
        if self.cost not in COSTS:
            raise ValueError(f"CemConfig.cost must be one of {COSTS}, got {self.cost!r}")
        low, high = _bound(self.action_low, "action_low"), _bound(self.action_high, "action_high")
        if np.any(np.asarray(low) > np.asarray(high)):
            raise ValueError(f"action_low {low} exceeds action_high {high}")
        object.__setattr__(self, "action_low", low)
        object.__setattr__(self, "action_high", high)

    def bounds(self, action_dim: int) -> tuple[jax.Array, jax.Array]:
        """(low, high), each (A,) float32."""

        def per_dim(value, name):
            array = np.asarray(value, np.float32)
            if array.ndim == 1 and array.shape != (action_dim,):
                raise ValueError(f"CemConfig.{name} has {array.shape[0]} entries for action_dim {action_dim}")
            return jnp.broadcast_to(jnp.asarray(array), (action_dim,))

        return per_dim(self.action_low, "action_low"), per_dim(self.action_high, "action_high")


def cem(
    cost_fn: Callable[..., jax.Array],
    action_dim: int,
    config: CemConfig,
    rng: jax.Array,
    init_mean: jax.Array | None = None,
    cost_args: Sequence = (),
) -> tuple[jax.Array, dict]:
    """Minimises cost_fn(actions_QPA, *cost_args) -> (Q,) over action sequences: (actions_PA, info).

    init_mean (P, A) overrides config.init_mean (e.g. a warm start from the previous plan, `shift_plan`).
    NaN costs count as +inf. info: "mean", "std" (P, A) of the final Gaussian; "best_actions" (P, A) and
    "best_cost" () over all iterations; "elites" (J, P, A) and "elite_costs" (J,) of the last iteration
    (sorted, best first); "best_cost_per_iteration", "elite_cost_per_iteration" (I,) (the latter the mean
    over the elites).
    """
    return _cem(cost_fn, action_dim, config, rng, init_mean, tuple(cost_args))


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _cem(cost_fn, action_dim, config, rng, init_mean, cost_args):
    P, A, Q, J = config.horizon, action_dim, config.num_samples, config.num_elites
    low_A, high_A = config.bounds(A)
    clip = lambda x: jnp.clip(x, low_A, high_A)  # noqa: E731
    if init_mean is None:
        mean_PA = jnp.full((P, A), config.init_mean, jnp.float32)
    else:
        mean_PA = jnp.asarray(init_mean, jnp.float32)
        if mean_PA.shape != (P, A):
            raise ValueError(f"init_mean must have shape {(P, A)}, got {mean_PA.shape}")
    mean_PA = clip(mean_PA)
    std_PA = jnp.full((P, A), config.init_std, jnp.float32)
    m = config.momentum

    def iteration(carry, key):
        mean_PA, std_PA, best_PA, best_cost, _, _ = carry
        samples_QPA = clip(mean_PA + std_PA * jax.random.normal(key, (Q, P, A), jnp.float32))
        costs_Q = jnp.asarray(cost_fn(samples_QPA, *cost_args), jnp.float32)
        if costs_Q.shape != (Q,):
            raise ValueError(f"cost_fn must return ({Q},) costs, got {costs_Q.shape}")
        costs_Q = jnp.where(jnp.isnan(costs_Q), jnp.inf, costs_Q)
        neg_costs_J, elite_idx_J = jax.lax.top_k(-costs_Q, J)
        elites_JPA, elite_costs_J = samples_QPA[elite_idx_J], -neg_costs_J
        mean_PA = m * mean_PA + (1 - m) * elites_JPA.mean(0)
        std_PA = jnp.maximum(m * std_PA + (1 - m) * elites_JPA.std(0), config.min_std)
        better = elite_costs_J[0] < best_cost
        best_PA = jnp.where(better, elites_JPA[0], best_PA)
        best_cost = jnp.where(better, elite_costs_J[0], best_cost)
        carry = (mean_PA, std_PA, best_PA, best_cost, elites_JPA, elite_costs_J)
        return carry, (elite_costs_J[0], elite_costs_J.mean())

    init = (
        mean_PA,
        std_PA,
        mean_PA,
        jnp.array(jnp.inf, jnp.float32),
        jnp.zeros((J, P, A), jnp.float32),
        jnp.zeros((J,), jnp.float32),
    )
    keys = jax.random.split(rng, config.iterations)
    (mean_PA, std_PA, best_PA, best_cost, elites_JPA, elite_costs_J), (best_I, elite_I) = jax.lax.scan(
        iteration, init, keys
    )
    info = {
        "mean": mean_PA,
        "std": std_PA,
        "best_actions": best_PA,
        "best_cost": best_cost,
        "elites": elites_JPA,
        "elite_costs": elite_costs_J,
        "best_cost_per_iteration": best_I,
        "elite_cost_per_iteration": elite_I,
    }
    return (best_PA if config.return_best else clip(mean_PA)), info


# --- costs ----------------------------------------------------------------------------------------------


def goal_cost(final_states, goal, kind: str = "l2"):
    """Distance of each final state to the goal, reduced over goal's axes: (*batch, *goal.shape) -> (*batch,).

    "l2": ‖final - goal‖₂ over the flattened state (all tokens and features; Eq. 1).
    "l1": ‖final - goal‖₁, the sum of absolute differences.
    """
    goal = jnp.asarray(goal)
    diff = jnp.asarray(final_states, jnp.float32) - goal.astype(jnp.float32)
    axes = tuple(range(diff.ndim - goal.ndim, diff.ndim))
    if kind == "l2":
        return jnp.sqrt(jnp.sum(jnp.square(diff), axis=axes))
    if kind == "l1":
        return jnp.sum(jnp.abs(diff), axis=axes)
    raise ValueError(f"goal cost kind must be one of {COSTS}, got {kind!r}")


@functools.lru_cache(maxsize=32)
def rollout_cost(step_fn: Callable, kind: str = "l2") -> Callable:
    """A `cem` cost_fn: cost_fn(actions_QPA, initial_state, goal, *step_args) -> (Q,).

    Each sample's P actions drive step_fn(state, action_A, *step_args) -> state from initial_state
    (lax.scan); the final states (vmap over samples) are scored by goal_cost(., goal, kind). Cached per
    (step_fn, kind), so repeated calls return the same function and `cem` compiles once.
    """

    def final_state(actions_PA, initial_state, step_args):
        step = lambda state, action: (step_fn(state, action, *step_args), None)  # noqa: E731
        return jax.lax.scan(step, initial_state, actions_PA)[0]

    def cost_fn(actions_QPA, initial_state, goal, *step_args):
        finals = jax.vmap(final_state, in_axes=(0, None, None))(actions_QPA, initial_state, step_args)
        return goal_cost(finals, goal, kind)

    return cost_fn


# --- receding horizon -----------------------------------------------------------------------------------


def shift_plan(actions_PA, k: int = 1, fill: float = 0.0):
    """Warm start for the next re-plan: drop the k executed actions, pad the end with `fill`: (P, A)."""
    actions_PA = jnp.asarray(actions_PA)
    pad = jnp.full((min(k, actions_PA.shape[0]), actions_PA.shape[1]), fill, actions_PA.dtype)
    return jnp.concatenate([actions_PA[k:], pad], axis=0)


def receding_horizon(
    plan_fn: Callable,
    execute_fn: Callable,
    initial_obs,
    num_steps: int,
    execute_first: int = 1,
) -> dict:
    """Model-predictive control loop in Python: plan, execute the first k actions, re-plan.

    plan_fn(obs, t) -> actions (P, A) (or (actions, info)), where t is the number of actions executed so
    far (e.g. to fold into an rng, or to shrink the horizon towards a deadline). execute_fn(obs, action_A)
    -> next obs, e.g. a simulator step. Stops after num_steps executed actions. Returns
    {"observations": [num_steps + 1 obs], "actions": (num_steps, A) array, "plans": [each plan (P, A)],
    "infos": [each plan's info or None]}.
    """
    if num_steps < 1 or execute_first < 1:
        raise ValueError(f"need num_steps >= 1 and execute_first >= 1, got {num_steps}, {execute_first}")
    obs, observations, actions, plans, infos = initial_obs, [initial_obs], [], [], []
    while len(actions) < num_steps:
        result = plan_fn(obs, len(actions))
        plan, info = result if isinstance(result, tuple) else (result, None)
        plan = np.asarray(plan)
        plans.append(plan)
        infos.append(info)
        for action in plan[: min(execute_first, num_steps - len(actions))]:
            obs = execute_fn(obs, action)
            observations.append(obs)
            actions.append(action)
    return {"observations": observations, "actions": np.stack(actions), "plans": plans, "infos": infos}
