"""Data sources: random-access record sources (grain protocol) over synthetic worlds, videos and shards.

`data.source` picks one:
  synthetic  the built-in world (data.world: WorldConfig fields); no files.
  records    clip records (data.paths.train / data.paths.eval: a folder, glob or list of shards), decoded
             to data.num_frames frames at data.fps, data.image_size square; bad records are skipped and
             counted, and the run stops past data.max_bad_fraction.
  video_folder
             videos decoded straight from files: data.videos.train / data.videos.eval (a folder, a glob, a
             list file of paths, or a list of paths; local or gs://); element i is a clip from video i, a
             random window in training (data.windows_per_video windows per video per pass, default 1) and
             as many evenly spread windows in evaluation (1: the centred one); num_frames / fps /
             image_size / seed / max_bad_fraction as for records, unreadable videos skipped and counted
             the same way. data.scene_cuts: what a window
             crossing a scene cut becomes, "split" (moved into one shot, default), "drop" (another window
             or video) or "keep" (no detection); sources/video_folder.py says how.
  yt_temporal
             YT-Temporal-1B (sources/yt_temporal.py says where the ids come from). data.yt_temporal.mode:
             "videos": data.yt_temporal.ids.train / .eval (id list files) and data.yt_temporal.video_dir (the
             downloaded <id>.mp4/webm/mkv files), sampled like video_folder; "clips":
             data.yt_temporal.records.train / .eval (clip records written by `lawm-prepare videos`), read
             like records. Other fields as for video_folder.
  camera_pan real footage under a known camera (sources/camera_pan.py): the source data.camera_pan.over
             names (records or video_folder, its paths as above) read as data.camera_pan.canvas-pixel
             square clips, and a window of data.image_size pixels panned over them by a random recorded
             motion (max_pan output pixels and max_zoom log-scale per frame); `actions` are that motion.

data.num_frames / data.fps / data.image_size left unset (None) take data.world's, so a synthetic config
switched to another source on the command line keeps its clip shape and the model's image size.
"""

from __future__ import annotations

SOURCES = ("synthetic", "records", "video_folder", "yt_temporal", "camera_pan")
PANNED = ("records", "video_folder")  # what camera_pan can move its window over


def _check_source(data_config) -> str:
    if data_config.source not in SOURCES:
        raise ValueError(f"data.source must be one of {SOURCES}, got {data_config.source!r}")
    return data_config.source


def make_source(data_config, split: str):
    """The random-access source a data config names, for `split` ("train" or "eval")."""
    if _check_source(data_config) == "synthetic":
        from data_pipelines.sources import synthetic

        return synthetic.SyntheticSource(
            synthetic.WorldConfig(**data_config.world), seed=data_config.seed, split=split
        )
    if data_config.source == "camera_pan":
        return _camera_pan(data_config, split)
    from data_pipelines import records

    frames, fps, size = clip_shape(data_config)
    sampling = dict(
        num_frames=frames,
        fps=fps,
        image_size=size,
        train=split == "train",
        seed=data_config.seed,
        counter=records.BadRecordCounter(max_bad_fraction=data_config.get("max_bad_fraction", 0.01)),
    )
    if data_config.source == "records":
        from data_pipelines.sources.clips import ClipSource

        return ClipSource(records.RecordSource(data_config.paths[split]), **sampling)
    windows = dict(
        windows_per_video=data_config.get("windows_per_video", 1),
        scene_cuts=data_config.get("scene_cuts", "split"),
    )
    if data_config.source == "video_folder":
        from data_pipelines.sources.video_folder import VideoFolderSource

        return VideoFolderSource(data_config.videos[split], **windows, **sampling)
    from data_pipelines.sources import yt_temporal

    yt = data_config.yt_temporal
    mode = yt.get("mode", "videos")
    return yt_temporal.make_source(
        mode,
        ids=yt.ids[split] if mode == "videos" else None,
        video_dir=yt.get("video_dir"),
        records_path=yt.records[split] if mode == "clips" else None,
        **windows,
        **sampling,
    )


def _camera_pan(data_config, split: str):
    from data_pipelines.sources import camera_pan

    options = data_config.camera_pan
    inner = data_config.copy_and_resolve_references()
    inner.source, inner.image_size = _panned(data_config), options.canvas
    return camera_pan.CameraPanSource(
        make_source(inner, split),
        image_size=clip_shape(data_config)[2],
        canvas=options.canvas,
        max_pan=options.max_pan,
        max_zoom=options.get("max_zoom", 0.0),
        repeats=options.get("repeats", 1),
        seed=data_config.seed,
        split=split,
    )


def _panned(data_config) -> str:
    over = data_config.camera_pan.over
    if over not in PANNED:
        raise ValueError(f"data.camera_pan.over must be one of {PANNED}, got {over!r}")
    return over


def clip_shape(data_config) -> tuple[int, float, int]:
    """(frames per clip, fps, square frame size) the source yields; unset fields are data.world's."""
    from data_pipelines.sources import synthetic

    world = synthetic.WorldConfig(**data_config.get("world", {}))
    shape = (world.num_frames, world.fps, world.image_size)
    if _check_source(data_config) == "synthetic":
        return shape
    fields = ("num_frames", "fps", "image_size")
    return tuple(
        default if data_config.get(key) is None else data_config.get(key)
        for key, default in zip(fields, shape, strict=True)
    )


def num_frames(data_config) -> int:
    """Frames per clip that the source yields."""
    return clip_shape(data_config)[0]


def image_hw(data_config) -> tuple[int, int]:
    """Frame size (H, W) that the source yields."""
    return (clip_shape(data_config)[2],) * 2


def check_paths(data_config) -> None:
    """Fails, naming the field, when the chosen source lacks the paths it reads (before any compute)."""
    source = _check_source(data_config)
    read = _panned(data_config) if source == "camera_pan" else source  # the source whose files are read
    if read == "synthetic":
        return
    if read == "records":
        fields = [f"paths.{split}" for split in ("train", "eval")]
    elif read == "video_folder":
        fields = [f"videos.{split}" for split in ("train", "eval")]
    elif data_config.yt_temporal.get("mode", "videos") == "clips":
        fields = [f"yt_temporal.records.{split}" for split in ("train", "eval")]
    else:
        fields = ["yt_temporal.video_dir"] + [f"yt_temporal.ids.{split}" for split in ("train", "eval")]
    for field in fields:
        value = data_config
        for key in field.split("."):
            value = value.get(key) if value is not None else None
        if not value:
            raise ValueError(f"data.{field} is not set (data.source={source!r})")
