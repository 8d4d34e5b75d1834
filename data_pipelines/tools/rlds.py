"""`lawm-prepare rlds`: convert an RLDS dataset (DROID, RECON) once into clip-record shards.

The dataset is opened with `tfds.builder_from_directory` and read by random access (`as_data_source`) when it
was prepared as ArrayRecord, else in index order through `as_dataset` (the public DROID and Open
X-Embodiment releases are TFRecord); that reading is in tools/rlds_reader.py. Each kept episode becomes one
record, or one record per non-overlapping window of `clip_frames` steps (a shorter tail is dropped), written
with `records.write_shard`. The conventions follow the references (README "Conventions";
data_pipelines/poses.py has the formulas):

- `frames`: the camera's per-step images as JPEG. RLDS stores images JPEG-encoded already, so the bytes
  pass through untouched (no generation loss, no decode/encode cost), frame i stays exactly step i, and
  any step is readable without decoding from a keyframe; other encodings (PNG, raw uint8 tensors) are
  encoded to JPEG (quality 95). H.264 `video` would be smaller but costs a lossy re-encode of every frame.
- `fps`: the dataset's step rate (`DEFAULT_FPS`, `--fps` for other releases; the manifest states it):
  DROID 15 Hz (its control rate; the world model and controller read 4 fps clips from it, as V-JEPA 2-AC
  trains on DROID at 4 fps). RECON 4 Hz: NWM reads its RECON trajectories (GNM's process_recon.py copies the
  RECON hdf5 steps one to one) at `--input_fps 4`, the rate GNM/ViNT resample their other datasets to, and
  the paper's "H = 8 = 2 s" needs it; 610,907 steps over RECON's "over 40 hours" allow at most 4.2 Hz.
  The Open X-Embodiment sheet (and LeRobot's copy) say 3 Hz: use `--fps 3` to follow them (README).
- `states` (T, D) and `actions` (T - 1, D), float64 math, stored float32; action t takes states[t] to t + 1:
  - DROID (`meta.action_kind` "ee_delta"): states = [x, y, z, extrinsic euler x, y, z, gripper] from
    `cartesian_position` (6) and `gripper_position` (1); actions = [Δxyz in the base frame, extrinsic
    "xyz" Euler angles of R_{t+1} R_t^T, Δgripper] (V-JEPA 2-AC's `poses_to_diffs`, jepa-wms).
  - RECON (`meta.action_kind` "se2"): states = [x, y, yaw] in the world frame from `position` (2) and
    `yaw` (1); actions = (dx, dy, dyaw): the displacement in the robot frame at step t (x forward, y left),
    dyaw wrapped to (-pi, pi]; metres and radians, not normalised (NWM's action space).
  Readers resample to other rates by composing rows (sources/clips.py, `poses.compose`), never by summing
  rotations or robot-frame steps.
- `meta`: `source_id` "<dataset>/<split>/<episode index>" (index in split order), `episode`, `camera`,
  `start_step` and `start_s` (where a window starts in its episode), `action_kind`, and the episode's
  metadata when the dataset has it (`file_path`, DROID's `recording_folderpath`).

Episodes. `episodes="success"` (DROID's default) keeps the episodes whose `episode_metadata/file_path`
contains "success", as openpi's DROID loader does (src/openpi/training/droid_rlds_dataset.py); "all" keeps
every one (RECON's default). Skipped episodes are counted, not read. Held-out episodes: with
`eval_fraction` F > 0 or `eval_episodes` (names), shards go to `train/` and `eval/` under the output folder,
and an episode is held out when the SHA-256 of its identity (its `file_path`, else its source_id) falls in
the first F of the hash range, or when a listed name equals its identity or a trailing part of its path
(with or without extension, or of its folder): the same split for any re-run, shard size or worker count.

Feature names follow the public releases: DROID RLDS 1.0.0 / 1.0.1 (gs://gresearch/robotics/droid; openpi
recommends 1.0.1, same features) and RECON as Open X-Embodiment's `berkeley_gnm_recon` 0.1.0 (see
`rlds_reader.FEATURES`); `camera=` picks another image feature (e.g. "wrist_image_left") and `features=`
remaps any role for other releases. A missing feature fails before anything is written, with one line
naming it and listing the features the dataset has.

Resumable, through the shard writer of tools/shards.py: shard k holds episodes [k * episodes_per_shard,
(k + 1) * episodes_per_shard) as `shard-0000k.array_record` (in `train/`, its held-out ones in `eval/`), next
to a `shard-0000k.json` sidecar (its episode range, settings, counts and failed episodes) written just
before the shard is renamed into place. A re-run skips shards whose final file and sidecar exist and match,
and redoes the rest, `.tmp` leftovers included; an output directory written with other settings, or holding
shards this conversion would not write, is refused. Episodes that fail (too short for one transition,
non-finite or misshapen values, an unreadable image) are counted and listed, not fatal. `manifest.json`
(settings, conventions, shards with episode counts, skipped, held-out and failed episodes) is replaced in one
step at the end.

TensorFlow and tensorflow-datasets are imported inside rlds_reader's functions only: importing this module
stays light.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from data_pipelines import poses, records
from data_pipelines.tools import cli, shards
from data_pipelines.tools.rlds_reader import (
    FEATURES,
    METADATA,
    EpisodeError,
    RLDSError,
    check_features,
    leaf_features,
    one_line,
    open_builder,
    read_episodes,
)

DEFAULT_FPS = {"droid": 15.0, "recon": 4.0}
DEFAULT_EPISODES = {"droid": "success", "recon": "all"}
EPISODES = ("success", "all")
ACTION_KINDS = {"droid": "ee_delta", "recon": "se2"}  # data_pipelines/poses.py
CONVENTIONS = {
    "droid": {
        "states": "(T, 7) float32: x, y, z [m], extrinsic euler x, y, z [rad], gripper; cartesian + gripper",
        "actions": "(T-1, 7) float32: xyz[t+1] - xyz[t] (base frame), extrinsic euler xyz of "
        "R[t+1] R[t]^T, gripper[t+1] - gripper[t] (V-JEPA 2-AC poses_to_diffs); action_kind ee_delta",
        "rate": "15 Hz, DROID's control rate; clips for the world model and controller are read at 4 fps",
        "episodes": "file_path containing 'success' by default (openpi's DROID filter)",
    },
    "recon": {
        "states": "(T, 3) float32: world x, y [m], yaw [rad]; from position + yaw",
        "actions": "(T-1, 3) float32: (dx, dy) = world displacement rotated by -yaw[t] (robot frame at t, "
        "x forward, y left) [m], dyaw = yaw[t+1] - yaw[t] wrapped to (-pi, pi]; action_kind se2",
        "rate": "4 Hz by default: NWM's --input_fps 4 on the same steps; the OXE sheet says 3 Hz",
        "episodes": "all",
    },
}
JPEG_QUALITY = 95
_JPEG_MAGIC = b"\xff\xd8\xff"
_PROG = "lawm-prepare rlds"


wrap_angles = poses.wrap_angles


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
    actions[:, 3:6] = poses.relative_rotations(states[:, 3:6])
    return states.astype(np.float32), actions.astype(np.float32)


def recon_states_actions(position, yaw) -> tuple[np.ndarray, np.ndarray]:
    """(T, 2) world position, (T, 1) yaw -> states (T, 3), actions (T-1, 3) = robot-frame (dx, dy, dyaw)."""
    _check_length(len(position))
    states = np.concatenate([_columns(position, 2, "position"), _columns(yaw, 1, "yaw")], axis=1)
    actions = poses.se2_steps(states[:, :2], states[:, 2])
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


# -- which episodes ----------------------------------------------------------------------------------------


def episode_identity(metadata: dict, source_id: str) -> str:
    """What names an episode across releases and re-runs: its file_path, else its source_id."""
    return metadata.get("file_path") or source_id


def hash_fraction(identity: str) -> float:
    """A stable, uniform number in [0, 1) from an episode's identity (the first 8 bytes of its SHA-256)."""
    return int.from_bytes(hashlib.sha256(identity.encode()).digest()[:8], "big") / 2.0**64


