"""`lawm-prepare rlds`: convert an RLDS dataset (DROID, RECON) once into clip-record shards.

The dataset is opened with `tfds.builder_from_directory` and read by random access (`as_data_source`) when it
was prepared as ArrayRecord, else in index order through `as_dataset` (the public DROID and Open
X-Embodiment releases are TFRecord). Each episode becomes one record, or one record per non-overlapping
window of `clip_frames` steps (a shorter tail is dropped), written with `records.write_shard`:

- `frames`: the camera's per-step images as JPEG. RLDS stores images JPEG-encoded already, so the bytes
  pass through untouched (no generation loss, no decode/encode cost), frame i stays exactly step i, and
  any step is readable without decoding from a keyframe; other encodings (PNG, raw uint8 tensors) are
  encoded to JPEG (quality 95). H.264 `video` would be smaller but costs a lossy re-encode of every frame.
- `fps`: the dataset's control rate, per-dataset default in `DEFAULT_FPS`: DROID 15 Hz (its native rate);
  RECON 4 Hz (the GNM-processed trajectories, of which the Open X-Embodiment release is a conversion, as
  NWM and the paper (§8.7) use them: H = 8 steps = 2 s). Override with `fps=` / `--fps` for other releases.
- `states` (T, D) and `actions` (T - 1, D), float32; action t takes states[t] to states[t + 1]:
  - DROID: states = [x, y, z, extrinsic euler x, y, z, gripper] (metres, radians, gripper as stored)
    from `cartesian_position` (6) and `gripper_position` (1); actions = states[t + 1] - states[t] with
    the euler differences wrapped to (-pi, pi] (V-JEPA 2-AC's 7-D end-effector deltas, paper §12.1).
  - RECON: states = [x, y, yaw] in the world frame from `position` (2) and `yaw` (1); actions =
    (dx, dy, dyaw): the world displacement rotated by -yaw_t into the robot frame at step t (x forward,
    y left), dyaw wrapped to (-pi, pi]; metres and radians, not normalised (NWM's action space; NWM
    anchors a clip's deltas to one frame instead: recompute from `states` if you need that).
- `meta`: `source_id` "<dataset>/<split>/<episode index>" (index in split order), `episode`, `camera`,
  `start_step` and `start_s` (where a window starts in its episode).

Feature names follow the public releases: DROID RLDS 1.0.0 (gs://gresearch/robotics/droid) and RECON as
Open X-Embodiment's `berkeley_gnm_recon` 0.1.0 (see `FEATURES`); `camera=` picks another image feature
(e.g. "wrist_image_left") and `features=` remaps any role for other releases. A missing feature fails
before anything is written, with one line naming it and listing the features the dataset has.

Resumable, through the shard writer of tools/shards.py: shard k holds episodes [k * episodes_per_shard,
(k + 1) * episodes_per_shard) as `shard-0000k.array_record`, next to a `shard-0000k.json` sidecar (its
episode range, settings, counts and failed episodes) written just before the shard is renamed into place.
A re-run skips shards whose final file and sidecar exist and match, and redoes the rest, `.tmp` leftovers
included; an output directory written with other settings, or holding shards this conversion would not
write, is refused. Episodes that fail (too short for one transition, non-finite or misshapen values, an
unreadable image) are counted and listed, not fatal. `manifest.json` (settings, conventions, shards with
episode counts, failures) is replaced in one step at the end.

TensorFlow and tensorflow-datasets are imported inside functions only: importing this module stays light.
"""

from __future__ import annotations

import functools
import io
import math
import os

import numpy as np
from PIL import Image

from data_pipelines import records
from data_pipelines.tools import cli, shards

# Role -> feature path, per dataset. DROID: DROID RLDS 1.0.0; RECON: Open X-Embodiment berkeley_gnm_recon.
FEATURES = {
    "droid": {
        "image": "steps/observation/exterior_image_1_left",
        "cartesian": "steps/observation/cartesian_position",  # xyz + extrinsic euler xyz
        "gripper": "steps/observation/gripper_position",
    },
    "recon": {
        "image": "steps/observation/image",
        "position": "steps/observation/position",  # world x, y
        "yaw": "steps/observation/yaw",
    },
}
DEFAULT_FPS = {"droid": 15.0, "recon": 4.0}
CONVENTIONS = {
    "droid": {
        "states": "(T, 7) float32: x, y, z [m], extrinsic euler x, y, z [rad], gripper; cartesian + gripper",
        "actions": "(T-1, 7) float32: states[t+1] - states[t], euler differences wrapped to (-pi, pi]",
    },
    "recon": {
        "states": "(T, 3) float32: world x, y [m], yaw [rad]; from position + yaw",
        "actions": "(T-1, 3) float32: (dx, dy) = world displacement rotated by -yaw[t] (robot frame at t, "
        "x forward, y left) [m], dyaw = yaw[t+1] - yaw[t] wrapped to (-pi, pi]",
    },
}
JPEG_QUALITY = 95
_JPEG_MAGIC = b"\xff\xd8\xff"
_PROG = "lawm-prepare rlds"
_STEPS_PER_BATCH = 1024  # TFRecord path: steps batched per episode (tf.data preallocates a whole batch)


