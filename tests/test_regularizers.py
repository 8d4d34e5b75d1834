"""Tests for lawm.regularizers against independent NumPy implementations written from the formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lawm import regularizers as R

RTOL = 1e-5
N, D = 64, 16


def _raw(shape, seed=0, scale=1.0, shift=0.0):
    return (np.random.default_rng(seed).normal(size=shape) * scale + shift).astype(np.float32)


def np_stats(z):
    z = np.asarray(z, np.float64).reshape(-1, np.shape(z)[-1])
    return {
        "l1": np.mean([np.sum(np.abs(row)) for row in z]),
        "l2": np.mean([np.sqrt(np.sum(row**2)) for row in z]),
        "near_zero_frac": np.mean(np.abs(z) < 1e-2),
    }


def np_sparse(z, l1, l2, var, cov, mean):
    z = np.asarray(z, np.float64).reshape(-1, np.shape(z)[-1])
    n, d = z.shape
    energy = np.mean([l2 * max(np.sqrt(d) - np.sqrt(np.sum(r**2)), 0.0) + l1 * np.sum(np.abs(r)) for r in z])
    mu = z.sum(0) / n
    C = np.zeros((d, d))
    for i in range(d):
        for j in range(d):
            C[i, j] = np.sum((z[:, i] - mu[i]) * (z[:, j] - mu[j])) / (n - 1)
    variance = var * np.mean([max(1.0 - np.sqrt(C[k, k] + 1e-4), 0.0) for k in range(d)])
    covariance = cov * sum(C[i, j] ** 2 for i in range(d) for j in range(d) if i != j) / (d * (d - 1))
    mean_t = mean * np.mean(mu**2)
    out = {
        "energy": energy,
        "variance_loss": variance,
        "covariance_loss": covariance,
        "mean_loss": mean_t,
        "std_mean": np.mean(np.sqrt(np.diag(C))),
        "loss": energy + variance + covariance + mean_t,
    }
    return out | np_stats(z)


# --- none / deterministic -------------------------------------------------------------------------------


def test_none_is_identity():
    raw = jnp.asarray(_raw((4, 5, D)))
    z, loss, m = R.none(raw, {}, rng=None, train=True)
    np.testing.assert_array_equal(z, raw)
    assert float(loss) == 0.0 and loss.dtype == jnp.float32
    for k, v in np_stats(raw).items():
        np.testing.assert_allclose(m[k], v, rtol=RTOL)


def test_deterministic_is_zero():
    raw = jnp.asarray(_raw((4, 5, D)))
    z, loss, m = R.deterministic(raw, {}, rng=None, train=True)
    assert z.shape == raw.shape
    assert not np.any(np.asarray(z)) and float(loss) == 0.0
    assert float(m["l1"]) == 0.0 and float(m["l2"]) == 0.0 and float(m["near_zero_frac"]) == 1.0
    # the trainer differentiates through every regularizer: no NaN from the L2 norm at z = 0
    g = jax.grad(lambda r: R.deterministic(r, {}, rng=None, train=True)[2]["l2"])(raw)
    assert np.all(np.isfinite(g))


# --- sparse ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hp",
    [
        {"l1": 0.4, "l2": 1.0, "var": 0.1, "cov": 0.001, "mean": 0.1},
        {"l1": 0.05, "l2": 2.0, "var": 0.7, "cov": 0.3, "mean": 1.5},
        {"l1": 0.01, "l2": 0.5, "var": 1.0, "cov": 0.01, "mean": 0.2},
    ],
)
def test_sparse_matches_numpy(hp):
    # small scale so the norm hinge and the variance hinge are both active; shifted so the mean term matters;
    # a few exact zeros and tiny entries so near_zero_frac is non-trivial
    raw = _raw((4, N // 4, D), scale=0.4, shift=0.3)
    raw[0, :3] = 0.0
    raw[1, :2, :5] = 1e-3
    want = np_sparse(raw, **hp)
    z, loss, m = R.sparse(jnp.asarray(raw), {}, rng=None, train=True, **hp)
    np.testing.assert_array_equal(z, raw)
    np.testing.assert_allclose(loss, want["loss"], rtol=RTOL)
    assert loss.dtype == jnp.float32 and loss.shape == ()
    for k in ("energy", "variance_loss", "covariance_loss", "mean_loss", "std_mean"):
        np.testing.assert_allclose(m[k], want[k], rtol=RTOL, err_msg=k)
    for k in ("l1", "l2", "near_zero_frac"):
        np.testing.assert_allclose(m[k], want[k], rtol=RTOL, err_msg=k)
    assert want["variance_loss"] > 0 and want["mean_loss"] > 0 and want["near_zero_frac"] > 0


def test_sparse_default_hparams_and_large_norm():
    # large norms: the L2 hinge is inactive, variance hinge inactive; only l1, cov, mean remain
    raw = _raw((N, D), seed=1, scale=3.0)
    want = np_sparse(raw, l1=0.01, l2=1.0, var=0.1, cov=0.001, mean=0.1)
    _, loss, m = R.sparse(jnp.asarray(raw), {}, rng=None, train=True)
    np.testing.assert_allclose(loss, want["loss"], rtol=RTOL)
    np.testing.assert_allclose(m["energy"], want["energy"], rtol=RTOL)
    assert float(m["variance_loss"]) == 0.0


def test_sparse_gradient_finite_at_zero_rows():
    raw = jnp.asarray(_raw((N, D))).at[:4].set(0.0)
    g = jax.grad(lambda r: R.sparse(r, {}, rng=None, train=True)[1])(raw)
    assert np.all(np.isfinite(g))


# --- noisy ----------------------------------------------------------------------------------------------


def _noisy_raw():
    raw = _raw((4, N // 4, 2 * D), seed=2)
    raw[..., D:] *= 2.0
    raw[0, 0, D] = 50.0  # beyond the clip: must be treated as logvar = 20
    raw[0, 1, D] = -80.0  # below the clip: treated as -30
    return raw


def np_kl(raw):
    raw = np.asarray(raw, np.float64).reshape(-1, raw.shape[-1])
    d = raw.shape[-1] // 2
    total = 0.0
    for row in raw:
        mu, lv = row[:d], np.clip(row[d:], -30, 20)
        total += 0.5 * np.sum(mu**2 + np.exp(lv) - 1 - lv)
    return total / raw.shape[0]


@pytest.mark.parametrize("beta", [5e-5, 1e-3])
def test_noisy_kl_and_loss(beta):
    raw = _noisy_raw()
    _, loss, m = R.noisy(jnp.asarray(raw), {}, rng=None, train=False, beta=beta)
    kl = np_kl(raw)
    np.testing.assert_allclose(m["kl"], kl, rtol=RTOL)
    np.testing.assert_allclose(loss, beta * kl, rtol=RTOL)
    sig = np.exp(np.clip(raw[..., D:].astype(np.float64), -30, 20) / 2)
    np.testing.assert_allclose(m["sigma_mean"], sig.mean(), rtol=RTOL)


def test_noisy_eval_returns_mu():
    raw = _noisy_raw()
    z, _, m = R.noisy(jnp.asarray(raw), {}, rng=jax.random.key(3), train=False)
    np.testing.assert_array_equal(z, raw[..., :D])
    for k, v in np_stats(raw[..., :D]).items():
        np.testing.assert_allclose(m[k], v, rtol=RTOL)


def test_noisy_train_reparameterised():
    raw = _noisy_raw()
    raw[0, 0, D] = 1.0  # keep sigma moderate so float32 rounding of the comparison stays tight
    key = jax.random.key(7)
    z, _, m = R.noisy(jnp.asarray(raw), {}, rng=key, train=True)
    eps = np.asarray(jax.random.normal(key, raw[..., :D].shape, jnp.float32), np.float64)
    want = raw[..., :D] + np.exp(np.clip(raw[..., D:].astype(np.float64), -30, 20) / 2) * eps
    assert z.shape == (4, N // 4, D)
    np.testing.assert_allclose(z, want, rtol=RTOL, atol=1e-6)
    for k, v in np_stats(want).items():
        if k != "near_zero_frac":  # a threshold count; rounding could flip an entry at the boundary
            np.testing.assert_allclose(m[k], v, rtol=RTOL)
    z2, _, _ = R.noisy(jnp.asarray(raw), {}, rng=jax.random.key(8), train=True)
    assert not np.allclose(z, z2)
    z3, _, _ = R.noisy(jnp.asarray(raw), {}, rng=key, train=True)
    np.testing.assert_array_equal(z, z3)


def test_noisy_errors():
    with pytest.raises(ValueError, match="rng"):
        R.noisy(jnp.zeros((3, 2 * D)), {}, rng=None, train=True)
    with pytest.raises(ValueError, match="even"):
        R.noisy(jnp.zeros((3, 2 * D + 1)), {}, rng=None, train=False)


# --- discrete -------------------------------------------------------------------------------------------

K = 12


def _vq_inputs():
    raw = _raw((4, N // 4, D), seed=4)
    codebook = _raw((K, D), seed=5, scale=0.8)
    return raw, codebook


def np_vq(raw, codebook, commitment):
    x = np.asarray(raw, np.float64).reshape(-1, raw.shape[-1])
    cb = np.asarray(codebook, np.float64)
    idx = np.array([np.argmin([np.sum((row - c) ** 2) for c in cb]) for row in x])
    e = cb[idx]
    mse = np.mean((x - e) ** 2)
    counts = np.array([np.sum(idx == k) for k in range(len(cb))])
    p = counts / len(x)
    ent = -sum(pk * np.log(pk) for pk in p if pk > 0)
    grad_cb = np.zeros_like(cb)
    for n in range(len(x)):
        grad_cb[idx[n]] += 2 * (e[n] - x[n]) / x.size
    return {
        "idx": idx,
        "e": e.reshape(raw.shape),
        "loss": (1 + commitment) * mse,
        "codebook_loss": mse,
        "commitment_loss": commitment * mse,
        "counts": counts,
        "usage": np.mean(counts > 0),
        "perplexity": np.exp(ent),
        "grad_cb": grad_cb,
    }


@pytest.mark.parametrize("commitment", [0.25, 1.3])
def test_discrete_matches_numpy(commitment):
    raw, cb = _vq_inputs()
    cb[3] = 100.0  # an unreachable code, so usage < 1 and counts has a zero
    want = np_vq(raw, cb, commitment)
    params = {"codebook": jnp.asarray(cb)}
    z, loss, m = R.discrete(jnp.asarray(raw), params, rng=None, train=True, commitment=commitment)
    np.testing.assert_allclose(z, want["e"], rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(loss, want["loss"], rtol=RTOL)
    np.testing.assert_allclose(m["codebook_loss"], want["codebook_loss"], rtol=RTOL)
    np.testing.assert_allclose(m["commitment_loss"], want["commitment_loss"], rtol=RTOL)
    assert m["code_counts"].dtype == jnp.int32 and m["code_counts"].shape == (K,)
    np.testing.assert_array_equal(m["code_counts"], want["counts"])
    assert int(m["code_counts"][3]) == 0 and int(np.sum(m["code_counts"])) == N
    np.testing.assert_allclose(m["code_usage"], want["usage"], rtol=RTOL)
    np.testing.assert_allclose(m["perplexity"], want["perplexity"], rtol=RTOL)
    for k, v in np_stats(want["e"]).items():
        np.testing.assert_allclose(m[k], v, rtol=RTOL, atol=1e-6)
    assert 1.0 < float(m["perplexity"]) <= K


def test_discrete_straight_through_gradient():
    raw, cb = _vq_inputs()
    raw = raw[0, :8]  # (8, D): a full jacobian stays small
    jac = jax.jacobian(lambda r: R.discrete(r, {"codebook": jnp.asarray(cb)}, rng=None, train=True)[0])(
        jnp.asarray(raw)
    )
    np.testing.assert_array_equal(np.asarray(jac).reshape(raw.size, raw.size), np.eye(raw.size))


def test_discrete_codebook_gradient_only_from_codebook_term():
    raw, cb = _vq_inputs()
    commitment = 0.7
    want = np_vq(raw, cb, commitment)

    def loss_fn(codebook, r):
        return R.discrete(r, {"codebook": codebook}, rng=None, train=True, commitment=commitment)[1]

    g_cb, g_raw = jax.grad(loss_fn, argnums=(0, 1))(jnp.asarray(cb), jnp.asarray(raw))
    np.testing.assert_allclose(g_cb, want["grad_cb"], rtol=1e-4, atol=1e-8)
    # raw receives only the commitment term: commitment * 2 * (raw - e) / numel
    np.testing.assert_allclose(g_raw, commitment * 2 * (raw - want["e"]) / raw.size, rtol=1e-4, atol=1e-8)


def test_init_codebook():
    cb = R.init_codebook(jax.random.key(0), 16, 8)
    assert cb.shape == (16, 8) and cb.dtype == jnp.float32
    assert float(jnp.max(jnp.abs(cb))) <= 1 / 16 and float(jnp.std(cb)) > 0.01


# --- reset_dead_codes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("jit", [False, True])
def test_reset_dead_codes(jit):
    cb = _raw((K, D), seed=6)
    counts = np.array([3, 0, 1, 0, 0, 9, 2, 0, 1, 1, 5, 0], np.int32)
    latents = _raw((4, 5, D), seed=7)
    fn = jax.jit(R.reset_dead_codes) if jit else R.reset_dead_codes
    new, reseeded = fn(jnp.asarray(cb), jnp.asarray(counts), jnp.asarray(latents), jax.random.key(1))
    new, reseeded = np.asarray(new), np.asarray(reseeded)
    assert new.shape == cb.shape and new.dtype == cb.dtype
    np.testing.assert_array_equal(reseeded, counts == 0)  # 5 dead codes, 20 latents: all re-seeded
    flat = latents.reshape(-1, D)
    for k in range(K):
        if counts[k]:
            np.testing.assert_array_equal(new[k], cb[k])  # bit-identical
        else:
            assert not np.array_equal(new[k], cb[k])
            assert any(np.array_equal(new[k], row) for row in flat), k
    assert len({new[k].tobytes() for k in np.flatnonzero(reseeded)}) == 5  # distinct latents
    # different rng, different picks (with 20 latents and 5 dead codes a full collision is ~impossible)
    new2, _ = fn(jnp.asarray(cb), jnp.asarray(counts), jnp.asarray(latents), jax.random.key(2))
    assert not np.array_equal(new, np.asarray(new2))


def test_reset_dead_codes_none_dead():
    cb = jnp.asarray(_raw((K, D), seed=6))
    new, reseeded = R.reset_dead_codes(
        cb, jnp.ones((K,), jnp.int32), jnp.asarray(_raw((7, D))), jax.random.key(0)
    )
    np.testing.assert_array_equal(new, cb)
    assert not np.asarray(reseeded).any()


# --- shapes, jit, registry ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(R.REGULARIZERS))
def test_registry_entries_run_under_jit(name):
    reg = R.get(name)
    params = reg.init_params(jax.random.key(0), D)
    raw = jnp.asarray(_raw((2, 3, D * reg.raw_dim_factor)))
    fn = jax.jit(lambda p, r, k: reg.apply(r, p, rng=k, train=True))
    z, loss, m = fn(params, raw, jax.random.key(1))
    assert z.shape == (2, 3, D) and loss.shape == () and loss.dtype == jnp.float32
    for k in ("l1", "l2", "near_zero_frac"):
        assert m[k].shape == () and m[k].dtype == jnp.float32
    assert np.isfinite(float(loss))


def test_discrete_init_params():
    reg = R.get("discrete")
    p = reg.init_params(jax.random.key(0), 32, codebook_size=16)
    assert p["codebook"].shape == (16, 32)
    assert R.get("sparse").init_params(jax.random.key(0), 32) == {}
    assert R.get("noisy").raw_dim_factor == 2 and R.get("sparse").raw_dim_factor == 1


def test_get_unknown_lists_names():
    with pytest.raises(ValueError) as ei:
        R.get("bogus")
    msg = str(ei.value)
    assert "bogus" in msg
    for name in ("none", "deterministic", "sparse", "noisy", "discrete"):
        assert name in msg


def test_split_hparams_routing():
    assert R.split_hparams("sparse", {"l1": 0.05, "cov": 0.01}) == ({"l1": 0.05, "cov": 0.01}, {}, {})
    assert R.split_hparams("noisy", {"beta": 1e-4}) == ({"beta": 1e-4}, {}, {})
    assert R.split_hparams("discrete", {"codebook_size": 16, "reset_every": 293, "commitment": 0.5}) == (
        {"commitment": 0.5},
        {"codebook_size": 16},
        {"reset_every": 293},
    )
    assert R.split_hparams("none", {}) == ({}, {}, {})


@pytest.mark.parametrize(
    "name,cfg,field",
    [
        ("sparse", {"l1": 0.1, "foo": 1}, "foo"),
        ("none", {"beta": 1.0}, "beta"),
        ("noisy", {"rng": 1}, "rng"),
        ("discrete", {"codebook": 3}, "codebook"),
    ],
)
def test_split_hparams_rejects_unknown(name, cfg, field):
    with pytest.raises(ValueError) as ei:
        R.split_hparams(name, cfg)
    msg = str(ei.value)
    assert f"regularizer '{name}' has no option '{field}'" in msg and "valid:" in msg and "\n" not in msg
