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
             the centred window in evaluation; num_frames / fps / image_size / seed / max_bad_fraction as for
             records, unreadable videos skipped and counted the same way.
  yt_temporal
             YT-Temporal-1B (sources/yt_temporal.py says where the ids come from). data.yt_temporal.mode:
             "videos": data.yt_temporal.ids.train / .eval (id list files) and data.yt_temporal.video_dir (the
             downloaded <id>.mp4/webm/mkv files), sampled like video_folder; "clips":
             data.yt_temporal.records.train / .eval (clip records written by `lawm-prepare videos`), read
             like records. Other fields as for video_folder.
"""

from __future__ import annotations

SOURCES = ("synthetic", "records", "video_folder", "yt_temporal")


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
    from data_pipelines import records

    sampling = dict(
        num_frames=data_config.num_frames,
        fps=data_config.fps,
        image_size=data_config.image_size,
        train=split == "train",
        seed=data_config.seed,
        counter=records.BadRecordCounter(max_bad_fraction=data_config.get("max_bad_fraction", 0.01)),
    )
    if data_config.source == "records":
        from data_pipelines.sources.clips import ClipSource

        return ClipSource(records.RecordSource(data_config.paths[split]), **sampling)
    windows_per_video = data_config.get("windows_per_video", 1)
    if data_config.source == "video_folder":
        from data_pipelines.sources.video_folder import VideoFolderSource

        return VideoFolderSource(data_config.videos[split], windows_per_video=windows_per_video, **sampling)
    from data_pipelines.sources import yt_temporal

    yt = data_config.yt_temporal
    mode = yt.get("mode", "videos")
    return yt_temporal.make_source(
        mode,
        ids=yt.ids[split] if mode == "videos" else None,
        video_dir=yt.get("video_dir"),
        records_path=yt.records[split] if mode == "clips" else None,
        windows_per_video=windows_per_video,
        **sampling,
    )


def num_frames(data_config) -> int:
    """Frames per clip that the source yields."""
    if _check_source(data_config) == "synthetic":
        return data_config.world.num_frames
    return data_config.num_frames


def image_hw(data_config) -> tuple[int, int]:
    """Frame size (H, W) that the source yields."""
    if _check_source(data_config) == "synthetic":
        return (data_config.world.image_size,) * 2
    return (data_config.image_size,) * 2


def check_paths(data_config) -> None:
    """Fails, naming the field, when the chosen source lacks the paths it reads (before any compute)."""
    source = _check_source(data_config)
    if source == "synthetic":
        return
    if source == "records":
        fields = [f"paths.{split}" for split in ("train", "eval")]
    elif source == "video_folder":
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