class RLDSError(ValueError):
    """A one-line, user-facing problem with the input or output (missing feature, builder dir, settings)."""


class EpisodeError(ValueError):
    """One episode cannot be converted; it is counted and listed, the conversion goes on."""


def wrap_angles(angles: np.ndarray) -> np.ndarray:
    """Angles in radians mapped to (-pi, pi]."""
    return np.pi - np.mod(np.pi - angles, 2 * np.pi)


def _columns(values, width: int, name: str) -> np.ndarray:
    array = np.asarray(values, np.float64)
    array = array.reshape(len(array), -1)  # (T,) or (T, 1) or (T, width)
    if array.shape[1] != width:
        raise EpisodeError(f"{name}: expected {width} values per step, got {array.shape[1]}")
    if not np.isfinite(array).all():
        raise EpisodeError(f"{name}: non-finite values")
    return array


def _check_length(num_steps: int) -> None:
    if num_steps < 2:
        raise EpisodeError(f"too short: {num_steps} step(s), one transition needs 2")


def droid_states_actions(cartesian, gripper) -> tuple[np.ndarray, np.ndarray]:
    """(T, 6) cartesian [xyz, extrinsic euler xyz] and (T, 1) gripper -> states (T, 7), actions (T-1, 7)."""
    _check_length(len(cartesian))
    states = np.concatenate([_columns(cartesian, 6, "cartesian"), _columns(gripper, 1, "gripper")], axis=1)
    actions = np.diff(states, axis=0)  # float64 until the end: deltas of large coordinates stay exact
    actions[:, 3:6] = wrap_angles(actions[:, 3:6])
    return states.astype(np.float32), actions.astype(np.float32)


def recon_states_actions(position, yaw) -> tuple[np.ndarray, np.ndarray]:
    """(T, 2) world position, (T, 1) yaw -> states (T, 3), actions (T-1, 3) = robot-frame (dx, dy, dyaw)."""
    _check_length(len(position))
    states = np.concatenate([_columns(position, 2, "position"), _columns(yaw, 1, "yaw")], axis=1)
    world = np.diff(states[:, :2], axis=0)
    cos, sin = np.cos(states[:-1, 2]), np.sin(states[:-1, 2])
    actions = np.stack(
        [
            cos * world[:, 0] + sin * world[:, 1],
            -sin * world[:, 0] + cos * world[:, 1],
            wrap_angles(np.diff(states[:, 2])),
        ],
        axis=1,
    )
    return states.astype(np.float32), actions.astype(np.float32)


def _jpeg(image) -> bytes:
    """A step's image as JPEG bytes: JPEG passes through, other encodings and uint8 arrays are encoded."""
    if isinstance(image, (bytes, np.bytes_)):
        if image[:3] == _JPEG_MAGIC:
            return bytes(image)
        pil = Image.open(io.BytesIO(image))
    else:
        array = np.asarray(image)
        if array.dtype != np.uint8 or array.ndim not in (2, 3):
            raise EpisodeError(f"image: expected uint8 (H, W[, C]), got {array.dtype} {array.shape}")
        pil = Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[2] == 1 else array)
    buffer = io.BytesIO()
    pil.convert("RGB").save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _episode_records(data: dict, job: dict, index: int) -> list[dict]:
    """One episode's role -> per-step values into records (one, or one per clip window)."""
    if job["dataset"] == "droid":
        states, actions = droid_states_actions(data["cartesian"], data["gripper"])
    else:
        states, actions = recon_states_actions(data["position"], data["yaw"])
    clip = job["clip_frames"] or len(states)
    if len(states) < clip:
        raise EpisodeError(f"too short: {len(states)} steps < clip_frames {clip}")
    if len(data["image"]) != len(states):
        raise EpisodeError(f"image: {len(data['image'])} frames for {len(states)} steps")
    frames = [_jpeg(image) for image in data["image"]]
    source_id = f"{job['dataset']}/{job['split']}/{index}"
    out = []
    for start in range(0, len(states) - clip + 1, clip):
        meta = {"source_id": source_id, "episode": index, "camera": job["camera"]}
        meta.update(start_step=start, start_s=start / job["fps"])
        out.append(
            {
                "frames": frames[start : start + clip],
                "fps": job["fps"],
                "states": states[start : start + clip],
                "actions": actions[start : start + clip - 1],
                "meta": meta,
            }
        )
    return out


