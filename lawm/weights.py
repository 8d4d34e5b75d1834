"""Released V-JEPA 2 weights -> our encoder's params. Nothing is downloaded and nothing is unpickled.

Three layouts are read:
  * a Hugging Face folder: `config.json` + `model.safetensors` (or a sharded `model.safetensors.index.json`),
    as `VJEPA2Model.save_pretrained` writes (e.g. facebook/vjepa2-vitl-fpc64-256);
  * the original PyTorch checkpoint (`vitl.pt`, ...): a dict with `target_encoder` / `encoder` entries whose
    keys may carry `module.` / `backbone.` prefixes and a fused `qkv`; read with
    `torch.load(weights_only=True)` only, and only when torch is installed;
  * our converted folder (`lawm-convert-vjepa2`): `encoder_spec.json` + an orbax checkpoint `params/`.
The encoder's size comes from the checkpoint itself; every key and shape is checked, and any mismatch fails
with one line naming the key. `model.encoder.checkpoint` accepts the Hugging Face folder or our folder.

The release expects RGB in [0, 1] normalised with the ImageNet mean/std (`encoder.normalize_video` does this
from uint8), 256 px (384 for the -384 models) and was trained on 16 then 64 frames; any frame count that
is a multiple of the tubelet and any resolution that is a multiple of the patch work, with RoPE positions
from the actual token grid.
"""

from __future__ import annotations

import dataclasses
import json
import re

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from flax import nnx

from lawm import files
from lawm.models.encoder import VideoEncoder
from lawm.models.layers import LAYER_NORM_EPS

SPEC_FILE = "encoder_spec.json"
PARAMS_DIR = "params"
# The original checkpoints carry no config: heads by width for the released sizes (L, H, g).
HEADS_BY_WIDTH = {1024: 16, 1280: 16, 1408: 22}
PT_ENTRIES = ("target_encoder", "encoder", "ema_encoder")


class WeightsError(ValueError):
    """A checkpoint that cannot become our encoder; the message is one line naming the file and key."""


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
    """The encoder's size, as the checkpoint defines it (plus the resolution/frames it was trained at)."""

    width: int
    depth: int
    num_heads: int
    mlp_ratio: float
    patch_size: int
    tubelet_size: int
    in_channels: int = 3
    image_size: int = 256
    frames_per_clip: int = 64

    def build_kwargs(self) -> dict:
        return dict(
            width=self.width,
            depth=self.depth,
            num_heads=self.num_heads,
            mlp_ratio=self.mlp_ratio,
            patch_size=self.patch_size,
            tubelet_size=self.tubelet_size,
            in_channels=self.in_channels,
        )


# ------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------
def read_spec(path) -> EncoderSpec:
    """The size of the encoder in a Hugging Face folder or a converted folder (cheap: reads JSON only)."""
    path = epath.Path(path)
    if (path / SPEC_FILE).exists():
        return EncoderSpec(**json.loads((path / SPEC_FILE).read_text()))
    if (path / "config.json").exists():
        return _spec_from_hf_config(path / "config.json")
    raise WeightsError(
        f"{path}: neither a Hugging Face V-JEPA 2 folder (config.json) nor a converted "
        f"encoder ({SPEC_FILE}); convert .pt checkpoints with lawm-convert-vjepa2"
    )


def load(path, *, num_heads: int | None = None) -> tuple[EncoderSpec, dict]:
    """(spec, params) from any of the three layouts; params match VideoEncoder(**spec.build_kwargs()).

    `num_heads` is needed only for an original .pt checkpoint of a width that is not a released size.
    """
    path = epath.Path(path)
    if path.is_file():
        state, where = _torch_state_dict(path)
        state = _from_original_names(state, where)
        spec = _spec_from_shapes(state, where, num_heads)
        return spec, _to_params(state, spec, where)
    spec = read_spec(path)
    if (path / SPEC_FILE).exists():
        target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), abstract_params(spec))
        try:
            params = ocp.StandardCheckpointer().restore((path / PARAMS_DIR).resolve(), target)
        except Exception as error:  # orbax raises many types; the user needs the file and the reason
            raise WeightsError(
                f"{path / PARAMS_DIR}: cannot restore the encoder ({_one_line(error)})"
            ) from None
        return spec, jax.tree.map(np.asarray, params)
    state = _read_safetensors(path)
    return spec, _to_params(state, spec, str(path))


