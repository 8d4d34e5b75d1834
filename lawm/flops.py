"""Analytic FLOP count of one training step of the latent action world model, for MFU.

Counted: every matmul (2 FLOPs per multiply-add), i.e. the linear layers, the two attention products and
the optimiser's Newton-Schulz iterations. Not counted: elementwise work (norms, softmax, GELU, RoPE,
the regularizer, AdamW), a few percent at the widths we train. Per part of `WorldModelSystem.loss_fn`'s step:

  encoder       forward only (frozen, under stop_gradient): patch embedding + blocks.
  idm           forward + backward over the B(T-1) pairs of 2N+1 tokens (N+1 with channel pairing).
  world_model   forward + backward over the T-1 context steps of N tokens (block-causal attention), the
                latent MLP and the per-step AdaLN modulation.
  optimizer     Muon's Newton-Schulz iterations on each Muon matrix (batch-independent).

The backward pass costs twice the forward for each matmul (the gradients w.r.t. its input and its weight),
except where the input needs no gradient: the IDM's and the world model's state embeddings read the
frozen encoder's states, so they pay only the weight gradient.

Block-causal attention: a query at step t attends (t+1)N keys. *Model* FLOPs (what MFU counts, as
MaxText and PaLM do) include only those pairs: on average (T+1)/(2T) of a full attention. XLA's einsum
attention computes every pair and masks afterwards, so `executed=True` counts the full T x T (this is what
XLA's cost analysis of the compiled step sees; `remat` recomputation is in neither count).

Dimension keys: B clips, F frames, T state steps, N tokens per step, E state width, D width, L latent dim,
Y conditioning width.
"""

from __future__ import annotations

import dataclasses

import jax

from lawm import config as config_lib
from lawm import optim
from lawm.systems.world_model import WorldModelSystem

NEWTON_SCHULZ_STEPS = 5  # optax.contrib.muon's default, which lawm.optim uses


@dataclasses.dataclass(frozen=True)
class StepFlops:
    encoder: float
    idm: float
    world_model: float
    optimizer: float

    @property
    def model(self) -> float:
        """What MFU counts: the network's forward (+ backward where trained), not the optimiser."""
        return self.encoder + self.idm + self.world_model

    @property
    def total(self) -> float:
        return self.model + self.optimizer


def _blocks(tokens: float, width: int, depth: int, mlp_ratio: float, attended_keys: float) -> float:
    """Forward FLOPs of `depth` pre-LN blocks over `tokens` queries each attending `attended_keys` keys."""
    projections = 4 * 2 * width * width  # q, k, v, proj
    mlp = 2 * 2 * width * int(width * mlp_ratio)
    attention = 2 * 2 * attended_keys * width  # q.k and weights.v, summed over heads
    return depth * tokens * (projections + mlp + attention)


def _causal_keys(steps: int, tokens_per_step: int, executed: bool) -> float:
    """Mean keys a query attends under a block-causal mask over `steps` steps."""
    return steps * tokens_per_step if executed else tokens_per_step * (steps + 1) / 2


def newton_schulz_flops(shape, steps: int = NEWTON_SCHULZ_STEPS) -> float:
    """optax's quintic iteration on an (m, n) matrix, m <= n: A = X X^T, A A, (bA + cAA) X."""
    m, n = sorted(shape)
    return steps * (4 * m * m * n + 2 * m**3)


def train_step_flops(model_config, batch: int, frames: int, *, use_muon: bool = True, executed=False):
    """FLOPs of one step on `batch` clips of `frames` frames (see the module doc for what is counted)."""
    config = config_lib.resolve(model_config)
    enc, idm, wm = config.encoder, config.idm, config.world_model
    h, w = config_lib.image_hw(enc)
    N = (h // enc.patch_size) * (w // enc.patch_size)
    per_frame = enc.causal == "per_frame"
    T = frames if per_frame else frames // enc.tubelet_size
    E = enc.width

    # Frozen encoder, forward. per_frame: B*F sequences of one duplicated-frame tubelet each.
    patch = enc.tubelet_size * enc.patch_size**2 * 3
    if per_frame:
        keys = N
    elif enc.causal == "tubelet":
        keys = _causal_keys(T, N, executed)
    else:
        keys = T * N
    encoder = batch * T * N * 2 * patch * E + _blocks(batch * T * N, E, enc.depth, enc.mlp_ratio, keys)

    # IDM: B(T-1) sequences of a readout token + 2N state tokens ("tokens" pairing) or N tokens of 2E
    # features ("channels"), full attention. The embedding's multiply-adds are the same either way.
    raw_dim = config.latent_dim * config_lib.regularizer(config).fn.raw_dim_factor
    state_tokens = N if idm.pairing == "channels" else 2 * N
    pairs, seq = batch * (T - 1), state_tokens + 1
    idm_embed = pairs * 2 * N * 2 * E * idm.width
    idm_rest = _blocks(pairs * seq, idm.width, idm.depth, idm.mlp_ratio, seq)
    idm_rest += pairs * 2 * idm.width * raw_dim  # the readout head
    idm_flops = 2 * idm_embed + 3 * idm_rest

    # World model over the T-1 context steps.
    steps, D, Y, L = T - 1, wm.width, wm.cond_dim, config.latent_dim
    tokens = batch * steps * N
    wm_embed = tokens * 2 * E * D
    conditioning = batch * steps * 2 * (L * Y + Y * Y + wm.depth * Y * 6 * D)
    wm_rest = (
        conditioning
        + _blocks(tokens, D, wm.depth, wm.mlp_ratio, _causal_keys(steps, N, executed))
        + tokens * 2 * D * E
    )
    wm_flops = 2 * wm_embed + 3 * wm_rest

    optimizer = 0.0
    if use_muon:
        system = WorldModelSystem(config)
        shapes = jax.eval_shape(system.init, jax.random.key(0))
        trainable = {k: shapes[k] for k in system.trainable}
        labels = optim.param_labels(trainable, use_muon=True)
        optimizer = sum(
            newton_schulz_flops(x.shape)
            for x, label in zip(jax.tree.leaves(trainable), jax.tree.leaves(labels), strict=True)
            if label == optim.MUON
        )
    return StepFlops(float(encoder), float(idm_flops), float(wm_flops), float(optimizer))
