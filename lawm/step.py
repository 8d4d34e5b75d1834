"""The jitted train step and the state it runs on: what a run is built from, apart from any data.

`build(config, mesh)` gives the system (`lawm.systems.make`, chosen by `config.task`), its optimiser, the
train state's constructor and shardings and the frozen params; `make_train_step` the pure step. The trainer
(lawm.train) feeds it from the input pipeline; benchmarks/train_step.py feeds it in-memory batches. Nothing
here imports TensorFlow, grain or clu.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from lawm import optim, regularizers, sharding, systems


# ------------------------------------------------------------------------------------------------
# The jitted step
# ------------------------------------------------------------------------------------------------
def make_train_step(system: systems.System, optimizer, reset_every: int | None):
    """A pure `train_step(state, frozen, batch) -> (state, metrics)`; jit it with the state donated."""

    def train_step(state, frozen, batch):
        rng = jax.random.fold_in(jax.random.wrap_key_data(state["rng"]), state["step"])
        loss_rng, reset_rng = jax.random.split(rng)

        def loss_fn(trainable):
            return system.loss_fn({**frozen, **trainable}, batch, loss_rng, train=True)

        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        grad_norm = optax.tree.norm(grads)

        new = dict(state, step=state["step"] + 1, params=params, opt_state=opt_state)
        if "code_counts" in state:  # VQ: re-seed codes no latent picked since the last reset
            counts = state["code_counts"] + aux["code_counts"]
            due = (new["step"] % reset_every) == 0
            codebook = params["regularizer"]["codebook"]
            reseeded, num_reset = regularizers.reset_dead_codes(
                codebook, counts, aux["raw_latents"], reset_rng
            )
            new["params"] = {
                **params,
                "regularizer": {**params["regularizer"], "codebook": jnp.where(due, reseeded, codebook)},
            }
            new["code_counts"] = jnp.where(due, jnp.zeros_like(counts), counts)
            aux["metrics"]["latent/codes_reset"] = jnp.where(due, num_reset, 0).astype(jnp.float32)

        # A non-finite step changes nothing but the flag, so the params stay the last good ones.
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        new = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, dict(state, step=state["step"] + 1))
        new["first_nonfinite_step"] = jnp.where(
            ~finite & (state["first_nonfinite_step"] < 0), state["step"], state["first_nonfinite_step"]
        )
        return new, dict(aux["metrics"], grad_norm=grad_norm)

    return train_step


def init_state(system, optimizer, rng, codebook_size: int | None = None):
    params = system.init(rng)
    trainable = {k: params[k] for k in system.trainable}
    state = {
        "step": jnp.zeros((), jnp.int32),
        "rng": jax.random.key_data(jax.random.fold_in(rng, 1)),
        "params": trainable,
        "opt_state": optimizer.init(trainable),
        "first_nonfinite_step": -jnp.ones((), jnp.int32),
    }
    if codebook_size is not None:
        state["code_counts"] = jnp.zeros((codebook_size,), jnp.int32)
    return state


@dataclasses.dataclass(frozen=True)
class Parts:
    """What a training run is built from (shared by the trainer, its tests and eval tools)."""

    system: systems.System
    optimizer: optax.GradientTransformation
    trainable: dict  # abstract trainable params
    make_state: Callable  # rng -> a fresh train state
    shardings: dict  # of the train state, on the mesh
    frozen: dict  # {"encoder": params}, placed on the mesh
    reset_every: int | None  # VQ dead-code reset period (None without a codebook)
    rng: jax.Array


def build(config, mesh, *, abstract_frozen: bool = False) -> Parts:
    """The system, its optimiser, the state's constructor and shardings, and the frozen encoder.

    `abstract_frozen`: the frozen params as sharded ShapeDtypeStructs, nothing allocated (for ahead-of-time
    compilation of a step that would not fit this machine).
    """
    system = systems.make(config)
    rng = jax.random.key(config.seed)
    abstract = jax.eval_shape(system.init, rng)
    trainable = {k: abstract[k] for k in system.trainable}
    optimizer = optim.make_optimizer(config.optim, trainable)
    codebook = trainable.get("regularizer", {}).get("codebook")
    reset_every = getattr(system, "reset_every", None) if codebook is not None else None
    codebook_size = codebook.shape[0] if reset_every else None
    make_state = functools.partial(init_state, system, optimizer, codebook_size=codebook_size)
    shardings = sharding.state_shardings(jax.eval_shape(make_state, rng), mesh)
    if abstract_frozen:
        shapes = jax.eval_shape(system.frozen_params, rng)
        frozen = sharding.abstract_like(shapes, sharding.param_shardings(shapes, mesh))
    else:
        frozen = system.frozen_params(rng, mesh)
    return Parts(system, optimizer, trainable, make_state, shardings, frozen, reset_every, rng)
