"""The optimiser: Muon on hidden weight matrices, AdamW on everything else (paper §6).

    grads -> clip by global norm (over all trainable grads) -> multi_transform by param_labels:
        "muon":  optax.contrib.muon     (Newton-Schulz-orthogonalised Nesterov momentum), lr muon_lr
        "adamw": optax.adamw            lr adamw_lr, b1/b2
    each with its own linear-warmup + cosine schedule and decoupled weight decay (multiplied by the lr,
    as in PyTorch and optax), applied to weight matrices only.

Built on a system's *trainable* params only (lawm.systems), so the frozen encoder gets no state.
`use_muon = False` (optional; default True) sends every parameter to AdamW, as the paper trains its
controllers (paper §8.5).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import ml_collections
import optax

MUON, ADAMW = "muon", "adamw"

# The paper's values (lr, warmup, weight decay) plus our choices where it is silent (betas, clipping).
_DEFAULTS = dict(
    muon_lr=0.02,
    adamw_lr=6.25e-4,
    b1=0.9,
    b2=0.999,
    weight_decay=0.04,
    warmup_fraction=0.1,
    clip_norm=1.0,
    muon_momentum=0.95,  # Muon's Nesterov momentum (Jordan et al.'s default; not stated in the paper)
)


def optim_config(total_steps: int = 30_000) -> ml_collections.ConfigDict:
    """The paper's optimiser settings (paper §6) for a run of `total_steps` updates."""
    return ml_collections.ConfigDict(dict(_DEFAULTS, total_steps=total_steps))


_OPTIONAL = dict(use_muon=True)


def validate_optim_config(config) -> None:
    """Raises a one-line ValueError naming the first bad `optim.*` field."""
    valid = [*_DEFAULTS, "total_steps", *_OPTIONAL]
    for key in config:
        if key not in valid:
            raise ValueError(f"optim has no field {key!r} (valid: {', '.join(valid)})")
    if not isinstance(config.get("use_muon", True), bool):
        raise ValueError(f"optim.use_muon must be a bool, got {config.get('use_muon')!r}")
    for key in [*_DEFAULTS, "total_steps"]:
        if key not in config:
            raise ValueError(f"optim.{key} is missing")
    steps = config.total_steps
    if not isinstance(steps, int) or isinstance(steps, bool) or steps <= 0:
        raise ValueError(f"optim.total_steps must be a positive integer, got {steps!r}")

    def number(key, ok, rule):
        value = config[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or math.isnan(value)
            or not ok(value)
        ):
            raise ValueError(f"optim.{key} must be {rule}, got {value!r}")

    for key in ("muon_lr", "adamw_lr", "weight_decay"):
        number(key, lambda v: 0 <= v < math.inf, "a finite number >= 0")
    for key in ("b1", "b2", "muon_momentum", "warmup_fraction"):
        number(key, lambda v: 0 <= v < 1, "in [0, 1)")
    number("clip_norm", lambda v: v > 0, "> 0 (use inf to disable clipping)")


def _key_name(key) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def path_str(path) -> str:
    """A tree path as `world_model/blocks/0/attention/query/kernel`."""
    return "/".join(_key_name(k) for k in path)


def _is_muon(path, leaf) -> bool:
    names = [_key_name(k) for k in path]
    return len(leaf.shape) == 2 and names[-1] == "kernel" and "blocks" in names


def param_labels(trainable, use_muon: bool = True):
    """Same-structure tree of "muon" | "adamw" (works on arrays or jax.ShapeDtypeStruct leaves).

    Muon gets the 2-D `kernel`s inside transformer blocks (attention q/k/v/proj, MLP fc1/fc2, the AdaLN
    modulation Linear). Everything else goes to AdamW: the input/output projections (`embed`, `head`), the
    latent embedding MLP, norms, biases, learned tokens and step embeddings, the VQ codebook. Muon's
    orthogonalised update treats a matrix as a linear map between hidden spaces whose every direction
    matters equally; that fits hidden layers, not embeddings/readouts (whose rows/columns are tied to
    specific inputs or output dims) nor vectors, which is why Jordan et al. and the Muon docs keep those
    on AdamW. With use_muon False, everything is "adamw".
    """
    return jax.tree_util.tree_map_with_path(
        lambda p, x: MUON if use_muon and _is_muon(p, x) else ADAMW, trainable
    )


