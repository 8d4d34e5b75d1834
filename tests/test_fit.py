"""Training signal: an unconstrained latent fits random motion; the no-action baseline provably cannot.

The clips form a binary tree: clip i's sprite makes move bit_k(i) at transition k, so at every transition
pairs of clips share their whole past and differ in the next state. A model that sees only the past
(regularizer `deterministic`, z = 0) must give such clips the same prediction, so its L1 loss cannot go
below a bound computed from the data (per element, the L1 distance to the median within each group). The
IDM sees s_{t+1}, so with regularizer `none` the latent can carry the move and the loss keeps falling.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lawm import config as config_lib
from lawm.systems.world_model import TRAINABLE
from lawm.systems.world_model import WorldModelSystem as System

CLIPS, TRANSITIONS, SIZE, PATCH = 8, 3, 32, 8


def tree_of_random_moves(seed=0):
    """uint8 video (CLIPS, 2*(TRANSITIONS+1), SIZE, SIZE, 3): a square sprite on a fixed texture."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 120, (SIZE, SIZE, 3))
    moves = rng.integers(-6, 7, (TRANSITIONS, 2, 2))  # (transition, bit, yx)
    moves[:, 1] = moves[:, 0] + rng.choice([-8, 8], (TRANSITIONS, 2))  # the two branches always differ
    video = np.zeros((CLIPS, 2 * (TRANSITIONS + 1), SIZE, SIZE, 3), np.uint8)
    for clip in range(CLIPS):
        position = np.array([12, 12])
        for step in range(TRANSITIONS + 1):
            frame = background.copy()
            y, x = np.clip(position, 0, SIZE - 8)
            frame[y : y + 8, x : x + 8] = (250, 230, 40)
            video[clip, 2 * step : 2 * step + 2] = frame  # both frames of the tubelet
            if step < TRANSITIONS:
                position = position + moves[step, (clip >> step) & 1]
    return video


def past_only_loss_bound(states):
    """The lowest mean L1 any predictor of s_{k+1} from s_{0..k} alone can reach on these clips."""
    states = np.asarray(states, np.float64)
    total = 0.0
    for k in range(TRANSITIONS):
        for group in range(2**k):  # clips sharing bits 0..k-1 share s_0..s_k
            targets = states[[c for c in range(CLIPS) if c % 2**k == group], k + 1]
            total += np.abs(targets - np.median(targets, axis=0)).sum()
    return total / states[:, 1:].size


def train(regularizer, states, steps=300):
    config = config_lib.tiny_model_config()
    config.encoder.update(image_size=SIZE, patch_size=PATCH)
    config.regularizer = dict(name=regularizer)
    system = System(config)
    params = system.init(jax.random.key(0))
    trainable = {k: params[k] for k in TRAINABLE}
    optimizer = optax.adam(3e-3)
    batch = {"encoder_states": states}

    @jax.jit
    def step(trainable, opt_state):
        grad_fn = jax.value_and_grad(lambda t: system.loss_fn({**params, **t}, batch, None)[0])
        loss, grads = grad_fn(trainable)
        updates, opt_state = optimizer.update(grads, opt_state, trainable)
        return optax.apply_updates(trainable, updates), opt_state, loss

    opt_state, losses = optimizer.init(trainable), []
    for _ in range(steps):
        trainable, opt_state, loss = step(trainable, opt_state)
        losses.append(float(loss))
    return np.array(losses)


def test_unconstrained_latent_fits_random_motion_and_no_action_model_cannot():
    config = config_lib.tiny_model_config()
    config.encoder.update(image_size=SIZE, patch_size=PATCH)
    system = System(config)
    states = jax.jit(system.encode)(system.init(jax.random.key(0)), tree_of_random_moves())
    bound = past_only_loss_bound(states)

    cheat = train("none", states)
    no_action = train("deterministic", states)
    assert cheat[-1] <= cheat[0] / 10, (cheat[0], cheat[-1])
    assert no_action.min() >= bound * (1 - 1e-4), (no_action.min(), bound)
    assert cheat[-1] < 0.75 * bound, (cheat[-1], bound)  # well below any past-only predictor
    assert jnp.isfinite(cheat).all() and jnp.isfinite(no_action).all()
