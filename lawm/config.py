"""Model configuration: the paper's defaults (the one place they live), a tiny preset, and validation.

Experiment configs (experiments/configs/*.py) start from `model_config()` and override fields. Parts read
a model config only through `resolve` (validated once, every default filled in, the encoder checkpoint's
sizes applied) and `regularizer` (the regularizer's options routed to its function, its init and the
trainer); a bad field fails there, before any compute, with a one-line error naming it.
"""

from __future__ import annotations

import dataclasses

import ml_collections

from lawm import regularizers
from lawm.models import layers
from lawm.models.encoder import CAUSAL_MODES
from lawm.models.idm import PAIRINGS


def model_config() -> ml_collections.ConfigDict:
    """The paper's model: frozen V-JEPA 2-L encoder, 12 x 768 IDM, ViT-L world model, 128-d latents."""
    return ml_collections.ConfigDict(
        dict(
            latent_dim=128,
            normalize_states=True,  # layer-normalise each state token (no params): inputs and targets
            encoder=dict(
                width=1024,
                depth=24,
                num_heads=16,
                mlp_ratio=4.0,
                patch_size=16,
                tubelet_size=2,
                image_size=256,
                causal="tubelet",
                # Released weights: a Hugging Face V-JEPA 2 folder or a `lawm-convert-vjepa2` output. The
                # checkpoint's own sizes replace width/depth/num_heads/mlp_ratio/patch_size/tubelet_size.
                # None: random init from the seed (tests, the quickstart).
                checkpoint=None,
            ),
            # pairing: how (s_t, s_{t+1}) become tokens, "tokens" | "channels" (lawm.models.idm).
            idm=dict(width=768, depth=12, num_heads=12, mlp_ratio=4.0, pairing="tokens"),
            # residual: predict s_{t+1} - s_t (not the paper's; see lawm.models.world_model).
            world_model=dict(width=1024, depth=24, num_heads=16, mlp_ratio=4.0, cond_dim=128, residual=False),
            # `name` picks the function in lawm.regularizers; other keys are its options (see the registry).
            regularizer=dict(name="sparse", l1=0.01),
            compute=compute_config(),
        )
    )


COMPUTE_DTYPES = ("float32", "bfloat16")


def compute_config() -> ml_collections.ConfigDict:
    """How the step computes, not what: every switch leaves the function (and the params) unchanged.

    Measured effects: benchmarks/RESULTS.md ("Train step"). The paper-scale configs turn them on.
    """
    return ml_collections.ConfigDict(
        dict(
            dtype="float32",  # IDM + world model activations and matmuls; params and optimiser stay float32
            encoder_dtype="float32",  # the frozen encoder's forward (it has no backward: stop_gradient)
            attention="auto",  # auto | fused | cudnn | einsum (lawm.models.layers.dot_product_attention)
            remat="none",  # none | full | dots: what each block keeps for the backward pass
            scan=False,  # jax.lax.scan over each stack of blocks: each block is traced and compiled once
        )
    )


def tiny_model_config() -> ml_collections.ConfigDict:
    """A few-hundred-thousand-parameter model of the same shape, for tests and CPU runs (64 px input)."""
    config = model_config()
    config.latent_dim = 16
    config.encoder.update(width=48, depth=2, num_heads=4, patch_size=16, image_size=64)
    config.idm.update(width=48, depth=2, num_heads=4)
    config.world_model.update(width=64, depth=2, num_heads=4, cond_dim=32)
    return config


def _positive_int(config, path: str, minimum: int = 1):
    value = config
    for key in path.split("."):
        value = value[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"model.{path} must be {kind}, got {value!r}")
    return value


def image_hw(encoder_config) -> tuple[int, int]:
    size = encoder_config.image_size
    return (size, size) if isinstance(size, int) else tuple(size)


def frames_per_state(encoder_config) -> int:
    """How many video frames one state stands for: the tubelet, or 1 in per-frame mode."""
    return 1 if encoder_config.causal == "per_frame" else encoder_config.tubelet_size


def with_checkpoint_sizes(config):
    """A copy of the model config whose encoder sizes are those of `encoder.checkpoint` (if any)."""
    path = config.encoder.get("checkpoint")
    if not path:
        return config
    from lawm import weights  # reads JSON only

    spec = weights.read_spec(path)
    config = ml_collections.ConfigDict(config.to_dict())
    for field in ("width", "depth", "num_heads", "mlp_ratio", "patch_size", "tubelet_size"):
        config.encoder[field] = getattr(spec, field)
    return config


PARTS = ("encoder", "idm", "world_model", "compute")


