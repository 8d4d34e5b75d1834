"""The frame-causal decoder as a trainable system (paper §7): frozen encoder states -> frames.

    video -> frozen encoder (that of the world model config, `config.model`) -> states s_0..s_{T-1}
    s_{0..t} -> FrameDecoder -> the frames of step t, in normalize_video's pixel space
    loss = mean |frames - normalize_video(video)| (+ lpips_weight * LPIPS when decoder.lpips_weights is set)

The decoder reads exactly the states the world model is trained on (same encoder weights for the same
seed, normalised as `System.encode` normalises them), so it can show a world model's predicted states as
pixels and score them with LPIPS. A system (lawm.systems) for `config.task = "decoder"`; its held-out
evaluation is lawm.evals.decoder.

Params: {"encoder", "decoder"} (+ "lpips" from `frozen_params` when LPIPS is used); only "decoder" trains.

Dimension keys: B batch, F frames, T state steps, N tokens per step, E state dim, H/W pixels, C channels.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from lawm import config as config_lib
from lawm import sharding
from lawm.models.decoder import FrameDecoder, pixels_0_255, psnr, to_uint8
from lawm.models.encoder import normalize_video
from lawm.systems.world_model import WorldModelSystem

Params = dict[str, Any]
DECODER_FIELDS = ("width", "depth", "num_heads", "mlp_ratio", "lpips_weights", "lpips_weight")
_DECODER_STREAM = 0x0DEC  # folded into the run's rng for the decoder's init, apart from System's streams


def validate_decoder_config(decoder) -> dict:
    """The decoder's constructor and loss options; raises a one-line ValueError naming the bad field."""
    if decoder is None:
        raise ValueError("decoder is missing: task 'decoder' needs config.decoder (width, depth, num_heads)")
    unknown = sorted(set(decoder) - set(DECODER_FIELDS))
    if unknown:
        raise ValueError(f"decoder has no field {unknown[0]!r} (valid: {', '.join(DECODER_FIELDS)})")
    for field in ("width", "depth", "num_heads"):
        value = decoder.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"decoder.{field} must be a positive integer, got {value!r}")
    if decoder.width % decoder.num_heads:
        raise ValueError(
            f"decoder.width ({decoder.width}) is not divisible by decoder.num_heads ({decoder.num_heads})"
        )

    def number(field, default, ok, rule):
        value = decoder.get(field, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not ok(value):
            raise ValueError(f"decoder.{field} must be {rule}, got {value!r}")
        return float(value)

    mlp_ratio = number("mlp_ratio", 4.0, lambda v: 0 < v < math.inf and int(v * decoder.width) > 0, "> 0")
    lpips_weight = number("lpips_weight", 1.0, lambda v: 0 <= v < math.inf, "a finite number >= 0")
    lpips_weights = decoder.get("lpips_weights") or None  # "" (the configs' unset path) or None: L1 only
    if lpips_weights is not None and not isinstance(lpips_weights, str):
        raise ValueError(f"decoder.lpips_weights must be a path or empty, got {lpips_weights!r}")
    return dict(
        model=dict(
            width=decoder.width, depth=decoder.depth, num_heads=decoder.num_heads, mlp_ratio=mlp_ratio
        ),
        lpips_weights=lpips_weights,
        lpips_weight=lpips_weight,
    )


class DecoderSystem:
    """Frozen encoder + frame-causal decoder, from a trainer config with `model` and `decoder` fields."""

    task = "decoder"
    trainable = ("decoder",)
    batch_keys = {"video": None}
    evaluator = "decoder"

    def __init__(self, config):
        self.world = WorldModelSystem(config.model)  # validates the model config; owns the frozen encoder
        options = validate_decoder_config(config.get("decoder"))
        self.config = config
        self.grid_hw = self.world.grid_hw
        self.lpips_weights, self.lpips_weight = options["lpips_weights"], options["lpips_weight"]
        encoder = self.world.config.encoder  # the checkpoint's sizes when one is named
        self._build = functools.partial(
            FrameDecoder,
            state_dim=encoder.width,
            patch_size=encoder.patch_size,
            # A per-frame state stands for one frame; a tubelet state for tubelet_size frames.
            tubelet_size=config_lib.frames_per_state(encoder),
            **options["model"],
        )
        self._graphdef = nnx.split(nnx.eval_shape(lambda: self._build(rngs=nnx.Rngs(0))))[0]
        self._lpips_weights_cache = None

    # -- parameters ------------------------------------------------------------------------------
    def init(self, rng) -> Params:
        """Random-init params, pure in `rng`; "encoder" is WorldModelSystem(config.model).init(rng)'s."""
        decoder = self._build(rngs=nnx.Rngs(jax.random.fold_in(rng, _DECODER_STREAM)))
        return {"encoder": self.world.init(rng)["encoder"], "decoder": nnx.to_pure_dict(nnx.state(decoder))}

    def param_counts(self) -> dict[str, int]:
        """Parameters per part, from shapes only (no allocation)."""
        shapes = jax.eval_shape(self.init, jax.random.key(0))
        return {name: sum(x.size for x in jax.tree.leaves(tree)) for name, tree in shapes.items()}

    def frozen_params(self, rng, mesh=None) -> Params:
        """The world model run's frozen encoder (+ the LPIPS network's weights when the loss uses them)."""
        frozen = self.world.frozen_params(rng, mesh)
        if self.lpips_weights:
            weights = self._lpips_host()
            if mesh is None:
                frozen["lpips"] = jax.device_put(weights)
            else:
                frozen["lpips"] = jax.device_put(
                    weights, jax.tree.map(lambda _: sharding.replicated(mesh), weights)
                )
        return frozen

    def _lpips_host(self):
        """The LPIPS network's weights, loaded once per system."""
        if self._lpips_weights_cache is None:
            from lawm.models import lpips

            self._lpips_weights_cache = lpips.load(self.lpips_weights)
        return self._lpips_weights_cache

    # -- the pieces --------------------------------------------------------------------------------
    def encode(self, params: Params, video_BFHWC):
        """uint8 video (B, F, H, W, 3) -> frozen states (B, T, N, E), as the world model sees them."""
        return self.world.encode(params, video_BFHWC)

    def decode(self, params: Params, states_BTNE):
        """States (B, T, N, E) -> normalised frames (B, F, H, W, 3); frames of step t see s_0..s_t only."""
        return nnx.merge(self._graphdef, params["decoder"])(states_BTNE, self.grid_hw)

    def reconstruct(self, params: Params, video_BFHWC):
        """uint8 video -> its uint8 reconstruction through the encoder and the decoder."""
        return to_uint8(self.decode(params, self.encode(params, video_BFHWC)))

    def lpips(self, params: Params, frames_BFHWC, targets_BFHWC, clip: bool = True):
        """Per-clip mean LPIPS between two normalised videos: (B,). Needs decoder.lpips_weights."""
        from lawm.models import lpips

        weights = params["lpips"] if "lpips" in params else self._lpips_host()
        B, F = frames_BFHWC.shape[:2]
        unit = lambda v: (pixels_0_255(v, clip=clip) / 127.5 - 1.0).reshape(B * F, *v.shape[2:])  # noqa: E731
        return lpips.distance(weights, unit(frames_BFHWC), unit(targets_BFHWC)).reshape(B, F).mean(axis=1)

    # -- training ------------------------------------------------------------------------------------
    def loss_fn(self, params: Params, batch, rng=None, train: bool = True):
        """L1 in normalised pixel space (+ lpips_weight * LPIPS). Returns (loss, {"metrics": ...})."""
        del rng, train  # deterministic
        video = batch["video"]
        frames = self.decode(params, self.encode(params, video))
        targets = normalize_video(video)
        l1 = jnp.abs(frames - targets).mean()
        metrics = {
            "l1": l1,
            "psnr": psnr(pixels_0_255(frames), jnp.asarray(video, jnp.float32)).mean(),
        }
        loss = l1
        if self.lpips_weights:
            # Unclipped, so frames that overshoot [0, 255] still get a gradient back.
            metrics["lpips"] = self.lpips(params, frames, targets, clip=False).mean()
            loss = loss + self.lpips_weight * metrics["lpips"]
        metrics["loss"] = loss
        return loss, {"metrics": metrics}
