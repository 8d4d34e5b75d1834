"""Where a trained model's params come from and go to: a lawm-train workdir, or a portable export folder.

An export (lawm-export) is a folder of JSON and safetensors; nothing in it is pickled and nothing else is
needed to load it (`lawm.load(DIR)`):

    DIR/config.json          {"format": "lawm-export", "version": 1, "step": the checkpoint's step,
                              "config": the trainer config (its model config resolved: every default
                              filled in, the encoder's sizes written out, its checkpoint path dropped),
                              "decoder": {"step", "config"} when a decoder run is attached}
    DIR/model.safetensors    every param of the world model system, "/"-joined tree paths:
                              encoder/... (frozen), idm/..., world_model/..., regularizer/... (a codebook)
    DIR/decoder.safetensors  the decoder run's decoder/... params (when attached); its encoder is the model's

The frozen encoder's weights are always included, and the export never refers to a file outside it:
  - random-init encoders (the CPU configs' depth-0 patch embedding, the tiny test models) are rebuilt
    from the run's seed by JAX's PRNG and the init code, which another JAX version or platform need not
    reproduce bit for bit; the tensors make the export independent of both;
  - released V-JEPA 2 weights (`model.encoder.checkpoint`) are included too (~1.2 GB for ViT-L in float32),
    so a colleague loads the folder without fetching, converting or placing the same release at the same
    path, and is sure to get the very encoder the world model was trained on.
Loading an export therefore gives bit-identical params, hence outputs, to the workdir it came from.

Files are written atomically (lawm.files) and config.json last, after removing an older one: a folder
without config.json is no export, so an interrupted export is never loaded half.
"""

from __future__ import annotations

import dataclasses
import json

import jax
import ml_collections
import numpy as np
from etils import epath

from lawm import config as config_lib
from lawm import files, runs, sharding, systems

FORMAT = "lawm-export"
VERSION = 1
CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
DECODER_FILE = "decoder.safetensors"


class ExportError(ValueError):
    """A folder that is no usable export, or a model that cannot be exported; one line naming the file."""


@dataclasses.dataclass
class Weights:
    """A trainer config and the params it trains (host or device arrays), frozen parts included."""

    config: ml_collections.ConfigDict
    params: dict
    step: int | None
    encoder: str  # where the frozen encoder's weights came from: "seed 0" or "checkpoint PATH"
    decoder: Weights | None = None


# -- where a model is ------------------------------------------------------------------------------------


def is_export(path) -> bool:
    file = epath.Path(path) / CONFIG_FILE
    if not file.is_file():
        return False
    try:
        return files.read_json(file).get("format") == FORMAT
    except (ValueError, AttributeError):
        return False


def is_workdir(path) -> bool:
    path = epath.Path(path)
    return (path / runs.CONFIG_FILE).is_file() and (path / "checkpoints").is_dir()


def read(path, step: int | None = None, device=None) -> Weights:
    """A world model's config and params from a lawm-train workdir (its latest checkpoint, or `step`) or
    an export folder (with its decoder, when it holds one)."""
    path = epath.Path(path)
    if is_export(path):
        if step is not None:
            raise ExportError(f"{path} is an export of step {_read_index(path).get('step')}: it has no step")
        return read_export(path)
    if not is_workdir(path):
        raise FileNotFoundError(
            f"{path} is neither a lawm-train workdir ({runs.CONFIG_FILE} and checkpoints/) nor a "
            f"lawm-export folder ({CONFIG_FILE} and {MODEL_FILE})"
        )
    task = systems.task_of(runs.read_config(path))  # before restoring anything
    if task != "world_model":
        raise ExportError(f"{path} is a {task} run, not a world model run")
    return read_workdir(path, step, device)


