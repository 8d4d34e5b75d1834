"""LPIPS (Zhang et al. 2018, v0.1, AlexNet backbone) in pure JAX, with weights read from local files.

Nothing is downloaded and nothing is unpickled. Two sets of weights are needed:
  * the ImageNet AlexNet of torchvision, `alexnet-owt-7be5be79.pth` (keys `features.{0,3,6,8,10}.weight/bias`;
    `classifier.*` is ignored). torchvision caches it under `~/.cache/torch/hub/checkpoints/` after
    `torchvision.models.alexnet(weights="IMAGENET1K_V1")`; a `.safetensors` copy of it also loads;
  * the linear layers of the lpips package, `lpips/weights/v0.1/alex.pth` inside its installed folder
    (keys `lin{0..4}.model.1.weight`, shape (1, C, 1, 1)).
`load("alexnet-owt-7be5be79.pth,alex.pth")` reads the pair; `save_combined` writes both sets into one
`.safetensors` (torch names and layouts), which `load` also reads, as it does a combined `.pth` or a full
`lpips.LPIPS` state dict (`net.sliceK.N.*` names). `.pth` / `.pt` files are read with
`torch.load(weights_only=True)`, so only they need torch; every key and shape is checked, and a bad file fails
with a one-line ValueError naming the file and key.

`distance(params, x_BHWC, y_BHWC)` is the LPIPS v0.1 distance of images in [-1, 1], channels last, at least
32 px: scaling layer, AlexNet features at its five ReLUs, channel unit-normalisation, squared difference,
non-negative 1x1 linear layers, spatial mean, summed over layers. It is jittable and differentiable (a
perceptual loss; where a feature vector is exactly zero, the ReLU's gradient keeps the result finite).

Dimension keys: B images, H height, W width, C channels (colours, or a feature map's). The conv params keep
XLA's kernel layout name in their keys, "w_HWIO" and "b_O" (kernel height, width, input and output
channels): a layout string of jax.lax.conv_general_dilated, not lawm's keys.
"""

from __future__ import annotations

import os
import re

import jax
import jax.numpy as jnp
import numpy as np

from lawm import files

# torchvision AlexNet `features` indices of the five convs: (index, out, in, kernel, stride, padding).
# A 3x3 / 2 max pool follows the first two ReLUs (after their taps).
CONVS = (
    (0, 64, 3, 11, 4, 2),
    (3, 192, 64, 5, 1, 2),
    (6, 384, 192, 3, 1, 1),
    (8, 256, 384, 3, 1, 1),
    (10, 256, 256, 3, 1, 1),
)
SHIFT_C = (-0.030, -0.088, -0.188)
SCALE_C = (0.458, 0.448, 0.450)
EPS = 1e-10
MIN_SIZE = 32


def _conv_keys(index: int) -> tuple[str, str]:
    return f"features.{index}.weight", f"features.{index}.bias"


def _lin_key(layer: int) -> str:
    return f"lin{layer}.model.1.weight"


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    """Every key that `load` needs, in torch layout."""
    shapes = {}
    for layer, (index, out, cin, kernel, _, _) in enumerate(CONVS):
        weight, bias = _conv_keys(index)
        shapes[weight] = (out, cin, kernel, kernel)
        shapes[bias] = (out,)
        shapes[_lin_key(layer)] = (1, out, 1, 1)
    return shapes


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__


