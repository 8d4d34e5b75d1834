"""Latent-action regularizers: turn the IDM's raw output into the latent action z and a loss.

Every regularizer is a pure function

    fn(raw, params, *, rng, train, **hparams) -> (z, loss, metrics)

- ``raw``: ``(..., R)``; all leading dims are flattened into Z latents for statistics, so under a
  sharded jit the statistics are over the global batch (B x (T-1)).
- ``params``: trainable regularizer params (``{}`` except ``discrete``: ``{"codebook": (V, L)}``).
- ``z``: ``(..., L)``; ``loss``: float32 scalar; ``metrics``: float32 scalars (``discrete`` adds
  ``code_counts``, int32 ``(V,)``), always including :func:`latent_stats` of z.

Paper §5; `sparse`'s docstring states our two deviations from its printed form.

Dimension keys: R raw IDM output dim, L latent dim, Z latents pooled over a batch (B x (T-1)), V codebook
entries.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable

import jax
import jax.numpy as jnp

# |z| below this counts as "zero" in the near_zero_frac metric (sparse latents are only approximately 0).
NEAR_ZERO_THRESHOLD = 1e-2
# noisy: exp(20) ~ 5e8 keeps sigma^2 finite in float32/bf16 and exp(-30) ~ 1e-13 keeps the KL's
# -logvar term from exploding; the IDM's readout can otherwise emit extreme values early in training.
LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0
# sparse: added to the variance under the sqrt so its gradient stays finite for a collapsed dim (VICReg).
VAR_EPS = 1e-4
# Regularizer statistics are cheap; full float32 matmuls keep them (and VQ's argmin) exact on GPU/TPU.
_HIGHEST = jax.lax.Precision.HIGHEST


def _flat(x):
    """(..., L) -> (Z, L) float32 (any last dim: raw (..., R) -> (Z, R))."""
    return x.reshape(-1, x.shape[-1]).astype(jnp.float32)


def _safe_norm(x_ZL):
    """Row L2 norms (Z,) with gradient 0 (not NaN) at an all-zero row."""
    sq_Z = jnp.sum(x_ZL * x_ZL, axis=-1)
    pos_Z = sq_Z > 0
    return jnp.where(pos_Z, jnp.sqrt(jnp.where(pos_Z, sq_Z, 1.0)), 0.0)


def latent_stats(z):
    """Shared statistics of latents z (..., L): mean L1 norm, mean L2 norm, fraction of near-zero entries."""
    z_ZL = _flat(z)
    return {
        "l1": jnp.mean(jnp.sum(jnp.abs(z_ZL), axis=-1)),
        "l2": jnp.mean(_safe_norm(z_ZL)),
        "near_zero_frac": jnp.mean((jnp.abs(z_ZL) < NEAR_ZERO_THRESHOLD).astype(jnp.float32)),
    }


def none(raw, params, *, rng, train):
    """Unconstrained baseline: z = raw, no loss (the IDM can leak the whole next state; it should cheat)."""
    del params, rng, train
    return raw, jnp.zeros((), jnp.float32), latent_stats(raw)


def deterministic(raw, params, *, rng, train):
    """No-action baseline: z = 0, so the world model must predict from past states alone."""
    del params, rng, train
    z = jnp.zeros_like(raw)
    return z, jnp.zeros((), jnp.float32), latent_stats(z)


def sparse(raw, params, *, rng, train, l1=0.01, l2=1.0, var=0.1, cov=0.001, mean=0.1, scale=1.0):
    """Energy + VCM sparsity regularizer (paper §5.1); z = raw.

    With z = raw flattened to z_ZL (Z latents x L dims), computed in float32:

        E(z)     = l2 * max(sqrt(L) - ||z||_2, 0) + l1 * ||z||_1
        variance = var  * (1/L) sum_d max(1 - sqrt(Var_d + 1e-4), 0)        (unbiased Var)
        cov.     = cov  * (1/(L(L-1))) sum_{i!=j} C_ij^2                     (unbiased covariance C)
        mean     = mean * (1/L) sum_d (mean_n z_nd)^2
        loss     = scale * (variance + cov. + mean + mean_n E(z_n))

    `scale` (not in the paper) weighs the whole regularizer against the prediction loss at once. With the
    coefficients as printed (scale 1), small models on the synthetic world learn to ignore their latents:
    the constraints are met by features that say nothing about the action, before the world model has
    learned to read the latent. See experiments/configs/synthetic_eval.py for the scale that works there.

    Two deliberate deviations from the formulas as printed:
      1. E uses ||z||_2, not ||z||_2^2: with unit variance per dim ||z||_2^2 ~ L >> sqrt(L), so the
         printed hinge would never be active and could not stop the norm from shrinking.
      2. The mean term squares the per-dim means; the printed (1/(ZL)) sum_ij z_ij is linear and
         unbounded below (the model could drive it to -inf by shifting every entry down).
    """
    del params, rng, train
    z_ZL = _flat(raw)
    n, d = z_ZL.shape
    energy = jnp.mean(
        l2 * jnp.maximum(jnp.sqrt(float(d)) - _safe_norm(z_ZL), 0.0) + l1 * jnp.sum(jnp.abs(z_ZL), axis=-1)
    )
    mean_L = jnp.mean(z_ZL, axis=0)
    zc_ZL = z_ZL - mean_L
    # max(., 1) keeps a single-latent batch finite instead of NaN; the terms are meaningless there anyway.
    cov_LL = jnp.matmul(zc_ZL.T, zc_ZL, precision=_HIGHEST) / max(n - 1, 1)
    var_L = jnp.diagonal(cov_LL)
    std_L = jnp.sqrt(var_L + VAR_EPS)
    variance_loss = var * jnp.mean(jnp.maximum(1.0 - std_L, 0.0))
    off_diag_sq = jnp.sum(cov_LL**2) - jnp.sum(var_L**2)
    covariance_loss = cov * off_diag_sq / max(d * (d - 1), 1)
    mean_loss = mean * jnp.mean(mean_L**2)
    loss = scale * (variance_loss + covariance_loss + mean_loss + energy)
    metrics = latent_stats(raw) | {
        "energy": energy,
        "variance_loss": variance_loss,
        "covariance_loss": covariance_loss,
        "mean_loss": mean_loss,
        "std_mean": jnp.mean(jnp.sqrt(var_L)),
    }
    return raw, loss.astype(jnp.float32), metrics


def noisy(raw, params, *, rng, train, beta=5e-5):
    """VAE-like regularizer (paper §5.2): raw (..., 2L) = [mu, logvar]; loss = beta*KL(N(mu,s^2)||N(0,1)).

    train: z = mu + exp(logvar/2) * eps (reparameterised), eps = jax.random.normal(rng, mu.shape, float32),
    i.e. ``rng`` is used directly (not split) for the one draw; eval (train=False): z = mu exactly.
    KL = 0.5 * sum_L (mu^2 + exp(logvar) - 1 - logvar), summed over the L dims, averaged over latents.
    The paper prints -beta * KL (an ELBO sign convention / typo); as a loss to minimise it enters with +beta.
    """
    del params
    if raw.shape[-1] % 2:
        raise ValueError(f"noisy needs an even raw dim (mean and log-variance), got {raw.shape[-1]}")
    half = raw.shape[-1] // 2
    mu = raw[..., :half]
    mu_ZL = _flat(mu)
    logvar_ZL = jnp.clip(_flat(raw[..., half:]), LOGVAR_MIN, LOGVAR_MAX)
    sigma_ZL = jnp.exp(0.5 * logvar_ZL)
    if train:
        if rng is None:
            raise ValueError("noisy regularizer needs an rng when train=True")
        eps = jax.random.normal(rng, mu.shape, jnp.float32)
        z = (mu.astype(jnp.float32) + sigma_ZL.reshape(mu.shape) * eps).astype(raw.dtype)
    else:
        z = mu
    kl = jnp.mean(0.5 * jnp.sum(mu_ZL**2 + jnp.exp(logvar_ZL) - 1.0 - logvar_ZL, axis=-1))
    metrics = latent_stats(z) | {"kl": kl, "sigma_mean": jnp.mean(sigma_ZL)}
    return z, (beta * kl).astype(jnp.float32), metrics


def discrete(raw, params, *, rng, train, commitment=0.25):
    """Vector quantisation as in UniVLA (paper §5.3): raw (..., L) -> nearest code of codebook (V, L).

    z = raw + sg(e - raw) (straight-through: dz/draw = I, no codebook gradient through z);
    loss = mean((sg(raw) - e)^2) + commitment * mean((raw - sg(e))^2), means over all elements, so the
    codebook learns only from the first (codebook) term. metrics["code_counts"] (V,) int32 counts how many
    latents picked each code in this call; the trainer accumulates it for :func:`reset_dead_codes`.

    One code per latent action: each transition's raw (L,) vector (L = model.latent_dim, 128 in the paper's
    recipe) is quantised whole to a single code, so a transition carries log2(V) bits. UniVLA's VQ instead
    quantises several smaller codes per transition (a short sequence of action tokens); we follow the
    paper's one-latent-per-transition setup and do not split z. The trainer options ``reset_every`` (steps)
    or ``reset_every_latents`` (latent actions, converted to steps by lawm.step) set the dead-code reset.
    """
    del rng, train
    codebook_VL = params["codebook"]
    num_codes, dim = codebook_VL.shape
    if raw.shape[-1] != dim:
        raise ValueError(f"discrete: raw dim {raw.shape[-1]} != codebook dim {dim}")
    x_ZL = _flat(raw)
    cb_VL = codebook_VL.astype(jnp.float32)
    # ||x - e||^2 = ||x||^2 - 2 x.e + ||e||^2, without materialising a (Z, V, L) tensor.
    dist_ZV = (
        jnp.sum(x_ZL**2, axis=-1, keepdims=True)
        - 2.0 * jnp.matmul(x_ZL, cb_VL.T, precision=_HIGHEST)
        + jnp.sum(cb_VL**2, axis=-1)
    )
    idx_Z = jnp.argmin(jax.lax.stop_gradient(dist_ZV), axis=-1)
    e_ZL = cb_VL[idx_Z]
    e = e_ZL.reshape(raw.shape)
    z = raw + jax.lax.stop_gradient(e.astype(raw.dtype) - raw)
    codebook_loss = jnp.mean((jax.lax.stop_gradient(x_ZL) - e_ZL) ** 2)
    commitment_loss = commitment * jnp.mean((x_ZL - jax.lax.stop_gradient(e_ZL)) ** 2)
    counts_V = jnp.bincount(idx_Z, length=num_codes).astype(jnp.int32)
    p_V = counts_V.astype(jnp.float32) / x_ZL.shape[0]
    # 0 * log 0 = 0; the inner where keeps log away from 0.
    entropy = -jnp.sum(jnp.where(p_V > 0, p_V * jnp.log(jnp.where(p_V > 0, p_V, 1.0)), 0.0))
    metrics = latent_stats(z) | {
        "codebook_loss": codebook_loss,
        "commitment_loss": commitment_loss,
        "code_usage": jnp.mean((counts_V > 0).astype(jnp.float32)),
        "perplexity": jnp.exp(entropy),
        "code_counts": counts_V,
    }
    return z, (codebook_loss + commitment_loss).astype(jnp.float32), metrics


def init_codebook(rng, codebook_size, latent_dim):
    """Codebook (V, L) float32 ~ U(-1/V, 1/V), as UniVLA."""
    bound = 1.0 / codebook_size
    return jax.random.uniform(rng, (codebook_size, latent_dim), jnp.float32, -bound, bound)


def reset_dead_codes(codebook, counts, latents, rng):
    """Re-seed dead codes (accumulated count 0) from distinct latents of the batch, without replacement.

    codebook (V, L), counts (V,), latents (..., L) -> (new_codebook (V, L), reseeded_V (V,) bool).

    The dead codes are put in a random order and the k-th of them takes the k-th latent of a random
    permutation of the Z latents, so no two re-seeded codes come from the same latent and each one is the
    nearest code of the latent that seeded it. With more dead codes than latents only Z of them (a random
    choice) are re-seeded; the others are returned unchanged and, if still unused, wait for the next reset.
    reseeded_V marks the re-seeded rows (the trainer zeroes their optimiser state); every other row is
    returned bit-identical. Jittable: static shapes (two permutations, a cumsum and a where).
    """
    lat_ZL = jax.lax.stop_gradient(latents).reshape(-1, latents.shape[-1])
    num_latents, num_codes = lat_ZL.shape[0], codebook.shape[0]
    order_rng, pick_rng = jax.random.split(rng)
    dead_V = counts == 0
    order_V = jax.random.permutation(order_rng, num_codes)  # dead codes are ranked in this random order
    rank_V = jnp.zeros((num_codes,), jnp.int32).at[order_V].set(jnp.cumsum(dead_V[order_V]) - 1)
    reseeded_V = dead_V & (rank_V < num_latents)
    perm_Z = jax.random.permutation(pick_rng, num_latents)
    pick_V = perm_Z[jnp.clip(rank_V, 0, num_latents - 1)]
    new = jnp.where(reseeded_V[:, None], lat_ZL[pick_V].astype(codebook.dtype), codebook)
    return new, reseeded_V


def _no_params(rng, latent_dim):
    del rng, latent_dim
    return {}


def _init_discrete(rng, latent_dim, codebook_size=1024):
    return {"codebook": init_codebook(rng, codebook_size, latent_dim)}


@dataclasses.dataclass(frozen=True)
class Regularizer:
    apply: Callable
    raw_dim_factor: int = 1  # raw dim = factor * latent_dim; noisy needs 2 (mean and log-variance)
    init_params: Callable = _no_params  # (rng, latent_dim, **hparams) -> params dict
    trainer_keys: tuple[str, ...] = ()  # config keys consumed by the trainer, not by apply/init_params


REGULARIZERS: dict[str, Regularizer] = {
    "none": Regularizer(none),
    "deterministic": Regularizer(deterministic),
    "sparse": Regularizer(sparse),
    "noisy": Regularizer(noisy, raw_dim_factor=2),
    "discrete": Regularizer(
        discrete, init_params=_init_discrete, trainer_keys=("reset_every", "reset_every_latents")
    ),
}


def get(name):
    """The registered Regularizer called `name`; ValueError listing the valid names otherwise."""
    if name not in REGULARIZERS:
        raise ValueError(f"unknown regularizer {name!r} (valid: {', '.join(REGULARIZERS)})")
    return REGULARIZERS[name]


def _keywords(fn, skip):
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    params = inspect.signature(fn).parameters.values()
    return [p.name for p in params if p.kind in kinds and p.name not in skip]


def split_hparams(name, config_dict):
    """Route a regularizer config (minus "name") to (apply_kwargs, init_kwargs, trainer_kwargs).

    A key accepted by several consumers goes to each; a key accepted by none raises ValueError.
    """
    reg = get(name)
    apply_keys = _keywords(reg.apply, ("raw", "params", "rng", "train"))
    init_keys = _keywords(reg.init_params, ("rng", "latent_dim"))
    apply_kw, init_kw, trainer_kw = {}, {}, {}
    for key, value in config_dict.items():
        if key not in apply_keys and key not in init_keys and key not in reg.trainer_keys:
            valid = ", ".join([*apply_keys, *init_keys, *reg.trainer_keys]) or "none"
            raise ValueError(f"regularizer {name!r} has no option {key!r} (valid: {valid})")
        if key in apply_keys:
            apply_kw[key] = value
        if key in init_keys:
            init_kw[key] = value
        if key in reg.trainer_keys:
            trainer_kw[key] = value
    return apply_kw, init_kw, trainer_kw
