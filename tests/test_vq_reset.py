"""VQ dead-code reset: distinct latents re-seed distinct codes, their optimiser moments restart at zero, and
the period in latent actions becomes steps from the run's batch size, frames and encoder mode."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_pipelines import sources
from lawm import config as config_lib
from lawm import optim, sharding
from lawm import regularizers as R
from lawm import step as step_lib
from tests.helpers import tiny_train_config

V, L = 64, 8  # the tiny run's codebook


def nearest_code(latents_ZL, codebook_VL):
    d_ZV = ((latents_ZL[:, None, :] - codebook_VL[None, :, :]) ** 2).sum(-1)
    return d_ZV.argmin(-1)


@pytest.mark.parametrize("num_latents", [40, 6])  # fewer dead codes than latents, then more
def test_reset_reseeds_distinct_codes_from_distinct_latents(num_latents):
    rng = np.random.default_rng(0)
    codebook = rng.uniform(-1 / V, 1 / V, (V, L)).astype(np.float32)
    counts = np.where(np.arange(V) % 3 == 0, 0, 5).astype(np.int32)  # 22 dead codes
    latents = rng.normal(size=(num_latents, L)).astype(np.float32)
    new, reseeded = jax.jit(R.reset_dead_codes)(
        codebook, counts, latents.reshape(2, -1, L), jax.random.key(3)
    )
    new, reseeded = np.asarray(new), np.asarray(reseeded)
    dead = counts == 0
    assert reseeded.sum() == min(dead.sum(), num_latents) and not (reseeded & ~dead).any()
    np.testing.assert_array_equal(new[~reseeded], codebook[~reseeded])  # the rest, dead or not, unchanged
    rows = np.flatnonzero(reseeded)
    assert len({new[k].tobytes() for k in rows}) == len(rows)  # no two re-seeded codes are equal
    for k in rows:  # each came from a latent of the batch, whose nearest code it now is
        (source,) = np.flatnonzero((latents == new[k]).all(-1))
        assert nearest_code(latents[source : source + 1], new)[0] == k


def codebook_moments(opt_state):
    """The param-shaped optimiser state of the codebook (AdamW's mu and nu)."""
    leaves = jax.tree_util.tree_leaves_with_path(opt_state)
    found = [x for p, x in leaves if optim.path_str(p).endswith("regularizer/codebook")]
    assert found and all(x.shape == (V, L) for x in found)
    return [np.asarray(x) for x in found]


def test_train_step_reseeds_from_its_batch_and_zeroes_the_rows_moments():
    config = tiny_train_config(regularizer="discrete")
    config.model.regularizer = dict(name="discrete", codebook_size=V, reset_every=2)
    parts = step_lib.build(config, sharding.make_mesh(dict(data=1), jax.devices()[:1]))
    source = sources.make_source(config.data, "train")
    batch = {"video": np.stack([source[i]["video"] for i in range(config.batch_size)])}  # 8 latents
    step = jax.jit(step_lib.make_train_step(parts.system, parts.optimizer, reset_every=2))
    state, _ = step(jax.jit(parts.make_state)(parts.rng), parts.frozen, batch)
    # Every codebook row gets non-zero moments, as a long run's would: a reset must clear them.
    state["opt_state"] = jax.tree_util.tree_map_with_path(
        lambda p, x: jnp.full_like(x, 0.5) if optim.path_str(p).endswith("regularizer/codebook") else x,
        state["opt_state"],
    )
    params = {**parts.frozen, **state["params"]}
    states = parts.system.states_of(params, batch)
    raw = np.asarray(parts.system.regularized_latents(params, states)[3]).reshape(-1, L)  # what step 2 sees
    before = np.asarray(state["params"]["regularizer"]["codebook"])
    state, metrics = step(state, parts.frozen, batch)  # step 2: a reset

    after = np.asarray(state["params"]["regularizer"]["codebook"])
    reseeded = np.abs(after - before).max(-1) > 0.1  # jumped from U(-1/V, 1/V) to a latent
    assert reseeded.sum() == float(metrics["latent/codes_reset"]) == len(raw) == 8  # > 8 dead codes
    assert float(metrics["latent/codes_dead"]) >= V - 8
    assert len({after[k].tobytes() for k in np.flatnonzero(reseeded)}) == 8  # pairwise distinct
    # Each latent of the batch seeded one code, and that code is its nearest: all 8 are used.
    assert sorted(nearest_code(raw, after)) == sorted(np.flatnonzero(reseeded))
    for moment in codebook_moments(state["opt_state"]):
        assert (moment[reseeded] == 0).all()
        assert (moment[~reseeded] != 0).all()


def test_zero_codebook_rows_touches_only_marked_codebook_rows():
    params = {
        "regularizer": {"codebook": jnp.ones((V, L))},
        "world_model": {"blocks": {"0": {"kernel": jnp.ones((4, 4))}}, "head": {"bias": jnp.ones(4)}},
    }
    optimizer = optim.make_optimizer(optim.optim_config(10), params)
    grads = jax.tree.map(jnp.ones_like, params)
    _, opt_state = optimizer.update(grads, optimizer.init(params), params)
    rows = jnp.arange(V) < 5
    out = step_lib.zero_codebook_rows(optimizer, opt_state, params, rows)
    for moment in codebook_moments(out):
        assert (moment[:5] == 0).all() and (moment[5:] != 0).all()
    compared = 0
    for (p, a), b in zip(jax.tree_util.tree_leaves_with_path(opt_state), jax.tree.leaves(out), strict=True):
        if not optim.path_str(p).endswith("regularizer/codebook"):
            np.testing.assert_array_equal(a, b)
            compared += 1
    assert compared >= 4  # the other leaves (Muon's momentum, the bias's moments, counts) are unchanged


@pytest.mark.parametrize("causal,per_clip", [("tubelet", 1), ("per_frame", 3)])  # 4 frames: 2 or 4 states
def test_reset_period_in_latents_becomes_steps_of_the_run(causal, per_clip):
    config = tiny_train_config(regularizer="discrete")
    config.model.regularizer = dict(name="discrete", codebook_size=V, reset_every_latents=48)
    config.model.encoder.causal = causal
    parts = step_lib.build(config, sharding.make_mesh(dict(data=1), jax.devices()[:1]))
    assert parts.reset_every == 48 // (8 * per_clip)  # 6 | 2 steps at batch 8
    assert "code_counts" in parts.make_state(parts.rng)


def test_reset_period_is_given_once_and_positive():
    model = config_lib.tiny_model_config()
    model.regularizer = dict(name="discrete", codebook_size=8, reset_every=3, reset_every_latents=100)
    with pytest.raises(ValueError, match="both reset_every and reset_every_latents"):
        config_lib.validate_model_config(model)
    model.regularizer = dict(name="discrete", codebook_size=8, reset_every_latents=0)
    with pytest.raises(ValueError, match="reset_every_latents must be a positive integer"):
        config_lib.validate_model_config(model)