# ------------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------------
def _read_safetensors(file: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        return load_file(file)
    except Exception as error:  # safetensors raises several types for a bad file
        raise ValueError(f"{file}: not a readable safetensors file ({_one_line(error)})") from None


def _read_torch(file: str) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        raise ValueError(f"{file}: reading .pth / .pt files needs torch (pip install torch)") from None
    try:
        state = torch.load(file, weights_only=True, map_location="cpu")  # never unpickle code
    except Exception as error:  # torch raises many types for a bad file
        raise ValueError(f"{file}: not a loadable weights-only PyTorch file ({_one_line(error)})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{file}: holds a {type(state).__name__}, not a state dict")
    return {k: v.detach().float().numpy() for k, v in state.items() if isinstance(v, torch.Tensor)}


def _read(file: str) -> dict[str, np.ndarray]:
    """One file's tensors; `module.` prefixes dropped, lpips' `net.sliceK.N.` renamed `features.N.`."""
    if not os.path.isfile(file):
        raise ValueError(f"{file}: no such file")
    if file.endswith(".safetensors"):
        state = _read_safetensors(file)
    elif file.endswith((".pth", ".pt")):
        state = _read_torch(file)
    else:
        raise ValueError(f"{file}: unknown weights format (expected .pth, .pt or .safetensors)")
    out = {}
    for key, value in state.items():
        name = re.sub(r"^(module\.)+", "", key)
        out[re.sub(r"^net\.slice\d\.(\d+)\.", r"features.\1.", name)] = value
    return out


def load(path_or_paths) -> dict:
    """LPIPS params from one combined file or a comma-separated pair "alexnet.pth,alex.pth" (or a list).

    Returns {"conv": [{"w_HWIO", "b_O"}] * 5, "lin": [w_C] * 5} of float32 jax arrays. Where both files
    hold a key, the later file wins.
    """
    files = path_or_paths.split(",") if isinstance(path_or_paths, str) else list(path_or_paths)
    files = [name for name in (os.fspath(f).strip() for f in files) if name]
    if not files:
        raise ValueError(f"{path_or_paths!r}: no weights file given")
    state, source = {}, {}
    for file in files:
        for key, value in _read(file).items():
            state[key], source[key] = value, file
    for key, shape in _expected_shapes().items():
        if key not in state:
            where = "lpips/weights/v0.1/alex.pth" if key.startswith("lin") else "alexnet-owt-7be5be79.pth"
            raise ValueError(
                f"{','.join(files)}: missing key {key} (expected shape {shape}; it is in {where}: "
                "pass 'alexnet.pth,alex.pth' or one combined file)"
            )
        if tuple(state[key].shape) != shape:
            raise ValueError(
                f"{source[key]}: key {key} has shape {tuple(state[key].shape)}, expected {shape}"
            )
    get = lambda key: np.asarray(state[key], np.float32)
    conv = []
    for index, *_ in CONVS:
        weight, bias = _conv_keys(index)
        conv.append({"w_HWIO": jnp.asarray(get(weight).transpose(2, 3, 1, 0)), "b_O": jnp.asarray(get(bias))})
    lin = [jnp.asarray(get(_lin_key(layer)).reshape(-1)) for layer in range(len(CONVS))]
    return {"conv": conv, "lin": lin}


def save_combined(params: dict, path) -> None:
    """Writes `params` as one .safetensors with the torch names and layouts, which `load` reads back."""
    from safetensors.numpy import save

    path = os.fspath(path)
    if not path.endswith(".safetensors"):
        raise ValueError(f"{path}: save_combined writes .safetensors files only")
    state = {}
    for layer, (index, *_) in enumerate(CONVS):
        weight, bias = _conv_keys(index)
        state[weight] = np.asarray(params["conv"][layer]["w_HWIO"], np.float32).transpose(3, 2, 0, 1)
        state[bias] = np.asarray(params["conv"][layer]["b_O"], np.float32)
        state[_lin_key(layer)] = np.asarray(params["lin"][layer], np.float32).reshape(1, -1, 1, 1)
    files.write_atomic(path, save({k: np.ascontiguousarray(v) for k, v in state.items()}))


# ------------------------------------------------------------------------------------------------
# Distance
# ------------------------------------------------------------------------------------------------
def _features(params: dict, x_BHWC: jax.Array, precision) -> list[jax.Array]:
    """AlexNet activations after each of its five ReLUs."""
    x_BHWC = (x_BHWC - jnp.asarray(SHIFT_C, jnp.float32)) / jnp.asarray(SCALE_C, jnp.float32)
    taps = []
    for layer, (_, _, _, _, stride, pad) in enumerate(CONVS):
        if layer in (1, 2):  # the pools follow the taps of layers 0 and 1
            x_BHWC = jax.lax.reduce_window(x_BHWC, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "VALID")
        conv = params["conv"][layer]
        x_BHWC = jax.lax.conv_general_dilated(
            x_BHWC,
            conv["w_HWIO"],
            window_strides=(stride, stride),
            padding=((pad, pad), (pad, pad)),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            precision=precision,
        )
        x_BHWC = jax.nn.relu(x_BHWC + conv["b_O"])
        taps.append(x_BHWC)
    return taps


def _unit_normalise(x_BHWC: jax.Array) -> jax.Array:
    """x / (|x|_C + 1e-10), as lpips' `normalize_tensor`."""
    return x_BHWC / (jnp.sqrt(jnp.sum(x_BHWC**2, axis=-1, keepdims=True)) + EPS)


def distance(params: dict, x_BHWC, y_BHWC, *, precision=jax.lax.Precision.HIGHEST) -> jax.Array:
    """(B,) float32 LPIPS v0.1 distances between images in [-1, 1], channels last, at least 32 px."""
    x_BHWC = jnp.asarray(x_BHWC, jnp.float32)
    y_BHWC = jnp.asarray(y_BHWC, jnp.float32)
    if x_BHWC.shape != y_BHWC.shape or x_BHWC.ndim != 4 or x_BHWC.shape[-1] != 3:
        raise ValueError(
            f"lpips.distance: needs two (B, H, W, 3) images, got {x_BHWC.shape} and {y_BHWC.shape}"
        )
    if min(x_BHWC.shape[1:3]) < MIN_SIZE:
        raise ValueError(f"lpips.distance: images must be at least {MIN_SIZE} px, got {x_BHWC.shape[1:3]}")
    batch = x_BHWC.shape[0]
    taps = _features(params, jnp.concatenate([x_BHWC, y_BHWC]), precision)
    total_B = jnp.zeros((batch,), jnp.float32)
    for tap_BHWC, w_C in zip(taps, params["lin"], strict=True):
        diff_BHWC = (_unit_normalise(tap_BHWC[:batch]) - _unit_normalise(tap_BHWC[batch:])) ** 2
        total_B = total_B + jnp.mean(
            jnp.einsum("bhwc,c->bhw", diff_BHWC, w_C, precision=precision), axis=(1, 2)
        )
    return total_B