def _one_line(error: Exception) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())


@functools.lru_cache(maxsize=8)  # one open per process, not one per shard
def _open_builder(builder_dir: str):
    import tensorflow_datasets as tfds
    from etils import epath

    path = epath.Path(builder_dir)
    if not (path / "dataset_info.json").exists():
        inside = (
            sorted(p.name for p in path.iterdir() if (p / "dataset_info.json").exists())
            if path.is_dir()
            else []
        )
        hint = f"; versions inside: {', '.join(inside)}" if inside else ""
        raise RLDSError(f"no RLDS dataset at {builder_dir} (no dataset_info.json{hint})")
    return tfds.builder_from_directory(os.fspath(builder_dir))


def _leaf_features(feature, prefix: str = "") -> dict:
    """Feature path ("steps/observation/image") -> feature connector, for every leaf."""
    import tensorflow_datasets as tfds

    if isinstance(feature, tfds.features.Sequence):  # tfds.features.Dataset (RLDS steps) is a Sequence
        return _leaf_features(feature.feature, prefix)
    if isinstance(feature, tfds.features.FeaturesDict):
        leaves = {}
        for key, sub in feature.items():
            leaves.update(_leaf_features(sub, f"{prefix}/{key}" if prefix else key))
        return leaves
    return {prefix: feature}


def _check_features(builder, builder_dir: str, features: dict, split: str) -> None:
    import tensorflow_datasets as tfds

    if split not in builder.info.splits:
        raise RLDSError(f"split {split!r} not in {builder_dir}; available: {', '.join(builder.info.splits)}")
    top = builder.info.features
    if "steps" not in top.keys() or not isinstance(top["steps"], tfds.features.Dataset):
        raise RLDSError(f"{builder_dir} is not RLDS: no 'steps' feature of type tfds.features.Dataset")
    leaves = _leaf_features(builder.info.features)
    for role, path in features.items():
        if path not in leaves:
            raise RLDSError(
                f"feature {path!r} ({role}) not in the RLDS dataset at {builder_dir}; "
                f"available: {', '.join(sorted(leaves))}"
            )
        if not path.startswith("steps/"):
            raise RLDSError(f"feature {path!r} ({role}) is not a per-step feature (steps/...)")
    image = leaves[features["image"]]
    is_array = getattr(image, "np_dtype", None) == np.uint8 and len(getattr(image, "shape", ())) == 3
    if not (isinstance(image, tfds.features.Image) or is_array):
        raise RLDSError(f"feature {features['image']!r} is not an image: {image!r}")


def _decoders(builder) -> dict:
    """Skip decoding every per-step image: the chosen camera's JPEGs pass through, the others cost nothing."""
    import tensorflow_datasets as tfds

    decoders = {}
    for path, feature in _leaf_features(builder.info.features).items():
        if path.startswith("steps/") and isinstance(feature, tfds.features.Image):
            *parents, leaf = path.split("/")
            node = decoders
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = tfds.decode.SkipDecoding()
    return decoders


def _step_value(step: dict, path: str):
    for key in path.split("/")[1:]:  # below "steps/"
        step = step[key]
    return step


def _read_episodes(builder, job: dict):
    """Yields (episode index, role -> list of per-step values, or the EpisodeError that reading raised)."""
    import tensorflow_datasets as tfds

    features, start, stop = job["features"], job["start"], job["stop"]
    try:
        source = builder.as_data_source(split=job["split"], decoders=_decoders(builder))
    except NotImplementedError:  # not ArrayRecord: no random access
        source = None
    if source is not None:
        for index in range(start, stop):
            try:
                steps = source[index]["steps"]
                data = {role: [] for role in features}
                for i in range(len(steps)):
                    step = steps[i]
                    for role, path in features.items():
                        data[role].append(_step_value(step, path))
            except (ValueError, OSError, KeyError, IndexError) as e:
                data = EpisodeError(f"unreadable episode: {_one_line(e)}")
            yield index, data
        return

    def select(episode):  # traced once; batching in tf.data keeps per-step Python work off the read path
        steps = episode["steps"].map(
            lambda step: {role: _step_value(step, p) for role, p in features.items()}
        )
        return steps.batch(_STEPS_PER_BATCH)

    dataset = builder.as_dataset(
        split=f"{job['split']}[{start}:{stop}]",
        decoders=_decoders(builder),
        shuffle_files=False,
        read_config=tfds.ReadConfig(interleave_cycle_length=1),  # index order: episode indices stay true
    ).map(select)
    for index, batches in enumerate(tfds.as_numpy(dataset), start):
        data = {role: [] for role in features}
        for batch in batches:
            for role in features:
                data[role].extend(batch[role])
        yield index, data


