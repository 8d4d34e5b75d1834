"""Planning episodes from held-out clip records (the droid and recon protocols; paper §8.6-8.7).

The reference DROID protocol (Terver et al., as the paper) plans 64 episodes, each a clip sampled from one
of 16 validation videos, seeded; NWM's RECON protocol plans clips of its test trajectories. Here the videos
are the episodes of the eval records (`lawm-prepare rlds --eval_fraction`, read from `eval/`): records
are visited in a seeded random order until `count` distinct episodes (`meta.source_id`) with a record long
enough for a clip are found (or the records run out); planning episode e takes episode e mod V of those V,
one of its records and a seeded random start, so the episodes spread over the videos instead of piling
onto the first records. A clip is decoded like the controller's evaluation clips (sources/clips.py: the
frames nearest to start + k / fps, short side resized, centre crop) and its actions are the record's
rows composed between the sampled frames (`clips.step_actions`, by `meta.action_kind`).

Records must hold `frames` and `actions` (what `lawm-prepare rlds` writes).
"""

from __future__ import annotations

import math

import numpy as np


def _max_start(num_frames_record: int, rate: float, num_frames: int, fps: float) -> int:
    """The last record frame a clip of `num_frames` at `fps` can start on (-1: the record is too short)."""
    return math.floor((num_frames_record - 1) - (num_frames - 1) * rate / fps + 1e-9)


def sample(source, count: int, num_frames: int, fps: float, seed: int) -> list[tuple[int, int]]:
    """(record index, start frame) of `count` planning episodes from a RecordSource (module docstring)."""
    rng = np.random.default_rng(seed)
    videos: dict[str, list[tuple[int, int]]] = {}  # source_id -> (record index, its last start), found order
    for index in rng.permutation(len(source)):
        if len(videos) >= count:
            break
        record = source[int(index)]
        if "frames" not in record or "actions" not in record:
            raise ValueError(f"{source.where(int(index))}: planning needs records with frames and actions")
        last = _max_start(len(record["frames"]), record["fps"], num_frames, fps)
        if last >= 0:
            videos.setdefault(record["meta"]["source_id"], []).append((int(index), last))
    if not videos:
        raise ValueError(f"no eval record is long enough for {num_frames} frames at {fps} fps")
    chosen, names = [], list(videos)
    for e in range(count):
        found = videos[names[e % len(names)]]
        index, last = found[rng.integers(len(found))]
        chosen.append((index, int(rng.integers(last + 1))))
    return chosen


def clip(record: dict, start: int, *, num_frames: int, fps: float, image_size: int, where: str = "") -> dict:
    """{"video": (F, S, S, 3) uint8, "actions": (F-1, A)}: the clip of a record from frame `start`."""
    from data_pipelines import video
    from data_pipelines.sources import clips

    rate, actions = record["fps"], np.asarray(record["actions"])
    sampling = dict(num_frames=num_frames, fps=fps, start_s=start / rate, where=where)
    frames = video.decode_jpeg_frames(
        record["frames"], source_fps=rate, size=image_size, crop="center", **sampling
    )
    indices = video.nearest_indices(len(actions) + 1, rate, **sampling)
    kind = record["meta"].get("action_kind", "additive")
    return {"video": frames, "actions": clips.step_actions(actions, indices, kind)}


def episode_clips(data_config, count: int, num_frames: int, seed: int):
    """The `count` planning clips of a run's data config (its `paths.eval` records), with where each
    comes from: [(clip, "shard[i] from frame s"), ...]."""
    from data_pipelines import records, sources

    _, fps, image_size = sources.clip_shape(data_config)
    source = records.RecordSource(data_config.paths.eval)
    out = []
    for index, start in sample(source, count, num_frames, fps, seed):
        where = source.where(index)
        made = clip(source[index], start, num_frames=num_frames, fps=fps, image_size=image_size, where=where)
        out.append((made, f"{where} from frame {start}"))
    return out
