"""Controllers: shapes, what each one depends on (proved by perturbation), and that they can be fit."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from lawm.models.controller import ActionMlp, CrossAttentionAdapter
from tests.helpers import max_abs_diff, randomize_module

GRID = (2, 3)  # a non-square token grid
B, T, N, E, A, L = 2, 3, GRID[0] * GRID[1], 12, 5, 4


def adapter(seed=0):
    model = CrossAttentionAdapter(
        state_dim=E, action_dim=A, latent_dim=L, width=16, num_heads=2, rngs=nnx.Rngs(seed)
    )
    randomize_module(model, jax.random.key(seed + 100))
    return model


def mlp(seed=0):
    model = ActionMlp(action_dim=A, latent_dim=L, width=16, rngs=nnx.Rngs(seed))
    randomize_module(model, jax.random.key(seed + 100))
    return model


def inputs(seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    return jax.random.normal(k1, (B, T, N, E)), jax.random.normal(k2, (B, T, A))


@pytest.mark.parametrize("make", [adapter, mlp], ids=["adapter", "mlp"])
def test_shapes(make):
    states, actions = inputs()
    assert make()(states, actions, GRID).shape == (B, T, L)


def test_adapter_structure_matches_the_paper():
    model = adapter()
    assert len(model.blocks) == 2  # self-attention over the previous state
    assert len(model.action_embed.linears) == 3  # a 3-layer action MLP to the width
    assert model.action_embed.linears[-1].out_features == 16
    assert model.head.out_features == L


def test_adapter_depends_on_the_state_of_its_own_step_only():
    model = adapter()
    states, actions = inputs()
    base = np.asarray(model(states, actions, GRID))
    changed = np.asarray(model(states.at[:, 1].add(1.0), actions, GRID))
    # Step 1's output moves; steps 0 and 2 (other states) are bit-identical: steps are independent.
    assert max_abs_diff(base[:, 1], changed[:, 1]) > 1e-3
    np.testing.assert_array_equal(base[:, [0, 2]], changed[:, [0, 2]])


def test_adapter_sees_where_tokens_are():
    # Permuting one state's tokens changes the output (RoPE gives tokens positions), so a pure bag of tokens
    # would fail this.
    model = adapter()
    states, actions = inputs()
    permuted = states[:, :, ::-1]
    assert max_abs_diff(model(states, actions, GRID), model(permuted, actions, GRID)) > 1e-4


def test_mlp_ignores_the_state():
    model = mlp()
    states, actions = inputs()
    base = model(states, actions, GRID)
    np.testing.assert_array_equal(base, model(states + 5.0, actions, GRID))
    np.testing.assert_array_equal(base, model(None, actions))


@pytest.mark.parametrize("make", [adapter, mlp], ids=["adapter", "mlp"])
def test_output_depends_on_the_action_of_its_own_step(make):
    model = make()
    states, actions = inputs()
    base = np.asarray(model(states, actions, GRID))
    changed = np.asarray(model(states, actions.at[:, 2].add(1.0), GRID))
    assert max_abs_diff(base[:, 2], changed[:, 2]) > 1e-3
    np.testing.assert_array_equal(base[:, :2], changed[:, :2])


def test_adapter_rejects_mismatched_inputs():
    states, actions = inputs()
    with pytest.raises(ValueError, match="grid"):
        adapter()(states, actions, (3, 3))
    with pytest.raises(ValueError, match="one action per state step"):
        adapter()(states, actions[:, :2], GRID)


@pytest.mark.parametrize("make", [adapter, mlp], ids=["adapter", "mlp"])
def test_a_few_adam_steps_fit_a_regression(make):
    # Targets depend on both the action and the state, as IDM latents do; the MLP can fit the action part.
    states, actions = inputs(seed=1)
    w_AL = jax.random.normal(jax.random.key(2), (A, L))
    targets = jnp.tanh(actions @ w_AL) + 0.5 * states.mean(axis=(2, 3))[..., None]
    model = make(seed=3)
    optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer):
        def loss_fn(model):
            return jnp.mean(jnp.square(model(states, actions, GRID) - targets))

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(train_step(model, optimizer)) for _ in range(60)]
    assert losses[-1] < 0.3 * losses[0], losses[::10]
