"""Reading an RLDS dataset (DROID, RECON) with tensorflow-datasets, for `lawm-prepare rlds` (tools/rlds.py).

`open_builder` opens the dataset with `tfds.builder_from_directory`; `check_features` fails, before anything
is written, with one line naming a missing split or feature and listing the features the dataset has;
`read_episodes` yields one shard's episodes as role -> per-step values, by random access (`as_data_source`)
when the dataset was prepared as ArrayRecord, else in index order through `as_dataset` (the public DROID and
Open X-Embodiment releases are TFRecord). Per-step images are not decoded: their bytes pass through.
`FEATURES` / `METADATA` name the features of the public releases (DROID RLDS 1.0.0 / 1.0.1, RECON as Open
X-Embodiment's `berkeley_gnm_recon` 0.1.0).

TensorFlow and tensorflow-datasets are imported inside functions only: importing this module stays light.
"""

from __future__ import annotations

import functools
import os

import numpy as np

# Role -> feature path, per dataset. DROID: DROID RLDS 1.0.0 / 1.0.1; RECON: Open X-Embodiment
# berkeley_gnm_recon.
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
# Per-episode metadata kept in each record's meta when the dataset has it (read before the steps).
METADATA = {
    "droid": {
        "file_path": "episode_metadata/file_path",
        "recording_folderpath": "episode_metadata/recording_folderpath",
    },
    "recon": {"file_path": "episode_metadata/file_path"},
}
_STEPS_PER_BATCH = 1024  # TFRecord path: steps batched per episode (tf.data preallocates a whole batch)


class RLDSError(ValueError):
    """A one-line, user-facing problem with the input or output (missing feature, builder dir, settings)."""


class EpisodeError(ValueError):
    """One episode cannot be converted; it is counted and listed, the conversion goes on."""


def is_kept(metadata: dict, job: dict) -> bool:
    """--episodes: "success" keeps file_paths containing "success" (openpi's DROID filter)."""
    return job["episodes"] == "all" or "success" in metadata.get("file_path", "")


def one_line(error: Exception) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())


@functools.lru_cache(maxsize=8)  # one open per process, not one per shard
def open_builder(builder_dir: str):
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


def leaf_features(feature, prefix: str = "") -> dict:
    """Feature path ("steps/observation/image") -> feature connector, for every leaf."""
    import tensorflow_datasets as tfds

    if isinstance(feature, tfds.features.Sequence):  # tfds.features.Dataset (RLDS steps) is a Sequence
        return leaf_features(feature.feature, prefix)
    if isinstance(feature, tfds.features.FeaturesDict):
        leaves = {}
        for key, sub in feature.items():
            leaves.update(leaf_features(sub, f"{prefix}/{key}" if prefix else key))
        return leaves
    return {prefix: feature}


def check_features(builder, builder_dir: str, features: dict, split: str) -> None:
    import tensorflow_datasets as tfds

    if split not in builder.info.splits:
        raise RLDSError(f"split {split!r} not in {builder_dir}; available: {', '.join(builder.info.splits)}")
    top = builder.info.features
    if "steps" not in top.keys() or not isinstance(top["steps"], tfds.features.Dataset):
        raise RLDSError(f"{builder_dir} is not RLDS: no 'steps' feature of type tfds.features.Dataset")
    leaves = leaf_features(builder.info.features)
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
    for path, feature in leaf_features(builder.info.features).items():
        if path.startswith("steps/") and isinstance(feature, tfds.features.Image):
            *parents, leaf = path.split("/")
            node = decoders
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = tfds.decode.SkipDecoding()
    return decoders


def _value(tree: dict, path: str, skip: int = 0):
    """The value at a feature path ("episode_metadata/file_path"), below its first `skip` keys."""
    for key in path.split("/")[skip:]:
        tree = tree[key]
    return tree


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_episodes(builder, job: dict):
    """Yields (episode index, metadata, role -> list of per-step values, or the EpisodeError that reading
    raised, or None for an episode `is_kept` drops: its steps are never read)."""
    import tensorflow_datasets as tfds

    features, metadata, start, stop = job["features"], job["metadata"], job["start"], job["stop"]
    try:
        source = builder.as_data_source(split=job["split"], decoders=_decoders(builder))
    except NotImplementedError:  # not ArrayRecord: no random access
        source = None
    if source is not None:
        for index in range(start, stop):
            meta, data = {}, None
            try:
                episode = source[index]
                meta = {key: _text(_value(episode, path)) for key, path in metadata.items()}
                if is_kept(meta, job):
                    steps, data = episode["steps"], {role: [] for role in features}
                    for i in range(len(steps)):
                        step = steps[i]
                        for role, path in features.items():
                            data[role].append(_value(step, path, skip=1))
            except (ValueError, OSError, KeyError, IndexError) as e:
                data = EpisodeError(f"unreadable episode: {one_line(e)}")
            yield index, meta, data
        return

    def select(episode):  # traced once; batching in tf.data keeps per-step Python work off the read path
        steps = episode["steps"].map(
            lambda step: {role: _value(step, p, skip=1) for role, p in features.items()}
        )
        return {key: _value(episode, path) for key, path in metadata.items()}, steps.batch(_STEPS_PER_BATCH)

    dataset = builder.as_dataset(
        split=f"{job['split']}[{start}:{stop}]",
        decoders=_decoders(builder),
        shuffle_files=False,
        read_config=tfds.ReadConfig(interleave_cycle_length=1),  # index order: episode indices stay true
    ).map(select)
    for index, (meta, batches) in enumerate(tfds.as_numpy(dataset), start):
        meta, data = {key: _text(value) for key, value in meta.items()}, None
        if is_kept(meta, job):  # the steps of a dropped episode are never iterated
            data = {role: [] for role in features}
            for batch in batches:
                for role in features:
                    data[role].extend(batch[role])
        yield index, meta, data
