"""The latent action world model as a system (task "world_model"): pure functions of a params dict.

    video -> frozen encoder -> states s_0..s_{T-1}
    (s_t, s_{t+1}) -> inverse dynamics -> raw latent -> regularizer -> z_t
    s_{0..t}, z_{0..t} -> world model -> prediction of s_{t+1}
    loss = mean |prediction - s_{t+1}| over all t (teacher forcing) + regularizer loss

Params are a plain nested dict {"encoder", "idm", "world_model", "regularizer"} of arrays, so the trainer,
the evaluators and the planner jit, shard, checkpoint and optimise them like any pytree. The encoder's
entry is frozen: its output goes through stop_gradient and the trainer gives it no optimiser state.

Dimension keys (lawm's table): B batch, F frames, H/W pixels, T state steps (a rollout's T context states),
U latents a rollout is given (T + steps - 1), N tokens per step, E state dim, L latent dim.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from absl import logging
from flax import nnx

from lawm import config as config_lib
from lawm import sharding
from lawm.models import layers
from lawm.models.encoder import VideoEncoder, normalize_video
from lawm.models.idm import InverseDynamics
from lawm.models.world_model import WorldModel

Params = dict[str, Any]
TRAINABLE = ("idm", "world_model", "regularizer")


def normalize_states(states):
    """Parameter-free LayerNorm over each token's features (in float32)."""
    states = states.astype(jnp.float32)
    mean = states.mean(-1, keepdims=True)
    var = jnp.square(states - mean).mean(-1, keepdims=True)
    return (states - mean) * jax.lax.rsqrt(var + layers.LAYER_NORM_EPS)


@functools.lru_cache(maxsize=64)
def _abstract(module_class, **kwargs):
    """(graph definition, number of parameters) of `module_class(**kwargs)`, from an abstract module:
    nothing is allocated. Cached (graph definitions are immutable): tracing a ViT-L's initialisers takes
    seconds, and configs, evaluators and tests build the same parts many times."""
    graphdef, state = nnx.split(nnx.eval_shape(lambda: module_class(**kwargs, rngs=nnx.Rngs(0))))
    return graphdef, sum(x.size for x in jax.tree.leaves(state))