def _convert_shard(path: str, job: dict) -> dict:
    """Write one shard (episodes [start, stop)) and its sidecar; returns the sidecar."""
    builder = _open_builder(job["builder_dir"])
    sidecar = {k: job[k] for k in ("shard", "start", "stop", "settings")}
    sidecar.update(episodes=0, records=0, failures=[])

    def generate():
        for index, data in _read_episodes(builder, job):
            try:
                if isinstance(data, EpisodeError):
                    raise data
                episode = _episode_records(data, job, index)
            except (EpisodeError, ValueError, OSError) as e:
                sidecar["failures"].append(
                    {"source_id": f"{job['dataset']}/{job['split']}/{index}", "error": _one_line(e)}
                )
                continue
            sidecar["episodes"] += 1
            sidecar["records"] += len(episode)
            yield from episode

    return shards.write(path, generate(), sidecar)


def _matches(unit: shards.Unit, sidecar: dict) -> bool:
    """Whether a complete shard holds this unit's episodes; refuses one written with other settings."""
    (job,) = unit.args
    if sidecar.get("settings") != job["settings"]:
        differ = sorted(
            k for k in job["settings"] if sidecar.get("settings", {}).get(k) != job["settings"][k]
        )
        raise RLDSError(
            f"{unit.path} was written with other settings ({', '.join(differ)}); use a fresh output dir"
        )
    return (sidecar["start"], sidecar["stop"]) == (job["start"], job["stop"])


