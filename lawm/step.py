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

from data_pipelines import sources
from lawm import config as config_lib
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
            reseeded, reseeded_V = regularizers.reset_dead_codes(
                codebook, counts, aux["raw_latents"], reset_rng
            )
            reseeded_V = reseeded_V & due
            new["params"] = {
                **params,
                "regularizer": {**params["regularizer"], "codebook": jnp.where(due, reseeded, codebook)},
            }
            # A re-seeded row starts afresh: its old AdamW moments belong to the code it replaced.
            new["opt_state"] = zero_codebook_rows(optimizer, opt_state, params, reseeded_V)
            new["code_counts"] = jnp.where(due, jnp.zeros_like(counts), counts)
            metrics = aux["metrics"]
            metrics["latent/codes_reset"] = jnp.sum(reseeded_V).astype(jnp.float32)
            metrics["latent/codes_dead"] = jnp.where(due, jnp.sum(counts == 0), 0).astype(jnp.float32)

        # A non-finite step changes nothing but the flag, so the params stay the last good ones.
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        new = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, dict(state, step=state["step"] + 1))
        new["first_nonfinite_step"] = jnp.where(
            ~finite & (state["first_nonfinite_step"] < 0), state["step"], state["first_nonfinite_step"]
        )
        return new, dict(aux["metrics"], grad_norm=grad_norm)

    return train_step


def zero_codebook_rows(optimizer, opt_state, params, rows_V):
    """`opt_state` with every param-shaped state of the codebook (AdamW's mu and nu, ...) zero on rows_V.

    rows_V (V,) bool marks rows of params["regularizer"]["codebook"] (V, L); every other leaf and row is
    returned as it is. The param-shaped parts of the state are found by `optax.tree_map_params`; a
    transform that does not hold the codebook (Muon's) has an `optax.MaskedNode` there, left alone.
    """
    marks = jax.tree.map(lambda _: False, params)
    marks["regularizer"] = {**marks["regularizer"], "codebook": rows_V}

    def zero(leaf, rows):
        if rows is False or isinstance(leaf, optax.MaskedNode) or leaf is None:
            return leaf
        keep = ~rows.reshape(rows.shape + (1,) * (leaf.ndim - 1))
        return jnp.where(keep, leaf, jnp.zeros_like(leaf))

    return optax.tree_map_params(
        optimizer, zero, opt_state, marks, is_leaf=lambda x: isinstance(x, optax.MaskedNode) or x is None
    )


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


def latents_per_clip(encoder_config, num_frames: int) -> int:
    """Latent actions one clip of `num_frames` frames gives: its states (one per tubelet, or one per frame
    in per-frame mode) minus one. 16 frames: 7 with tubelets of 2, 15 with `causal="per_frame"`."""
    return num_frames // config_lib.frames_per_state(encoder_config) - 1


def reset_period(config) -> int | None:
    """The VQ dead-code reset period in steps, from `model.regularizer.reset_every` (steps) or
    `reset_every_latents` (latent actions: divided by batch_size x latents per clip, at least 1 step).

    Converted here, where the run's batch size, frames and encoder mode (after any command-line override)
    are known. None when the regularizer sets neither.
    """
    model = config_lib.resolve(config.model)
    options = config_lib.regularizer(model).trainer
    if options.get("reset_every_latents") is None:
        return options.get("reset_every")
    per_step = config.batch_size * latents_per_clip(model.encoder, sources.num_frames(config.data))
    return max(1, options["reset_every_latents"] // per_step)


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
    reset_every = reset_period(config) if codebook is not None else None
    codebook_size = codebook.shape[0] if reset_every else None
    make_state = functools.partial(init_state, system, optimizer, codebook_size=codebook_size)
    shardings = sharding.state_shardings(jax.eval_shape(make_state, rng), mesh)
    if abstract_frozen:
        shapes = jax.eval_shape(system.frozen_params, rng)
        frozen = sharding.abstract_like(shapes, sharding.param_shardings(shapes, mesh))
    else:
        frozen = system.frozen_params(rng, mesh)
    return Parts(system, optimizer, trainable, make_state, shardings, frozen, reset_every, rng)