def _with_defaults(config) -> ml_collections.ConfigDict:
    """A copy of `config` with every field it lacks taken from `model_config()` (configs saved before a
    field existed get its default); a field `model_config()` does not have raises, naming it."""
    defaults, given = model_config().to_dict(), dict(config.to_dict())
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"model has no field {unknown[0]!r} (valid: {', '.join(sorted(defaults))})")
    for part in PARTS:
        if part in given and given[part] is not None:
            fields = dict(given[part])
            extra = sorted(set(fields) - set(defaults[part]))
            if extra:
                raise ValueError(
                    f"model.{part} has unknown fields {extra} (valid: {', '.join(sorted(defaults[part]))})"
                )
            given[part] = {**defaults[part], **fields}
    return ml_collections.ConfigDict({**defaults, **given})


def resolve(config) -> ml_collections.ConfigDict:
    """The model config every part reads: validated, defaults filled in, the encoder checkpoint's sizes."""
    for part in ("encoder", "idm", "world_model"):
        if part not in config:
            raise ValueError(f"model.{part} is missing")
    if "name" not in config.get("regularizer", {}):
        raise ValueError("model.regularizer.name is missing")
    config = with_checkpoint_sizes(_with_defaults(config))  # an unreadable checkpoint fails, naming it
    _validate(config)
    return config


@dataclasses.dataclass(frozen=True)
class RegularizerOptions:
    """A regularizer config routed to its consumers: the function's, its init's and the trainer's options."""

    name: str
    fn: regularizers.Regularizer
    apply: dict
    init: dict
    trainer: dict


def regularizer(model_config) -> RegularizerOptions:
    """The regularizer `model.regularizer` names, with its options split by who reads them."""
    options = dict(model_config.regularizer)
    name = options.pop("name")
    apply, init, trainer = regularizers.split_hparams(name, options)
    return RegularizerOptions(name, regularizers.get(name), apply, init, trainer)


def validate_model_config(config) -> None:
    """Raises ValueError naming the first bad field; returns None when the config can build a model."""
    resolve(config)


def _validate(config) -> None:
    _positive_int(config, "latent_dim")
    for part in ("encoder", "idm", "world_model"):
        for field in ("width", "num_heads"):
            _positive_int(config, f"{part}.{field}")
        # A depth-0 encoder is a frozen patch embedding + LayerNorm: a cheap encoder for CPU runs.
        _positive_int(config, f"{part}.depth", minimum=0 if part == "encoder" else 1)
        if config[part].width % config[part].num_heads:
            raise ValueError(
                f"model.{part}.width ({config[part].width}) is not divisible by "
                f"model.{part}.num_heads ({config[part].num_heads})"
            )
    _positive_int(config, "world_model.cond_dim")
    if config.idm.pairing not in PAIRINGS:
        raise ValueError(f"model.idm.pairing must be one of {PAIRINGS}, got {config.idm.pairing!r}")
    if not isinstance(config.world_model.residual, bool):
        raise ValueError(f"model.world_model.residual must be a bool, got {config.world_model.residual!r}")
    encoder = config.encoder
    for field in ("patch_size", "tubelet_size"):
        _positive_int(config, f"encoder.{field}")
    if encoder.causal not in CAUSAL_MODES:
        raise ValueError(f"model.encoder.causal must be one of {CAUSAL_MODES}, got {encoder.causal!r}")
    for side in image_hw(encoder):
        if not isinstance(side, int) or side <= 0 or side % encoder.patch_size:
            raise ValueError(
                f"model.encoder.image_size {encoder.image_size!r} must be positive multiples "
                f"of encoder.patch_size ({encoder.patch_size})"
            )
    compute = config.compute
    for field in ("dtype", "encoder_dtype"):
        if compute[field] not in COMPUTE_DTYPES:
            raise ValueError(f"model.compute.{field} must be one of {COMPUTE_DTYPES}, got {compute[field]!r}")
    if compute["attention"] not in layers.ATTENTION_IMPLEMENTATIONS:
        raise ValueError(
            f"model.compute.attention must be one of {layers.ATTENTION_IMPLEMENTATIONS}, "
            f"got {compute['attention']!r}"
        )
    if compute["remat"] not in layers.REMAT_POLICIES:
        raise ValueError(
            f"model.compute.remat must be one of {tuple(layers.REMAT_POLICIES)}, got {compute['remat']!r}"
        )
    if not isinstance(compute["scan"], bool):
        raise ValueError(f"model.compute.scan must be a bool, got {compute['scan']!r}")
    trainer = regularizer(config).trainer
    periods = [k for k in ("reset_every", "reset_every_latents") if trainer.get(k) is not None]
    for key in periods:  # the VQ dead-code reset period, in steps or in latent actions
        _positive_int(config, f"regularizer.{key}")
    if len(periods) > 1:
        raise ValueError("model.regularizer sets both reset_every and reset_every_latents: give one")