def read_decoder(path, device=None) -> Weights:
    """A decoder run's config and decoder params: its workdir, or an export folder that holds one."""
    path = epath.Path(path)
    if is_export(path):
        decoder = read_export(path).decoder
        if decoder is None:
            raise ExportError(f"{path} is an export without a decoder ({DECODER_FILE})")
        return decoder
    if not is_workdir(path):
        raise FileNotFoundError(
            f"{path} is neither a decoder run's workdir ({runs.CONFIG_FILE} and checkpoints/) nor a "
            f"lawm-export folder with {DECODER_FILE}"
        )
    task = systems.task_of(runs.read_config(path))
    if task != "decoder":
        raise ExportError(f"{path} is a {task} run, not a decoder run")
    weights = read_workdir(path, None, device)
    return Weights(weights.config, {"decoder": weights.params["decoder"]}, weights.step, weights.encoder)


def read_workdir(path, step: int | None = None, device=None) -> Weights:
    """A run's config and params (frozen parts included) on one device (default: the first)."""
    mesh = sharding.make_mesh(dict(data=-1), devices=[device or jax.devices()[0]])
    loader = systems.Loader(path, mesh=mesh)
    try:
        step, model = loader.restore(step)
    finally:
        loader.close()
    return Weights(loader.config, model.params, step, encoder_origin(loader.config))


def encoder_origin(config) -> str:
    checkpoint = config.model.encoder.get("checkpoint")
    return f"checkpoint {checkpoint}" if checkpoint else f"seed {config.get('seed', 0)}"


def check_decoder(world: Weights, decoder: Weights, where: str) -> None:
    """Fails unless the decoder run decodes the states of this world model's encoder: the same encoder
    with the same weights (the same seed, or the same released checkpoint), normalised alike."""

    def states_of(weights):
        model = config_lib.resolve(weights.config.model)
        encoder = {k: v for k, v in model.encoder.to_dict().items() if k != "checkpoint"}
        return encoder, model.normalize_states, weights.encoder

    if states_of(world) != states_of(decoder):
        raise ExportError(
            f"{where}: this decoder was trained on another encoder's states than the model's "
            "(model.encoder, model.normalize_states, the seed or the encoder checkpoint differ)"
        )


# -- writing -----------------------------------------------------------------------------------------------


def export(path, output, *, step: int | None = None, decoder=None) -> epath.Path:
    """Writes the export of the model at `path` (a workdir or an export) into `output`, with the decoder
    run `decoder` (a workdir or an export holding one; default: the one `path` holds, if any)."""
    weights = read(path, step)
    if decoder is not None:
        weights.decoder = read_decoder(decoder)
        check_decoder(weights, weights.decoder, str(decoder))
    return write(output, weights)


def write(output, weights: Weights) -> epath.Path:
    """The export folder of `weights` (a world model's trainer config and all its params)."""
    from safetensors.numpy import save

    output = epath.Path(output)
    if output.exists() and not _ours(output):
        raise ExportError(f"{output} exists and is not a lawm export: not overwriting it")
    config = portable_config(weights.config)
    index = {
        "format": FORMAT,
        "version": VERSION,
        "step": weights.step,
        "encoder": weights.encoder,  # the weights are in model.safetensors; this says where they came from
        "config": config.to_dict(),
    }
    tensors = {MODEL_FILE: flatten(weights.params)}
    if weights.decoder is not None:
        decoder_config = portable_config(weights.decoder.config, model=config.model)
        index["decoder"] = {"step": weights.decoder.step, "config": decoder_config.to_dict()}  # same encoder
        tensors[DECODER_FILE] = flatten({"decoder": weights.decoder.params["decoder"]})
    output.mkdir(parents=True, exist_ok=True)
    for stale in (CONFIG_FILE, DECODER_FILE):  # config.json first: until it is back, the folder is no export
        if (output / stale).exists():
            (output / stale).unlink()
    for name, flat in tensors.items():
        files.write_atomic(output / name, save(flat, metadata={"format": FORMAT, "step": str(weights.step)}))
    files.write_json(output / CONFIG_FILE, index)
    return output


def _ours(folder) -> bool:
    """A folder holding nothing but an export's files (complete, or left by an interrupted export)."""
    names = {CONFIG_FILE, MODEL_FILE, DECODER_FILE}
    return folder.is_dir() and all(p.name in names or p.name.endswith(".tmp") for p in folder.iterdir())