class WorldModelSystem:
    """Frozen encoder + IDM + regularizer + world model, built from a model config (lawm.config)."""

    task = "world_model"
    trainable = TRAINABLE
    # A batch carries uint8 `video` or precomputed `encoder_states` (already normalised); clip records
    # may also hold a robot's `states`, which are not read.
    batch_keys = {"video": None, "encoder_states": None}
    evaluator = "latent_actions"  # the trainer's periodic evaluation: do latents carry each clip's motion?

    def __init__(self, model_config):
        model_config = config_lib.resolve(model_config)
        self.config = model_config
        options = config_lib.regularizer(model_config)
        self.regularizer = options.fn
        self.regularizer_kwargs, self.regularizer_init_kwargs = options.apply, options.init
        enc, idm, wm = model_config.encoder, model_config.idm, model_config.world_model
        h, w = config_lib.image_hw(enc)
        self.grid_hw = (h // enc.patch_size, w // enc.patch_size)

        compute = model_config.compute
        speed = dict(attention=compute["attention"], remat=compute["remat"], scan=compute["scan"])

        def pick(part, *extra, dtype=compute["dtype"]):  # constructor arguments: the part's sizes + compute
            sizes = {k: part[k] for k in ("width", "depth", "num_heads", "mlp_ratio", *extra)}
            return sizes | speed | {"dtype": jnp.dtype(dtype)}

        latent_dim = model_config.latent_dim
        self._builders = {
            "encoder": functools.partial(
                VideoEncoder,
                **pick(enc, "patch_size", "tubelet_size", "causal", dtype=compute["encoder_dtype"]),
            ),
            "idm": functools.partial(
                InverseDynamics,
                state_dim=enc.width,
                out_dim=latent_dim * self.regularizer.raw_dim_factor,
                pairing=idm.pairing,
                **pick(idm),
            ),
            "world_model": functools.partial(
                WorldModel,
                state_dim=enc.width,
                latent_dim=latent_dim,
                residual=wm.residual,
                **pick(wm, "cond_dim"),
            ),
        }
        self._abstract = {name: _abstract(b.func, **b.keywords) for name, b in self._builders.items()}

    # -- parameters ------------------------------------------------------------------------------
    def init(self, rng) -> Params:
        """Random-init params. Pure in `rng`: jit it with out_shardings to create them already sharded."""
        names = [*self._builders, "regularizer"]
        keys = dict(zip(names, jax.random.split(rng, len(names)), strict=True))
        params = {
            name: nnx.to_pure_dict(nnx.state(build(rngs=nnx.Rngs(keys[name]))))
            for name, build in self._builders.items()
        }
        params["regularizer"] = self.regularizer.init_params(
            keys["regularizer"], self.config.latent_dim, **self.regularizer_init_kwargs
        )
        return params

    def param_counts(self) -> dict[str, int]:
        """Parameters per part, from shapes only (jax.eval_shape: no allocation)."""
        regularizer = jax.eval_shape(
            lambda key: self.regularizer.init_params(
                key, self.config.latent_dim, **self.regularizer_init_kwargs
            ),
            jax.random.key(0),
        )
        counts = {name: count for name, (_, count) in self._abstract.items()}
        return counts | {"regularizer": sum(x.size for x in jax.tree.leaves(regularizer))}

    def frozen_encoder(self, rng, shardings=None):
        """The frozen encoder's params: the weights `encoder.checkpoint` names, else random from rng."""
        path = self.config.encoder.get("checkpoint")
        if not path:
            return jax.jit(lambda key: self.init(key)["encoder"], out_shardings=shardings)(rng)
        from lawm import weights

        spec, params = weights.load(path)
        logging.info("Frozen encoder: loaded %s (%s)", path, spec)
        # Host numpy arrays: device_put copies them (a replicated put of device arrays may alias on CPU).
        return jax.device_put(params, shardings) if shardings is not None else jax.device_put(params)

    def frozen_params(self, rng, mesh=None) -> Params:
        """The parts the trainer does not train ({"encoder": ...}), placed on `mesh` (FSDP) if given."""
        shardings = None
        if mesh is not None:
            shardings = sharding.param_shardings(jax.eval_shape(self.init, rng)["encoder"], mesh)
        return {"encoder": self.frozen_encoder(rng, shardings)}

    def _module(self, name: str, params: Params):
        return nnx.merge(self._abstract[name][0], params[name])

    # -- the pieces --------------------------------------------------------------------------------
    def encode(self, params: Params, video_BFHWC):
        """uint8 video (B, F, H, W, 3) -> frozen states (B, T, N, E), normalised if the config says so."""
        states = self._module("encoder", params)(normalize_video(video_BFHWC))
        states = jax.lax.stop_gradient(states)
        return normalize_states(states) if self.config.normalize_states else states

    def regularized_latents(self, params: Params, states_BTNE, *, rng=None, train: bool = False):
        """States -> (z (B, T-1, L), regularizer loss, regularizer metrics, raw IDM output)."""
        raw = self._module("idm", params)(states_BTNE, self.grid_hw)
        z, loss, metrics = self.regularizer.apply(
            raw, params["regularizer"], rng=rng, train=train, **self.regularizer_kwargs
        )
        return z, loss, metrics, raw

    def infer_latents(self, params: Params, states_BTNE, *, rng=None, train: bool = False):
        """The latent action z_t of each transition s_t -> s_{t+1}: (B, T-1, L). Eval mode by default."""
        return self.regularized_latents(params, states_BTNE, rng=rng, train=train)[0]

    def predict(self, params: Params, states_BTNE, latents_BTL):
        """Teacher-forced predictions: output t is the prediction of s_{t+1} from s_{0..t}, z_{0..t}."""
        return self._module("world_model", params)(states_BTNE, latents_BTL, self.grid_hw)

    def predict_next(self, params: Params, context_BTNE, latents_BTL):
        """The state after the context, given one latent per context step: (B, N, E)."""
        return self.predict(params, context_BTNE, latents_BTL)[:, -1]

    def rollout(self, params: Params, context_BTNE, latents_BUL, steps: int):
        """Autoregressive rollout: `steps` predicted states (B, steps, N, E) after T context states.

        latents_BUL holds z_0..z_{T+steps-2}: one per context step, then one per predicted step except the
        last. Each prediction is fed back as the next input. The sequence buffer has a fixed length (the
        block-causal mask keeps the not-yet-filled tail from mattering), so the loop compiles once.
        """
        B, T, N, E = context_BTNE.shape
        length = T + steps - 1
        if latents_BUL.shape[1] != length:
            raise ValueError(
                f"rollout of {steps} steps after {T} context states needs {length} latents, "
                f"got {latents_BUL.shape[1]}"
            )
        buffer = jnp.concatenate([context_BTNE, jnp.zeros((B, steps - 1, N, E), context_BTNE.dtype)], axis=1)

        def step(i, carry):
            buffer, out = carry
            prediction = self.predict(params, buffer, latents_BUL)[:, T - 1 + i]
            # The last prediction is never an input; clamping its slot keeps the write in bounds.
            buffer = jax.lax.dynamic_update_index_in_dim(
                buffer, prediction.astype(buffer.dtype), jnp.minimum(T + i, length - 1), axis=1
            )
            return buffer, jax.lax.dynamic_update_index_in_dim(out, prediction, i, axis=1)

        out = jnp.zeros((B, steps, N, E), jnp.float32)
        return jax.lax.fori_loop(0, steps, step, (buffer, out))[1]

    # -- training ------------------------------------------------------------------------------------
    def states_of(self, params: Params, batch):
        """A batch carries either `video` (uint8 frames) or precomputed `encoder_states` (normalised)."""
        return batch["encoder_states"] if "encoder_states" in batch else self.encode(params, batch["video"])

    def loss_fn(self, params: Params, batch, rng, train: bool = True):
        """Teacher-forced L1 over all steps + regularizer loss. Returns (loss, aux).

        The prediction loss is the element-wise mean of |prediction - target| over batch x steps x tokens x
        features (B x (T-1) x N x E). The paper's text reads as a sum over a state's tokens and features,
        which is N*E times ours: a regularizer coefficient c here (sparse's l1, noisy's beta) equals
        c x N*E against the summed loss, and a coefficient c_p meant for the summed loss is c_p / (N*E)
        here. For the ViT-L recipe N = 256 tokens per state (16 x 16 patches of 256 px) and E = 1024, so
        N*E = 262,144. The presets use the paper's numbers with this mean (README "Model").

        aux["metrics"]: float32 scalars to log. aux["code_counts"] / aux["raw_latents"]: only for
        regularizers with a codebook, for the trainer's dead-code reset.
        """
        states = self.states_of(params, batch)
        z, reg_loss, reg_metrics, raw = self.regularized_latents(params, states, rng=rng, train=train)
        predictions = self.predict(params, states[:, :-1], z)
        targets = states[:, 1:].astype(jnp.float32)
        prediction_loss = jnp.abs(predictions.astype(jnp.float32) - targets).mean()
        loss = prediction_loss + reg_loss
        metrics = {
            "loss": loss,
            "prediction_loss": prediction_loss,
            "regularizer_loss": reg_loss,
            # The copy-last-state baseline: what a model that predicts "nothing moves" would score.
            "copy_last_l1": jnp.abs(states[:, :-1].astype(jnp.float32) - targets).mean(),
        }
        aux = {}
        if "code_counts" in reg_metrics:
            reg_metrics = dict(reg_metrics)
            aux["code_counts"] = reg_metrics.pop("code_counts")
            aux["raw_latents"] = raw
        metrics.update({f"latent/{k}": v for k, v in reg_metrics.items()})
        aux["metrics"] = metrics
        return loss, aux