def convert(
    builder_dir: str,
    output_dir: str,
    *,
    dataset: str = "droid",
    split: str = "train",
    camera: str | None = None,
    fps: float | None = None,
    clip_frames: int | None = None,
    episodes_per_shard: int = 64,
    max_episodes: int | None = None,
    features: dict[str, str] | None = None,
    workers: int = 1,
    progress: bool = False,
) -> dict:
    """Convert the RLDS dataset at `builder_dir` into clip-record shards in `output_dir` (see module doc).

    `camera`: an image feature name under steps/observation, or a full feature path (default: FEATURES).
    `features`: role -> feature path overrides for other releases. `workers` > 1 converts shards in that
    many processes. Returns the manifest, plus `written` / `skipped`: the shards this call wrote or found
    complete. Raises RLDSError (one line) for a missing builder dir, split or feature, or bad arguments.
    """
    if dataset not in FEATURES:
        raise RLDSError(f"dataset must be one of {', '.join(FEATURES)}, got {dataset!r}")
    fps = float(DEFAULT_FPS[dataset] if fps is None else fps)
    if not (math.isfinite(fps) and fps > 0):
        raise RLDSError(f"fps must be > 0, got {fps}")
    if clip_frames is not None and clip_frames < 2:
        raise RLDSError(f"clip_frames must be >= 2 (one transition), got {clip_frames}")
    if episodes_per_shard < 1 or workers < 1 or (max_episodes is not None and max_episodes < 0):
        raise RLDSError("episodes_per_shard and workers must be >= 1, max_episodes >= 0")
    unknown = sorted(set(features or {}) - set(FEATURES[dataset]))
    if unknown:
        raise RLDSError(
            f"unknown feature role {unknown[0]!r} for {dataset} (roles: {', '.join(FEATURES[dataset])})"
        )
    features = {**FEATURES[dataset], **(features or {})}
    if camera:
        features["image"] = camera if "/" in camera else f"steps/observation/{camera}"
    builder_dir = os.fspath(builder_dir)
    builder = _open_builder(builder_dir)
    _check_features(builder, builder_dir, features, split)

    num_episodes = builder.info.splits[split].num_examples
    if max_episodes is not None:
        num_episodes = min(num_episodes, max_episodes)
    num_shards = math.ceil(num_episodes / episodes_per_shard)
    try:
        shards.make_output(output_dir)
    except shards.OutputError as e:
        raise RLDSError(str(e)) from None
    names = [f"shard-{k:05d}{records.SHARD_SUFFIX}" for k in range(num_shards)]
    strays = sorted(p for p in os.listdir(output_dir) if p.endswith(records.SHARD_SUFFIX) and p not in names)
    if strays:
        raise RLDSError(
            f"{output_dir} holds shards this conversion would not write ({strays[0]}, {len(strays)} in all); "
            "use a fresh output directory"
        )

    settings = {
        "dataset": dataset,
        "split": split,
        "features": features,
        "fps": fps,
        "clip_frames": clip_frames,
        "episodes_per_shard": episodes_per_shard,
    }
    camera_name = features["image"].rsplit("/", 1)[-1]
    units = [
        shards.Unit(
            os.path.join(output_dir, name),
            (
                {
                    **settings,
                    "settings": settings,
                    "builder_dir": builder_dir,
                    "camera": camera_name,
                    "shard": name,
                    "start": k * episodes_per_shard,
                    "stop": min((k + 1) * episodes_per_shard, num_episodes),
                },
            ),
        )
        for k, name in enumerate(names)
    ]
    plan = shards.Plan(output_dir, units, _matches)
    written = [os.path.basename(unit.path) for unit in plan.pending]
    skipped = [os.path.basename(unit.path) for unit in plan.complete]
    from tqdm import tqdm

    with tqdm(total=len(written), desc=f"rlds {dataset}/{split}", unit="shard", disable=not progress) as bar:
        sidecars = plan.run(_convert_shard, workers=workers, on_done=lambda unit, sidecar: bar.update())

    manifest = {
        **settings,
        "builder_dir": builder_dir,
        "max_episodes": max_episodes,
        "camera": camera_name,
        "conventions": CONVENTIONS[dataset],
        "episodes": num_episodes,
        "converted_episodes": sum(s["episodes"] for s in sidecars),
        "records": sum(s["records"] for s in sidecars),
        "failed_episodes": sum(len(s["failures"]) for s in sidecars),
        "failures": [failure for s in sidecars for failure in s["failures"]],
        "shards": [{k: s[k] for k in ("shard", "start", "stop", "episodes", "records")} for s in sidecars],
    }
    plan.write_manifest(manifest)
    return {**manifest, "written": written, "skipped": skipped}


def main(argv: list[str] | None = None) -> int:
    """`lawm-prepare rlds ...`: prints a one-line summary, returns 0; a bad input: one line on stderr, 1."""
    parser = cli.ArgumentParser(prog=_PROG, description=__doc__.splitlines()[0])
    parser.add_argument(
        "--builder-dir", "--builder_dir", required=True, help="RLDS dir with dataset_info.json"
    )
    parser.add_argument("--output", required=True, help="directory for the shards and manifest.json")
    parser.add_argument("--dataset", choices=sorted(FEATURES), required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--camera", help="image feature under steps/observation (or a full path)")
    parser.add_argument("--fps", type=float, help=f"frame rate (default: {DEFAULT_FPS})")
    parser.add_argument("--clip-frames", "--clip_frames", type=int, help="records of this many steps")
    parser.add_argument("--episodes-per-shard", "--episodes_per_shard", type=int, default=64)
    parser.add_argument("--max-episodes", "--max_episodes", type=int)
    parser.add_argument(
        "--feature",
        dest="features",
        action="append",
        default=[],
        metavar="ROLE=PATH",
        help="override a feature path, e.g. yaw=steps/observation/heading",
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: cores)")
    args = parser.parse_args(argv)  # its dests are convert's keyword arguments
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's start-up INFO lines drown the summary
    options = dict(vars(args))
    try:
        options["features"] = dict(item.split("=", 1) for item in args.features)
    except ValueError:
        parser.error(f"--feature takes ROLE=PATH, got {args.features}")
    try:
        manifest = convert(options.pop("builder_dir"), options.pop("output"), progress=True, **options)
    except RLDSError as e:
        return cli.fail(_PROG, e)
    print(
        f"{_PROG}: {args.dataset}/{args.split}: {manifest['records']} records from "
        f"{manifest['converted_episodes']} episodes in {len(manifest['shards'])} shards "
        f"({len(manifest['written'])} written, {len(manifest['skipped'])} already complete), "
        f"{manifest['failed_episodes']} episodes failed -> {os.path.join(args.output, 'manifest.json')}"
    )
    return 0
