"""Shared test helpers."""

import jax
import numpy as np
from flax import nnx


def perturb(tree, key, scale=0.1):
    """Adds N(0, scale^2) noise to every leaf: zero-initialised weights (AdaLN-zero) become non-zero, so
    perturbation tests can fail when a dependency exists."""
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    noisy = [x + scale * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys, strict=True)]
    return jax.tree.unflatten(treedef, noisy)


def randomize_module(module, key, scale=0.1):
    """In place: perturb every nnx.Param of a module."""
    graphdef, state = nnx.split(module)
    nnx.update(module, perturb(state, key, scale))


def max_abs_diff(a, b):
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())