def name_matches(name: str, identity: str) -> bool:
    """Whether a listed episode name picks this identity: equal, or a trailing part of its path, of its path
    without the extension or of its folder ("Fri_Apr_21_10:35:02_2023", "jackal_2019-08-02-16-23-30_0")."""
    candidates = (identity, os.path.splitext(identity)[0], os.path.dirname(identity))
    return any(full == name or full.endswith("/" + name) for full in candidates)


def is_held_out(identity: str, job: dict) -> bool:
    if any(name_matches(name, identity) for name in job["eval_names"]):
        return True
    return hash_fraction(identity) < job["eval_fraction"]


def _episode_records(data: dict, metadata: dict, job: dict, index: int) -> list[dict]:
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
        meta = {"source_id": source_id, "episode": index, "camera": job["camera"], **metadata}
        meta.update(start_step=start, start_s=start / job["fps"], action_kind=ACTION_KINDS[job["dataset"]])
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


def _convert_shard(path: str, job: dict) -> dict:
    """Write one shard (episodes [start, stop)), its held-out twin in eval/ when splitting, and its
    sidecar; returns the sidecar."""
    builder = open_builder(job["builder_dir"])
    sidecar = {k: job[k] for k in ("shard", "start", "stop", "settings")}
    sidecar.update(episodes=0, records=0, skipped=0, failures=[], eval_episodes=0, eval_records=0)
    sidecar["eval_identities"] = []
    held_out = []  # a few episodes per shard: written once the shard's train records are

    def generate():
        for index, metadata, data in read_episodes(builder, job):
            source_id = f"{job['dataset']}/{job['split']}/{index}"
            if data is None:
                sidecar["skipped"] += 1
                continue
            try:
                if isinstance(data, EpisodeError):
                    raise data
                episode = _episode_records(data, metadata, job, index)
            except (EpisodeError, ValueError, OSError) as e:
                sidecar["failures"].append({"source_id": source_id, "error": one_line(e)})
                continue
            identity = episode_identity(metadata, source_id)
            if job["eval_path"] and is_held_out(identity, job):
                sidecar["eval_episodes"] += 1
                sidecar["eval_records"] += len(episode)
                sidecar["eval_identities"].append(identity)
                held_out.extend(records.encode_record(record) for record in episode)
                continue
            sidecar["episodes"] += 1
            sidecar["records"] += len(episode)
            yield from episode
        if job["eval_path"]:  # before the sidecar and the train shard: a complete unit has both shards
            records.write_shard(job["eval_path"], held_out)

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
    complete = not job["eval_path"] or os.path.exists(job["eval_path"])
    return complete and (sidecar["start"], sidecar["stop"]) == (job["start"], job["stop"])


