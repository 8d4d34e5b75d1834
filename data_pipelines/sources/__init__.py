"""Data sources: random-access record sources (grain protocol) over synthetic worlds, videos and shards.

`data.source` picks one:
  synthetic  the built-in world (data.world: WorldConfig fields); no files.
  records    clip records (data.paths.train / data.paths.eval: a folder, glob or list of shards), decoded
             to data.num_frames frames at data.fps, data.image_size square; bad records are skipped and
             counted, and the run stops past data.max_bad_fraction.
"""

from __future__ import annotations

SOURCES = ("synthetic", "records")


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
    from data_pipelines.sources.clips import ClipSource

    counter = records.BadRecordCounter(max_bad_fraction=data_config.get("max_bad_fraction", 0.01))
    return ClipSource(
        records.RecordSource(data_config.paths[split]),
        num_frames=data_config.num_frames,
        fps=data_config.fps,
        image_size=data_config.image_size,
        train=split == "train",
        seed=data_config.seed,
        counter=counter,
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