def decay_mask(trainable):
    """True where weight decay applies: weight matrices (`kernel` leaves) only.

    Biases, norm scales/biases, learned tokens and step embeddings and the VQ codebook are not decayed
    (standard practice: shrinking them towards 0 biases the model rather than regularising it; the codebook
    must track the latents' scale).
    """
    return jax.tree_util.tree_map_with_path(lambda p, x: _key_name(p[-1]) == "kernel", trainable)


def learning_rate_schedule(
    peak: float, total_steps: int, warmup_fraction: float = 0.1, end_value: float = 0.0
):
    """Linear warmup from 0 to `peak` over the first `warmup_fraction` of steps, then cosine to `end_value`.

    The step count is the number of updates already applied, so update 0 uses lr 0 when there is warmup.
    """
    if not isinstance(total_steps, int) or total_steps <= 0:
        raise ValueError(f"total_steps must be a positive integer, got {total_steps!r}")
    if not 0 <= warmup_fraction < 1:
        raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction!r}")
    warmup_steps = min(round(warmup_fraction * total_steps), total_steps - 1)
    if warmup_steps == 0:
        return optax.cosine_decay_schedule(peak, total_steps, alpha=end_value / peak if peak else 0.0)
    return optax.warmup_cosine_decay_schedule(0.0, peak, warmup_steps, total_steps, end_value)


def make_optimizer(config, trainable) -> optax.GradientTransformation:
    """The optimiser for `trainable` (a params tree without the encoder; arrays or ShapeDtypeStructs).

    `config` is the `optim` ConfigDict (see `optim_config`), or a config that has one under `.optim`.
    Muon runs through `optax.contrib.muon`, which only ever sees the "muon" leaves (all 2-D), so its
    built-in AdamW branch for non-2-D params stays empty; AdamW leaves go to a separate `optax.adamw`.
    """
    if isinstance(config, Mapping | ml_collections.ConfigDict) and "optim" in config:
        config = config.optim
    validate_optim_config(config)
    labels = param_labels(trainable, config.get("use_muon", True))
    mask = decay_mask(trainable)
    muon_schedule = learning_rate_schedule(config.muon_lr, config.total_steps, config.warmup_fraction)
    adamw_schedule = learning_rate_schedule(config.adamw_lr, config.total_steps, config.warmup_fraction)
    muon = optax.contrib.muon(
        learning_rate=muon_schedule,
        beta=config.muon_momentum,
        weight_decay=config.weight_decay,  # every Muon leaf is a kernel: all decayed
        nesterov=True,
    )
    adamw = optax.adamw(
        learning_rate=adamw_schedule,
        b1=config.b1,
        b2=config.b2,
        weight_decay=config.weight_decay,
        mask=mask,
    )
    return optax.chain(
        optax.clip_by_global_norm(config.clip_norm),
        optax.multi_transform({MUON: muon, ADAMW: adamw}, labels),
    )


def describe(labels, trainable) -> str:
    """A short table of the parameter split, printed once by the trainer."""
    flat_labels = jax.tree_util.tree_leaves_with_path(labels)
    flat_params = jax.tree.leaves(trainable)
    flat_decay = jax.tree.leaves(decay_mask(trainable))
    rows = [f"{'label':<6} {'tensors':>8} {'params':>12} {'decayed':>8}  examples"]
    for label in (MUON, ADAMW):
        picked = [
            (path_str(p), x, d)
            for (p, lab), x, d in zip(flat_labels, flat_params, flat_decay, strict=True)
            if lab == label
        ]
        size = sum(math.prod(x.shape) for _, x, _ in picked)
        decayed = sum(d for _, _, d in picked)
        examples = ", ".join(p for p, _, _ in picked[:3]) + (", ..." if len(picked) > 3 else "")
        rows.append(f"{label:<6} {len(picked):>8} {size:>12,} {decayed:>8}  {examples}")
    return "\n".join(rows)