def _eval_names(eval_episodes) -> list[str]:
    """Held-out episode names: a sequence of names, or a text file of them (one a line, # comments)."""
    if eval_episodes is None:
        return []
    if isinstance(eval_episodes, (str, os.PathLike)):
        try:
            with open(eval_episodes) as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise RLDSError(f"eval_episodes: cannot read {eval_episodes}: {e.strerror or e}") from None
        eval_episodes = [line.split("#", 1)[0] for line in lines]
    return sorted({name.strip() for name in eval_episodes if name.strip()})


def convert(
    builder_dir: str,
    output_dir: str,
    *,
    dataset: str = "droid",
    split: str = "train",
    camera: str | None = None,
    fps: float | None = None,
    clip_frames: int | None = None,
    episodes: str | None = None,
    eval_fraction: float = 0.0,
    eval_episodes: str | os.PathLike | Sequence[str] | None = None,
    episodes_per_shard: int = 64,
    max_episodes: int | None = None,
    features: dict[str, str] | None = None,
    workers: int = 1,
    progress: bool = False,
) -> dict:
    """Convert the RLDS dataset at `builder_dir` into clip-record shards in `output_dir` (see module doc).

    `camera`: an image feature name under steps/observation, or a full feature path (default: FEATURES).
    `episodes`: "success" or "all" (default: DEFAULT_EPISODES). `eval_fraction` / `eval_episodes` (names, or
    a file of names): hold those episodes out into `output_dir/eval`, the rest into `output_dir/train`.
    `features`: role -> feature path overrides for other releases. `workers` > 1 converts shards in that
    many processes. Returns the manifest, plus `written` / `skipped`: the shards this call wrote or found
    complete. Raises RLDSError (one line) for a missing builder dir, split or feature, or bad arguments.
    """
    if dataset not in FEATURES:
        raise RLDSError(f"dataset must be one of {', '.join(FEATURES)}, got {dataset!r}")
    fps = float(DEFAULT_FPS[dataset] if fps is None else fps)
    if not (math.isfinite(fps) and fps > 0):
        raise RLDSError(f"fps must be > 0, got {fps}")
    episodes = DEFAULT_EPISODES[dataset] if episodes is None else episodes
    if episodes not in EPISODES:
        raise RLDSError(f"episodes must be one of {', '.join(EPISODES)}, got {episodes!r}")
    if not 0.0 <= eval_fraction < 1.0:
        raise RLDSError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
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
    eval_names = _eval_names(eval_episodes)
    builder_dir = os.fspath(builder_dir)
    builder = open_builder(builder_dir)
    check_features(builder, builder_dir, features, split)
    leaves = leaf_features(builder.info.features)
    metadata = {key: path for key, path in METADATA[dataset].items() if path in leaves}
    if episodes == "success" and "file_path" not in metadata:
        raise RLDSError(
            f"episodes='success' needs the feature {METADATA[dataset]['file_path']!r}, not in {builder_dir}; "
            "use episodes='all'"
        )

    num_episodes = builder.info.splits[split].num_examples
    if max_episodes is not None:
        num_episodes = min(num_episodes, max_episodes)
    num_shards = math.ceil(num_episodes / episodes_per_shard)
    splitting = eval_fraction > 0 or bool(eval_names)
    folders = [os.path.join(output_dir, name) for name in ("train", "eval")] if splitting else [output_dir]
    try:
        for folder in folders:
            shards.make_output(folder)
    except shards.OutputError as e:
        raise RLDSError(str(e)) from None
    names = [f"shard-{k:05d}{records.SHARD_SUFFIX}" for k in range(num_shards)]
    expected = {folder: names for folder in folders}  # an output is one layout: flat, or train/ + eval/
    for folder in {output_dir, *(os.path.join(output_dir, name) for name in ("train", "eval"))}:
        found = os.listdir(folder) if os.path.isdir(folder) else []
        shards_found = {p for p in found if p.endswith(records.SHARD_SUFFIX)}
        strays = sorted(shards_found - set(expected.get(folder, [])))
        if strays:
            raise RLDSError(
                f"{folder} holds shards this conversion would not write ({strays[0]}, {len(strays)} in all); "
                "use a fresh output directory"
            )

    settings = {
        "dataset": dataset,
        "split": split,
        "features": features,
        "fps": fps,
        "clip_frames": clip_frames,
        "episodes_per_shard": episodes_per_shard,
        "episode_filter": episodes,
        "eval_fraction": eval_fraction,
        "eval_names": hashlib.sha256("\n".join(eval_names).encode()).hexdigest()[:16] if eval_names else None,
    }
    camera_name = features["image"].rsplit("/", 1)[-1]
    job = {
        **settings,
        "settings": settings,
        "builder_dir": builder_dir,
        "camera": camera_name,
        "metadata": metadata,
        "episodes": episodes,
        "eval_names": eval_names,
    }
    units = [
        shards.Unit(
            os.path.join(folders[0], name),
            (
                {
                    **job,
                    "shard": name,
                    "start": k * episodes_per_shard,
                    "stop": min((k + 1) * episodes_per_shard, num_episodes),
                    "eval_path": os.path.join(folders[1], name) if splitting else None,
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

    held_out = [identity for s in sidecars for identity in s["eval_identities"]]
    manifest = {
        **settings,
        "eval_names": eval_names,
        "builder_dir": builder_dir,
        "max_episodes": max_episodes,
        "camera": camera_name,
        "action_kind": ACTION_KINDS[dataset],
        "conventions": CONVENTIONS[dataset],
        "layout": "train/ and eval/ shards" if splitting else "shards",
        "episodes": num_episodes,
        "converted_episodes": sum(s["episodes"] + s["eval_episodes"] for s in sidecars),
        "records": sum(s["records"] + s["eval_records"] for s in sidecars),
        "skipped_episodes": sum(s["skipped"] for s in sidecars),
        "eval_episodes": sum(s["eval_episodes"] for s in sidecars),
        "eval_records": sum(s["eval_records"] for s in sidecars),
        "eval_names_unmatched": [n for n in eval_names if not any(name_matches(n, i) for i in held_out)],
        "failed_episodes": sum(len(s["failures"]) for s in sidecars),
        "failures": [failure for s in sidecars for failure in s["failures"]],
        "shards": [
            {k: s[k] for k in ("shard", "start", "stop", "episodes", "records", "eval_episodes", "skipped")}
            for s in sidecars
        ],
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
    parser.add_argument("--fps", type=float, help=f"step rate (default: {DEFAULT_FPS})")
    parser.add_argument("--clip-frames", "--clip_frames", type=int, help="records of this many steps")
    parser.add_argument(
        "--episodes", choices=EPISODES, help=f"which episodes to convert (default: {DEFAULT_EPISODES})"
    )
    parser.add_argument(
        "--eval-fraction", "--eval_fraction", type=float, default=0.0, help="held out into eval/ by hash"
    )
    parser.add_argument(
        "--eval-episodes", "--eval_episodes", metavar="FILE", help="names of episodes to hold out, one a line"
    )
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
    held_out = manifest["layout"] != "shards"
    held_out = f", {manifest['eval_records']} of them held out in eval/" if held_out else ""
    print(
        f"{_PROG}: {args.dataset}/{args.split}: {manifest['records']} records from "
        f"{manifest['converted_episodes']} episodes{held_out} in {len(manifest['shards'])} shards "
        f"({len(manifest['written'])} written, {len(manifest['skipped'])} already complete), "
        f"{manifest['skipped_episodes']} episodes skipped ({manifest['episode_filter']}), "
        f"{manifest['failed_episodes']} episodes failed -> {os.path.join(args.output, 'manifest.json')}"
    )
    return 0
