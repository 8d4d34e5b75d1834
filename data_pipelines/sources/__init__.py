"""Data sources: random-access record sources (grain protocol) over synthetic worlds, videos and shards."""

from __future__ import annotations

SOURCES = ("synthetic",)


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


def num_frames(data_config) -> int:
    """Frames per clip that the source yields."""
    if _check_source(data_config) == "synthetic":
        return data_config.world.num_frames


def image_hw(data_config) -> tuple[int, int]:
    """Frame size (H, W) that the source yields."""
    if _check_source(data_config) == "synthetic":
        return (data_config.world.image_size,) * 2
