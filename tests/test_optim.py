"""The optimiser: Muon/AdamW split on the real tree, schedule, one-step updates, clipping, decay mask."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lawm import config as config_lib
from lawm import optim
from lawm.systems.world_model import TRAINABLE
from lawm.systems.world_model import WorldModelSystem as System
from tests.helpers import max_abs_diff

LR_MUON, LR_ADAMW, WD = 0.02, 1e-3, 0.04
MUON_PATHS = (
    "world_model/blocks/0/attention/query/kernel",
    "idm/blocks/1/mlp/fc2/kernel",
    "world_model/blocks/1/modulation/kernel",  # AdaLN modulation Linear
)
ADAMW_PATHS = (
    "idm/embed/kernel",
    "idm/head/kernel",
    "world_model/embed/kernel",
    "world_model/head/kernel",
    "world_model/latent_embed1/kernel",
    "world_model/latent_embed2/kernel",
    "world_model/blocks/0/attention/query/bias",
    "idm/blocks/0/norm1/scale",
    "world_model/norm/bias",
    "idm/readout_token",
    "idm/step_embed",
    "regularizer/codebook",
)


@pytest.fixture(scope="module")
def tiny_shapes():
    """Abstract params (no allocation) of the tiny model with a VQ codebook, so every leaf kind exists."""
    config = config_lib.tiny_model_config()
    config.regularizer = dict(name="discrete", codebook_size=8)
    return jax.eval_shape(System(config).init, jax.random.key(0))


def trainable_of(params):
    return {name: params[name] for name in TRAINABLE}


def flat_paths(tree):
    return {optim.path_str(p): x for p, x in jax.tree_util.tree_leaves_with_path(tree)}


def config(**overrides):
    c = optim.optim_config(total_steps=1000)
    c.update(dict(muon_lr=LR_MUON, adamw_lr=LR_ADAMW, weight_decay=WD, warmup_fraction=0.0), **overrides)
    return c


def toy_params(key=0):
    """A block kernel (Muon), an embedding kernel, a bias, a norm scale, a learned token and a codebook."""
    shapes = {
        "blocks": {0: {"mlp": {"fc1": {"kernel": (8, 16), "bias": (16,)}}, "norm1": {"scale": (8,)}}},
        "embed": {"kernel": (4, 8)},
        "readout_token": (1, 8),
        "codebook": (5, 4),
    }
    leaves, treedef = jax.tree.flatten(shapes, is_leaf=lambda x: isinstance(x, tuple))
    keys = jax.random.split(jax.random.key(key), len(leaves))
    return jax.tree.unflatten(treedef, [jax.random.normal(k, s) for k, s in zip(keys, leaves, strict=True)])


def step(tx, grads, params, state=None):
    """One jitted update (eager Newton-Schulz runs op by op and is slower than compiling it)."""
    state = tx.init(params) if state is None else state
    return jax.jit(tx.update)(grads, state, params)


# -- labels ---------------------------------------------------------------------------------------------
def test_labels_on_the_tiny_models_param_tree(tiny_shapes):
    trainable = trainable_of(tiny_shapes)
    labels = flat_paths(optim.param_labels(trainable))
    shapes = flat_paths(trainable)
    assert labels.keys() == shapes.keys()
    for path, label in labels.items():
        hidden_matrix = "/blocks/" in path and path.endswith("/kernel") and len(shapes[path].shape) == 2
        assert label == ("muon" if hidden_matrix else "adamw"), path
    # Spot checks, so a change in the rule (or the tree) cannot silently move these.
    for path in MUON_PATHS:
        assert labels[path] == "muon", path
    for path in ADAMW_PATHS:
        assert labels[path] == "adamw", path
    counts = {name: sum(v == name for v in labels.values()) for name in ("muon", "adamw")}
    # 6 matrices per block (q, k, v, proj, fc1, fc2) x 2 blocks x 2 models + 2 AdaLN modulations.
    assert counts["muon"] == 26
    assert counts["muon"] + counts["adamw"] == len(jax.tree.leaves(trainable))

    table = optim.describe(optim.param_labels(trainable), trainable)
    muon_size = sum(shapes[p].size for p, v in labels.items() if v == "muon")
    assert f"{muon_size:,}" in table and "idm/blocks/0/attention/key/kernel" in table


# -- schedule -------------------------------------------------------------------------------------------
def test_schedule_warmup_then_cosine():
    schedule = optim.learning_rate_schedule(2.0, total_steps=100, warmup_fraction=0.1)
    values = {s: float(schedule(s)) for s in (0, 5, 10, 55, 100)}
    np.testing.assert_allclose(
        [values[0], values[5], values[10], values[55], values[100]], [0.0, 1.0, 2.0, 1.0, 0.0], atol=1e-6
    )
    ended = optim.learning_rate_schedule(2.0, total_steps=100, end_value=0.2)
    np.testing.assert_allclose([ended(55), ended(100)], [1.1, 0.2], atol=1e-6)
    no_warmup = optim.learning_rate_schedule(2.0, total_steps=100, warmup_fraction=0.0)
    np.testing.assert_allclose([no_warmup(0), no_warmup(50), no_warmup(100)], [2.0, 1.0, 0.0], atol=1e-6)


# -- one update -----------------------------------------------------------------------------------------
def test_first_update_matches_adamw_and_orthogonalised_muon():
    params = toy_params(0)
    grads = toy_params(1)
    tx = optim.make_optimizer(config(clip_norm=float("inf")), params)
    updates, _ = step(tx, grads, params)

    # AdamW, step 1: bias-corrected moments are g and g^2, so the update is lr * g / (|g| + eps), plus
    # lr * wd * p on decayed leaves (kernels only).
    for path in (
        "embed/kernel",
        "blocks/0/mlp/fc1/bias",
        "blocks/0/norm1/scale",
        "readout_token",
        "codebook",
    ):
        g, p, u = flat_paths(grads)[path], flat_paths(params)[path], flat_paths(updates)[path]
        decay = WD * p if path.endswith("kernel") else 0.0
        np.testing.assert_allclose(u, -LR_ADAMW * (g / (jnp.abs(g) + 1e-8) + decay), rtol=1e-5, atol=1e-7)

    # Muon: remove the decoupled decay (lr_muon * wd * p); what is left is the orthogonalised momentum.
    p, g = params["blocks"][0]["mlp"]["fc1"]["kernel"], grads["blocks"][0]["mlp"]["fc1"]["kernel"]
    direction = np.asarray(-updates["blocks"][0]["mlp"]["fc1"]["kernel"] / LR_MUON - WD * p)
    singular = np.linalg.svd(direction, compute_uv=False)
    assert singular.max() / singular.min() < 1.8, singular  # Newton-Schulz: only approximately orthogonal
    # Muon's width scaling for a (fan_in 8, fan_out 16) matrix: sqrt(max(1, 16 / 8)).
    np.testing.assert_allclose(singular.mean(), np.sqrt(2.0), rtol=0.3)
    u, _, vt = np.linalg.svd(np.asarray(g), full_matrices=False)
    polar = u @ vt  # the exact orthogonalisation of the first momentum (which is g, up to scale)
    cosine = np.sum(direction * polar) / np.linalg.norm(direction) / np.linalg.norm(polar)
    assert cosine > 0.95, cosine
    adam_direction = np.asarray(g / (jnp.abs(g) + 1e-8))
    adam_singular = np.linalg.svd(adam_direction, compute_uv=False)
    assert adam_singular.max() / adam_singular.min() > 2.5  # so the check above can tell them apart
    assert np.abs(direction - adam_direction).max() > 0.1


def test_clipping_is_global_and_happens_before_the_inner_transforms():
    """First steps of Adam and Muon are scale-invariant, so compare the *second* update: with clipping, a
    first gradient of global norm 10 leaves the same moments as that gradient rescaled to norm 1."""
    params = toy_params(0)
    g1, g2 = toy_params(1), jax.tree.map(lambda x: 0.1 * x, toy_params(2))
    norm = float(jnp.sqrt(sum(jnp.sum(x * x) for x in jax.tree.leaves(g1))))
    unit = jax.tree.map(lambda x: x / norm, g1)
    big = jax.tree.map(lambda x: 10.0 * x, unit)  # global norm 10; the leaves' own norms are all below 10

    def second_update(clip_norm, first):
        tx = optim.make_optimizer(config(clip_norm=clip_norm), params)
        _, state = step(tx, first, params)
        return step(tx, g2, params, state)[0]

    def tree_diff(x, y):
        return max(max_abs_diff(a, b) for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y), strict=True))

    assert tree_diff(second_update(1.0, big), second_update(1.0, unit)) < 1e-6
    # Without clipping the two differ, so the check above can fail.
    assert tree_diff(second_update(float("inf"), big), second_update(float("inf"), unit)) > 1e-4


def test_weight_decay_only_on_kernels(tiny_shapes):
    """With zero gradients only the decoupled decay moves params: kernels shrink by lr * wd, the rest stay."""
    params = toy_params(0)
    tx = optim.make_optimizer(config(), params)
    updates, _ = step(tx, jax.tree.map(jnp.zeros_like, params), params)
    labels = flat_paths(optim.param_labels(params))
    assert sorted(labels.values()) == ["adamw"] * 5 + ["muon"]
    for path, u in flat_paths(updates).items():
        p = flat_paths(params)[path]
        if path.endswith("/kernel"):
            lr = LR_MUON if labels[path] == "muon" else LR_ADAMW
            np.testing.assert_allclose(u, -lr * WD * p, rtol=1e-5, err_msg=path)
        else:
            assert not np.any(np.asarray(u)), path  # exactly zero: bias, norm, token, codebook
    # The same rule on the real tree: decay exactly the weight matrices (`kernel` leaves).
    mask = flat_paths(optim.decay_mask(trainable_of(tiny_shapes)))
    assert {p for p, m in mask.items() if m} == {p for p in mask if p.endswith("/kernel")}
    assert not mask["regularizer/codebook"] and not mask["idm/readout_token"] and not mask["idm/step_embed"]


def test_state_covers_trainable_params_only(tiny_shapes):
    trainable = trainable_of(tiny_shapes)
    tx = optim.make_optimizer(config(), trainable)
    state = jax.eval_shape(tx.init, trainable)
    paths = [optim.path_str(p) for p, _ in jax.tree_util.tree_leaves_with_path(state)]
    assert not any("encoder" in p for p in paths)
    # One momentum per Muon parameter, two Adam moments per AdamW parameter, plus a few scalar counters:
    # nothing for the encoder and nothing in Muon's built-in (unused) AdamW branch.
    labels = flat_paths(optim.param_labels(trainable))
    sizes = {p: x.size for p, x in flat_paths(trainable).items()}
    expected = sum(sizes[p] * (1 if label == "muon" else 2) for p, label in labels.items())
    total = sum(x.size for x in jax.tree.leaves(state))
    assert expected <= total < expected + 32


# -- config ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "field, value",
    [
        ("muon_lr", -0.02),
        ("adamw_lr", -1e-4),
        ("weight_decay", -0.1),
        ("warmup_fraction", 1.0),
        ("warmup_fraction", -0.1),
        ("b2", 1.0),
        ("clip_norm", 0.0),
        ("total_steps", 0),
        ("lr", 0.1),  # not a field
    ],
)
def test_bad_fields_raise_one_line_errors_naming_them(field, value):
    c = optim.optim_config(100)
    setattr(c, field, value)
    with pytest.raises(ValueError, match=field) as error:
        optim.make_optimizer(c, toy_params())
    assert "\n" not in str(error.value)


def test_missing_field_and_nested_config():
    c = optim.optim_config(100)
    del c["total_steps"]
    with pytest.raises(ValueError, match="optim.total_steps"):
        optim.make_optimizer(c, toy_params())
    full = config_lib.tiny_model_config()
    full.optim = optim.optim_config(10)
    optim.make_optimizer(full, toy_params())  # the whole config is accepted too
