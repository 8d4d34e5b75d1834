"""Probes from latents to the true actions, where the data has them (synthetic world, DROID, RECON).

Latent actions are camera-relative and spatially localised (paper §8.4): a latent alone need not
determine the real action (an agent's displacement also depends on where the agent is). Besides the
ridge probe from the latent alone (`probe_r2/<action>`, reported by the latent_actions evaluator), two
probes, each fit on the first half of the clips and scored (held-out R^2 per action component) on the
second:
  - `probe_state_r2/<action>`: a small MLP that sees the latent and the previous state (its top principal
    components), and as a control `probe_state_only_r2/<action>`: the same MLP without the latent, which
    says how much of the action the past alone gives away.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lawm.evals import common, latent_actions


@functools.lru_cache(maxsize=16)
def _features_fn(system):
    @jax.jit
    def features(params, video):
        states = system.encode(params, video)
        z = system.infer_latents(params, states)
        return z, states[:, :-1].reshape(*z.shape[:2], -1)  # the latent and the state it starts from

    return features


def mlp_probe(x_fit, y_fit, x_test, y_test, *, hidden=64, max_steps=3000, lr=1e-3, weight_decay=1e-2, seed=0):
    """Held-out R^2 (per output) of a 2-hidden-layer MLP fit with AdamW on standardised data, full batch.

    The last fifth of the fit set is held back for early stopping (checked every 100 steps), so the probe
    does not memorise a few hundred transitions."""
    mu, sd = x_fit.mean(0), x_fit.std(0) + 1e-6
    y_mu, y_sd = y_fit.mean(0), y_fit.std(0) + 1e-6
    standard = lambda x: jnp.asarray((x - mu) / sd, jnp.float32)  # noqa: E731
    cut = len(x_fit) * 4 // 5
    x_train, x_val, x_test = standard(x_fit[:cut]), standard(x_fit[cut:]), standard(x_test)
    target = jnp.asarray((y_fit - y_mu) / y_sd, jnp.float32)
    y_train, y_val = target[:cut], target[cut:]
    keys = jax.random.split(jax.random.key(seed), 3)
    dims = [x_fit.shape[1], hidden, hidden, y_fit.shape[1]]
    params = [
        (jax.random.normal(k, (a, b)) * np.sqrt(1.0 / a), jnp.zeros(b))
        for k, a, b in zip(keys, dims[:-1], dims[1:], strict=True)
    ]

    def apply(params, x):
        for i, (w, b) in enumerate(params):
            x = x @ w + b
            if i < len(params) - 1:
                x = jax.nn.gelu(x)
        return x

    optimizer = optax.adamw(lr, weight_decay=weight_decay)
    mse = lambda p, x, y: jnp.mean((apply(p, x) - y) ** 2)  # noqa: E731

    @jax.jit
    def train_chunk(carry):
        def step(carry, _):
            params, opt_state = carry
            grads = jax.grad(mse)(params, x_train, y_train)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        carry = jax.lax.scan(step, carry, None, length=100)[0]
        return carry, mse(carry[0], x_val, y_val)

    carry, best, best_loss = (params, optimizer.init(params)), params, np.inf
    for _ in range(max_steps // 100):
        carry, val_loss = train_chunk(carry)
        if float(val_loss) < best_loss:
            best, best_loss = carry[0], float(val_loss)
    predicted = np.asarray(apply(best, x_test)) * y_sd + y_mu
    residual = ((predicted - y_test) ** 2).sum(0)
    total = ((y_test - y_test.mean(0)) ** 2).sum(0)
    return 1.0 - residual / np.maximum(total, 1e-12), total > 1e-9


def _pca(x_fit, x_test, components):
    mu = x_fit.mean(0)
    _, _, vt = np.linalg.svd(x_fit - mu, full_matrices=False)
    basis = vt[:components].T
    return (x_fit - mu) @ basis, (x_test - mu) @ basis


def evaluate(context: common.Context, batches, *, state_components: int = 32) -> dict:
    system, params = context.model.system, context.model.params
    latents, states, actions = [], [], []
    for batch in batches:
        if "actions" not in batch:
            continue
        z, s = jax.device_get(_features_fn(system)(params, batch["video"]))
        latents.append(z)
        states.append(s)
        actions.append(latent_actions.transition_actions(batch["actions"], z.shape[1], system.config.encoder))
    if not latents:
        return {}
    z, s, a = (np.concatenate(x).astype(np.float64) for x in (latents, states, actions))
    names = context.action_names or [f"action_{i}" for i in range(a.shape[-1])]
    results = {}
    half = len(z) // 2
    flat = lambda x: x.reshape(-1, x.shape[-1])  # noqa: E731
    s_fit, s_test = _pca(flat(s[:half]), flat(s[half:]), state_components)
    z_fit, z_test, y_fit, y_test = flat(z[:half]), flat(z[half:]), flat(a[:half]), flat(a[half:])
    for prefix, x_fit, x_test in (
        ("probe_state_r2", np.concatenate([z_fit, s_fit], 1), np.concatenate([z_test, s_test], 1)),
        ("probe_state_only_r2", s_fit, s_test),
    ):
        r2, valid = mlp_probe(x_fit, y_fit, x_test, y_test)
        scores = {f"{prefix}/{n}": float(v) for n, v, ok in zip(names, r2, valid, strict=True) if ok}
        results |= scores | {f"{prefix}/max": max(scores.values(), default=float("nan"))}
    return results
