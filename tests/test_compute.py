"""The compute switches (model.compute) change how the step runs, never what it computes.

Each switch is compared with the plain float32 step on one fixed batch: same params, same loss and
gradients (float32 switches to float32 round-off; bfloat16 to a stated, looser tolerance). The plain step
uses the einsum attention, so the fused one is compared with it; both attention paths are also checked
against a plain numpy softmax attention written here.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lawm import config as config_lib
from lawm import optim
from lawm import train as train_lib
from lawm.models import layers
from lawm.systems.world_model import WorldModelSystem as System

# bfloat16 keeps 8 mantissa bits (relative step 2^-8 = 0.4 %); a few dozen roundings per token through
# the tiny model's blocks land the loss within 1 % and the gradient direction within a cosine of 0.98.
BF16_LOSS_RTOL = 1e-2
BF16_GRAD_COSINE = 0.98


def make_system(**compute):
    config = config_lib.tiny_model_config()
    config.regularizer = dict(name="noisy", beta=1e-3)
    config.compute.update(compute)
    return System(config)


@pytest.fixture(scope="module")
def reference():
    system = make_system(attention="einsum")  # named, not "auto" (which is einsum on CPU and fused elsewhere)
    params = system.init(jax.random.key(0))
    video = jax.random.randint(jax.random.key(1), (2, 8, 64, 64, 3), 0, 256).astype(jnp.uint8)
    batch = {"video": video}
    loss, grads = loss_and_grads(system, params, batch)
    return params, batch, loss, grads


def loss_and_grads(system, params, batch):
    frozen = {"encoder": params["encoder"]}
    trainable = {k: params[k] for k in system.trainable}

    @jax.jit
    def run(trainable):
        fn = lambda p: system.loss_fn({**frozen, **p}, batch, jax.random.key(2))[0]  # noqa: E731
        return jax.value_and_grad(fn)(trainable)

    return jax.device_get(run(trainable))


def flat(tree):
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)]).astype(np.float64)


@pytest.mark.parametrize(
    "compute",
    [
        dict(remat="full"),
        dict(remat="dots"),
        dict(scan=True),
        dict(scan=True, remat="full"),
        dict(attention="fused"),  # jax.nn.dot_product_attention, against the reference's einsums
    ],
    ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()),
)
def test_float32_switches_leave_loss_and_gradients_unchanged(reference, compute):
    params, batch, loss, grads = reference
    system = make_system(**compute)
    assert jax.tree.structure(system.init(jax.random.key(0))) == jax.tree.structure(params)
    new_loss, new_grads = loss_and_grads(system, params, batch)
    np.testing.assert_allclose(new_loss, loss, rtol=1e-5)
    np.testing.assert_allclose(flat(new_grads), flat(grads), rtol=1e-4, atol=1e-6)


def numpy_attention(q_BSMK, k_BSMK, v_BSMK, mask_SS):
    """Softmax attention, written out in float64: softmax(q k^T / sqrt(K), masked) v, per batch and head."""
    q, k, v = (np.asarray(x, np.float64) for x in (q_BSMK, k_BSMK, v_BSMK))
    logits_BMSS = np.einsum("bsmk,btmk->bmst", q, k) / np.sqrt(q.shape[-1])
    logits_BMSS = np.where(mask_SS, logits_BMSS, -np.inf)
    weights = np.exp(logits_BMSS - logits_BMSS.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return np.einsum("bmst,btmk->bsmk", weights, v)


@pytest.mark.parametrize("implementation", ["einsum", "fused"])
def test_attention_implementations_match_a_numpy_reference(implementation):
    B, S, M, K = 2, 12, 3, 16
    q, k, v = (3 * jax.random.normal(key, (B, S, M, K)) for key in jax.random.split(jax.random.key(0), 3))
    step_of_token_S = np.repeat(np.arange(4), 3)  # 4 steps of 3 tokens: block-causal
    for mask_SS in (None, np.asarray(layers.block_causal_mask(step_of_token_S))):
        out = layers.dot_product_attention(q, k, v, mask_SS, implementation)
        expected = numpy_attention(q, k, v, np.ones((S, S), bool) if mask_SS is None else mask_SS)
        assert out.shape == (B, S, M, K) and out.dtype == jnp.float32
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("compute", [dict(dtype="bfloat16"), dict(encoder_dtype="bfloat16")])
def test_bfloat16_keeps_the_loss_within_a_stated_tolerance(reference, compute):
    params, batch, loss, grads = reference
    system = make_system(**compute)
    new_loss, new_grads = loss_and_grads(system, params, batch)
    assert new_loss != loss  # it did compute in bfloat16
    np.testing.assert_allclose(new_loss, loss, rtol=BF16_LOSS_RTOL)
    a, b = flat(new_grads), flat(grads)
    assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) > BF16_GRAD_COSINE
    # Params stay float32, so the optimiser and checkpoints do not change.
    assert {x.dtype for x in jax.tree.leaves(system.init(jax.random.key(0)))} == {jnp.dtype(jnp.float32)}


def test_all_switches_on_train_a_step_like_the_plain_step(reference):
    """The jitted train step (optimiser, donation) with every switch on tracks the plain one."""
    params, batch, _, _ = reference
    losses = {}
    for name, compute in {
        "plain": {},
        "fast": dict(dtype="bfloat16", encoder_dtype="bfloat16", remat="dots", scan=True, attention="fused"),
    }.items():
        system = make_system(**compute)
        trainable = {k: params[k] for k in system.trainable}
        optimizer = optim.make_optimizer(optim.optim_config(10), trainable)
        state = {
            "step": jnp.zeros((), jnp.int32),
            "rng": jax.random.key_data(jax.random.key(3)),
            "params": trainable,
            "opt_state": optimizer.init(trainable),
            "first_nonfinite_step": -jnp.ones((), jnp.int32),
        }
        step = jax.jit(train_lib.make_train_step(system, optimizer, None), donate_argnums=0)
        state = jax.tree.map(jnp.copy, state)  # donated below: keep the fixture's arrays
        for _ in range(3):
            state, metrics = step(state, {"encoder": params["encoder"]}, batch)
        losses[name] = float(metrics["loss"])
        assert int(state["first_nonfinite_step"]) == -1
    np.testing.assert_allclose(losses["fast"], losses["plain"], rtol=BF16_LOSS_RTOL)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("dtype", "float16", "model.compute.dtype must be one of"),
        ("encoder_dtype", "bf16", "model.compute.encoder_dtype must be one of"),
        ("attention", "flash", "model.compute.attention must be one of"),
        ("remat", "some", "model.compute.remat must be one of"),
        ("scan", "yes", "model.compute.scan must be a bool"),
        ("unroll", 2, "model.compute has unknown fields ['unroll']"),
    ],
)
def test_bad_compute_config_fails_naming_the_field(field, value, message):
    config = config_lib.tiny_model_config()
    config.compute = {**config.compute.to_dict(), field: value}  # a fresh dict: no type-safe casting
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config_lib.validate_model_config(config)