def save_converted(spec: EncoderSpec, params, output) -> epath.Path:
    """Writes `encoder_spec.json` and the orbax checkpoint `params/`, which `encoder.checkpoint` reads."""
    output = epath.Path(output)
    output.mkdir(parents=True, exist_ok=True)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save((output / PARAMS_DIR).resolve(), params, force=True)
    checkpointer.wait_until_finished()
    files.write_json(output / SPEC_FILE, dataclasses.asdict(spec))  # last: the folder is complete
    return output


def abstract_params(spec: EncoderSpec) -> dict:
    """Our encoder's parameter tree for `spec`, shapes only."""
    module = nnx.eval_shape(lambda: VideoEncoder(**spec.build_kwargs(), rngs=nnx.Rngs(0)))
    return nnx.to_pure_dict(nnx.state(module))


# ------------------------------------------------------------------------------------------------
# Formats
# ------------------------------------------------------------------------------------------------
def _one_line(error) -> str:
    return " ".join(str(error).split())


def _spec_from_hf_config(config_path) -> EncoderSpec:
    try:
        config = json.loads(epath.Path(config_path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise WeightsError(f"{config_path}: unreadable ({_one_line(error)})") from None
    checks = {"hidden_act": "gelu", "qkv_bias": True, "layer_norm_eps": LAYER_NORM_EPS}
    for key, expected in checks.items():
        if key in config and config[key] != expected:
            raise WeightsError(f"{config_path}: {key}={config[key]!r} is not supported (need {expected!r})")
    try:
        return EncoderSpec(
            width=config["hidden_size"],
            depth=config["num_hidden_layers"],
            num_heads=config["num_attention_heads"],
            mlp_ratio=float(config.get("mlp_ratio", 4.0)),
            patch_size=config["patch_size"],
            tubelet_size=config["tubelet_size"],
            in_channels=config.get("in_chans", 3),
            image_size=config.get("crop_size", 256),
            frames_per_clip=config.get("frames_per_clip", 64),
        )
    except KeyError as error:
        raise WeightsError(f"{config_path}: missing field {error}") from None


def _read_safetensors(folder) -> dict:
    from safetensors import SafetensorError, safe_open

    index = folder / "model.safetensors.index.json"
    files = (
        sorted(set(json.loads(index.read_text())["weight_map"].values()))
        if index.exists()
        else ["model.safetensors"]
    )
    state = {}
    for name in files:
        file = folder / name
        if not file.exists():
            raise WeightsError(f"{file}: missing")
        try:
            with safe_open(str(file), framework="numpy") as reader:
                for key in reader.keys():
                    if key.startswith("encoder."):  # the predictor / pooler of VJEPA2Model are not ours
                        state[key.removeprefix("encoder.")] = reader.get_tensor(key)
        except (SafetensorError, OSError, ValueError) as error:
            raise WeightsError(f"{file}: not a readable safetensors file ({_one_line(error)})") from None
    return state


def _torch_state_dict(file) -> tuple[dict, str]:
    try:
        import torch
    except ImportError:
        raise WeightsError(f"{file}: reading PyTorch checkpoints needs torch (pip install torch)") from None
    try:
        checkpoint = torch.load(str(file), map_location="cpu", weights_only=True)  # never unpickle code
    except Exception as error:  # torch raises many types for a bad file
        raise WeightsError(
            f"{file}: not a loadable weights-only PyTorch checkpoint ({_one_line(error)})"
        ) from None
    entry = next((k for k in PT_ENTRIES if isinstance(checkpoint, dict) and k in checkpoint), None)
    if entry is None:
        raise WeightsError(f"{file}: no encoder entry (looked for {', '.join(PT_ENTRIES)})")
    state = {k: v.float().numpy() for k, v in checkpoint[entry].items()}
    return state, f"{file}[{entry}]"


def _from_original_names(state: dict, where: str) -> dict:
    """facebookresearch/vjepa2 names -> transformers names (without the `encoder.` prefix)."""
    out = {}
    for key, value in state.items():
        name = re.sub(r"^(module\.|backbone\.)+", "", key)
        name = name.replace("patch_embed.proj.", "embeddings.patch_embeddings.proj.")
        name = re.sub(r"^blocks\.(\d+)\.", r"layer.\1.", name)
        name = re.sub(r"^norm\.", "layernorm.", name)
        name = name.replace(".attn.", ".attention.")
        if ".attention.qkv." in name:  # fused (3D, ...) -> query, key, value
            for part, chunk in zip(("query", "key", "value"), np.split(value, 3, axis=0), strict=True):
                out[name.replace(".qkv.", f".{part}.")] = chunk
        elif name == "pos_embed":
            raise WeightsError(f"{where}: has an absolute pos_embed; only the RoPE (V-JEPA 2) encoders load")
        else:
            out[name] = value
    return out


def _spec_from_shapes(state: dict, where: str, num_heads: int | None) -> EncoderSpec:
    """The original checkpoints carry no config: read the size from the tensors."""
    key = "embeddings.patch_embeddings.proj.weight"
    if key not in state:
        raise WeightsError(f"{where}: missing key {key} (patch_embed.proj.weight)")
    width, channels, tubelet, patch, _ = state[key].shape
    depth = len({int(m.group(1)) for k in state if (m := re.match(r"layer\.(\d+)\.", k))})
    num_heads = num_heads or HEADS_BY_WIDTH.get(width)
    if num_heads is None:
        raise WeightsError(
            f"{where}: width {width} is not a released V-JEPA 2 size ({sorted(HEADS_BY_WIDTH)}), "
            "so its number of heads is unknown: pass num_heads (--num_heads)"
        )
    hidden = state.get("layer.0.mlp.fc1.weight", np.zeros((4 * width, 0))).shape[0]
    return EncoderSpec(
        width=width,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=hidden / width,
        patch_size=patch,
        tubelet_size=tubelet,
        in_channels=channels,
    )


def _reference_names(spec: EncoderSpec) -> dict:
    """transformers name (without `encoder.`) -> (our param path, PyTorch -> Flax layout transform)."""
    linear = lambda w: w.T  # noqa: E731  torch Linear (out, in) -> Flax kernel (in, out)
    same = lambda w: w  # noqa: E731
    names = {
        "embeddings.patch_embeddings.proj.weight": (
            ("patch_embed", "kernel"),
            lambda w: w.transpose(2, 3, 4, 1, 0),
        ),
        "embeddings.patch_embeddings.proj.bias": (("patch_embed", "bias"), same),
        "layernorm.weight": (("norm", "scale"), same),
        "layernorm.bias": (("norm", "bias"), same),
    }
    for i in range(spec.depth):
        for norm in ("norm1", "norm2"):
            names[f"layer.{i}.{norm}.weight"] = (("blocks", i, norm, "scale"), same)
            names[f"layer.{i}.{norm}.bias"] = (("blocks", i, norm, "bias"), same)
        for sub, ours in [(f"attention.{p}", ("attention", p)) for p in ("query", "key", "value", "proj")] + [
            ("mlp.fc1", ("mlp", "fc1")),
            ("mlp.fc2", ("mlp", "fc2")),
        ]:
            names[f"layer.{i}.{sub}.weight"] = (("blocks", i, *ours, "kernel"), linear)
            names[f"layer.{i}.{sub}.bias"] = (("blocks", i, *ours, "bias"), same)
    return names


def _to_params(state: dict, spec: EncoderSpec, where: str) -> dict:
    """Maps reference tensors onto our tree, checking every key is there, known and of the right shape."""
    names = _reference_names(spec)
    missing = sorted(set(names) - set(state), key=_natural)
    unexpected = sorted(set(state) - set(names), key=_natural)
    if missing:
        extra = f" (unexpected: encoder.{unexpected[0]})" if unexpected else ""
        raise WeightsError(f"{where}: missing key encoder.{missing[0]}{extra}")
    if unexpected:
        raise WeightsError(f"{where}: unexpected key encoder.{unexpected[0]}")
    params = abstract_params(spec)  # filled in place, leaf by leaf
    for name, (path, transform) in names.items():
        value = transform(np.asarray(state[name], np.float32))
        if value.shape != _get(params, path).shape:
            raise WeightsError(
                f"{where}: encoder.{name} has shape {tuple(np.shape(state[name]))}, which does not "
                f"fit the encoder its config describes (width {spec.width}, depth {spec.depth})"
            )
        _set(params, path, value)
    return params


def _natural(key: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key)]


def _get(tree, path):
    for key in path:
        tree = tree[key]
    return tree


def _set(tree, path, value):
    for key in path[:-1]:
        tree = tree[key]
    tree[path[-1]] = value