def portable_config(config, model=None) -> ml_collections.ConfigDict:
    """The trainer config with its model config resolved (sizes written out, no encoder checkpoint path:
    the weights are in the export) and no file it would need to be rebuilt (LPIPS weights train a
    decoder; decoding does not need them)."""
    config = ml_collections.ConfigDict(json.loads(config.to_json_best_effort()))
    if model is None:
        model = config_lib.resolve(config.model)
        model.encoder.checkpoint = None
    config.model = ml_collections.ConfigDict(model.to_dict())
    if config.get("decoder") is not None:
        config.decoder.lpips_weights = ""
    return config


# -- reading an export -------------------------------------------------------------------------------------


def _read_index(folder) -> dict:
    index = files.read_json(epath.Path(folder) / CONFIG_FILE)
    if index.get("version") != VERSION or not isinstance(index.get("config"), dict):
        raise ExportError(f"{folder / CONFIG_FILE}: not a version-{VERSION} lawm export")
    return index


def read_export(folder) -> Weights:
    """An export's world model (and decoder, if any): configs from config.json, host numpy params, every
    tensor checked against the params the config's systems have (name, shape and dtype)."""
    folder = epath.Path(folder)
    index = _read_index(folder)
    config = ml_collections.ConfigDict(index["config"])
    encoder = str(index.get("encoder", "unknown"))
    params = unflatten(folder / MODEL_FILE, _abstract_params(config))
    decoder = None
    if index.get("decoder"):
        decoder_config = ml_collections.ConfigDict(index["decoder"]["config"])
        abstract = {"decoder": _abstract_params(decoder_config)["decoder"]}
        decoder_params = unflatten(folder / DECODER_FILE, abstract)
        decoder = Weights(decoder_config, decoder_params, index["decoder"]["step"], encoder)
    return Weights(config, params, index.get("step"), encoder, decoder)


def _abstract_params(config) -> dict:
    """Shapes and dtypes of every param of the system `config` trains (frozen parts included)."""
    try:
        system = systems.make(config)
    except ValueError as error:
        raise ExportError(f"the export's config does not build a model: {error}") from None
    return jax.eval_shape(system.init, jax.random.key(0))


def _name(path) -> str:
    return "/".join(str(getattr(key, "key", getattr(key, "idx", getattr(key, "name", key)))) for key in path)


def flatten(params) -> dict[str, np.ndarray]:
    """{"encoder/blocks/0/attention/query/kernel": host array, ...}: one tensor per leaf."""
    return {_name(path): np.asarray(leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}


def unflatten(file, abstract) -> dict:
    """The params tree shaped like `abstract`, filled from the safetensors `file`; a missing, extra or
    misshapen tensor fails with one line naming it."""
    from safetensors import SafetensorError, safe_open
    from safetensors.numpy import load

    file = epath.Path(file)
    if not file.is_file():
        raise ExportError(f"{file}: missing (the export is incomplete)")
    try:
        if "://" in str(file):  # object storage: read the bytes (safe_open maps local files)
            tensors = load(file.read_bytes())
        else:
            with safe_open(str(file), framework="numpy") as reader:
                tensors = {key: reader.get_tensor(key) for key in reader.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        message = " ".join(str(error).split())
        raise ExportError(f"{file}: not a readable safetensors file ({message})") from None
    leaves = jax.tree_util.tree_flatten_with_path(abstract)[0]
    names = [_name(path) for path, _ in leaves]
    extra = sorted(set(tensors) - set(names))
    if extra:
        raise ExportError(f"{file}: tensor {extra[0]} is not a param of the model its config describes")
    values = []
    for name, (_, leaf) in zip(names, leaves, strict=True):
        if name not in tensors:
            raise ExportError(f"{file}: missing tensor {name} (the export is incomplete or of another model)")
        value = tensors[name]
        if value.shape != leaf.shape or value.dtype != leaf.dtype:
            raise ExportError(
                f"{file}: tensor {name} is {value.dtype}{list(value.shape)}, the model's config needs "
                f"{np.dtype(leaf.dtype)}{list(leaf.shape)}"
            )
        values.append(value)
    return jax.tree.unflatten(jax.tree.structure(abstract), values)
