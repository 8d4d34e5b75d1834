"""The latent actions of every clip of every video, as one Parquet file (lawm-latents).

    write(lawm.load(MODEL), video_folder.list_videos(VIDEOS), "latents.parquet")

VIDEOS: a folder, a glob, a list file or one video (local or gs://), as training reads them
(data_pipelines.sources.video_folder.list_videos). Each video is cut into clips of the training clip's
length at the model's frame rate, centre-cropped to its size; consecutive clips share one state (clip c
starts at c (T-1) k / fps seconds), so the latents of a video tile it without gap or overlap, each computed
on a clip exactly as in training; the tail shorter than one clip step is left out. One row per latent:

    source        the video's path                     clip_start_s  where its clip starts (seconds)
    clip          the clip's index in the video         step          t: the latent of s_t -> s_{t+1}
    time_s        when s_t's first frame is shown       latent        the latent action (L float32)
    code          its codebook entry (discrete regularizers only)
    clip_<stat>   the regularizer's statistics over the clip's latents (what training logs as latent/<stat>:
                  l1, l2, near_zero_frac, and e.g. kl, sigma_mean (noisy), perplexity, code_usage (discrete))

pandas.read_parquet / pyarrow.parquet.read_table / polars / DuckDB open it directly; its schema metadata
"lawm" (JSON) records the model, its step, the clip shape and the skipped videos with their reasons.

Streaming and resumable: each video's rows go to OUTPUT.parts/<index>.parquet (a skipped video to
<index>.skipped.json) as soon as it is done; a re-run with the same model and videos skips the videos
already there, then all parts are merged, in video order, into OUTPUT (written whole, then renamed over
it) and OUTPUT.parts is removed. A video that cannot be read, or is shorter than one clip, is skipped and
counted; the command fails (writing nothing) only when no video gave a clip.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
from absl import logging
from etils import epath

from data_pipelines import video
from data_pipelines.sources import video_folder
from lawm import files

METADATA_KEY = b"lawm"


class Skipped(Exception):
    """A video that gives no clip (unreadable, or shorter than one clip)."""


def schema(model):
    """The table's columns for this model (its latent size, its regularizer's statistics)."""
    import pyarrow as pa

    names = model.statistic_names()
    fields = [
        ("source", pa.string()),
        ("clip", pa.int32()),
        ("clip_start_s", pa.float64()),
        ("step", pa.int32()),
        ("time_s", pa.float64()),
        ("latent", pa.list_(pa.float32(), model.latent_dim)),
    ]
    if "code" in names:
        fields.append(("code", pa.int32()))
    fields += [(f"clip_{name}", pa.float32()) for name in names if name != "code"]
    return pa.schema(fields)


def clip_starts(model, path, source) -> list[float]:
    """Start times of the clips that fit the video (consecutive clips share one state); `source`: what
    video_folder.whole_video gives for `path`."""
    info = video.probe(source, where=path)
    last_s = info.duration_s - (1.0 / info.fps if info.fps > 0 else 0.0)
    span_s = (model.clip_frames - 1) / model.fps
    step_s = (model.clip_states - 1) * model.frames_per_state / model.fps
    if last_s + 1e-6 < span_s:
        raise Skipped(
            f"{path}: {info.duration_s:.2f} s is shorter than one clip ({span_s + 1 / model.fps:.2f} s)"
        )
    return [i * step_s for i in range(int((last_s - span_s) / step_s + 1e-6) + 1)]


def video_table(model, path, table_schema, batch_size: int):
    """The rows of one video (every clip's latents), as a pyarrow Table."""
    import pyarrow as pa

    h, w = model.image_hw
    source = video_folder.whole_video(path)  # a remote video is read once, not once per clip
    starts = clip_starts(model, path, source)
    columns = {name: [] for name in table_schema.names}
    steps = model.clip_states - 1
    for first in range(0, len(starts), batch_size):
        chunk = starts[first : first + batch_size]
        clips = []
        for start in chunk:
            clips.append(
                video.decode_clip(
                    source,
                    num_frames=model.clip_frames,
                    fps=model.fps,
                    start_s=start,
                    size=h if h == w else None,
                    where=path,
                )
            )
        latents, raw = model.clip_latents(clips)
        statistics = model.latent_statistics(raw)
        for b, start in enumerate(chunk):
            columns["source"] += [path] * steps
            columns["clip"] += [first + b] * steps
            columns["clip_start_s"] += [start] * steps
            columns["step"] += list(range(steps))
            columns["time_s"] += [start + t * model.frames_per_state / model.fps for t in range(steps)]
            columns["latent"] += list(latents[b])
            for name, values in statistics.items():
                column = "code" if name == "code" else f"clip_{name}"
                columns[column] += list(values[b]) if name == "code" else [float(values[b])] * steps
    latent = np.asarray(columns.pop("latent"), np.float32).reshape(-1)
    arrays = {name: np.asarray(values) for name, values in columns.items()}
    arrays["latent"] = pa.FixedSizeListArray.from_arrays(latent, model.latent_dim)
    return pa.table(arrays, schema=table_schema)


def write(model, videos: list[str], output, batch_size: int = 8) -> dict:
    """Writes OUTPUT (module docstring), resuming from OUTPUT.parts; returns the summary it records."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    output = epath.Path(output)
    parts = output.parent / f"{output.name}.parts"
    manifest = {"model": model.source, "step": model.step, "videos": list(videos)}
    key = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    if (parts / "manifest.json").exists() and files.read_json(parts / "manifest.json").get("key") != key:
        raise ValueError(
            f"{parts} holds the partial output of another model or list of videos: remove it or choose "
            "another --output"
        )
    files.write_json(parts / "manifest.json", {"key": key, **manifest})
    table_schema = schema(model)
    for i, path in enumerate(videos):
        done, skipped = parts / f"{i:06d}.parquet", parts / f"{i:06d}.skipped.json"
        if done.exists() or skipped.exists():
            continue  # resumed: this video was done by an earlier run
        try:
            table = video_table(model, path, table_schema, batch_size)
        except (Skipped, video.VideoError, OSError) as error:
            reason = " ".join(str(error).split())
            logging.warning("skipped %s", reason)
            files.write_json(skipped, {"path": path, "reason": reason})
            continue
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        files.write_atomic(done, sink.getvalue().to_pybytes())
        logging.info("%d/%d %s: %d latent actions", i + 1, len(videos), path, table.num_rows)
    done = [parts / f"{i:06d}.parquet" for i in range(len(videos)) if (parts / f"{i:06d}.parquet").exists()]
    skipped = [files.read_json(p) for p in sorted(parts.glob("*.skipped.json"))]
    rows = 0
    for part in done:
        with part.open("rb") as file:
            rows += pq.ParquetFile(file).metadata.num_rows
    summary = {
        "model": model.source,
        "step": model.step,
        "videos": len(videos),
        "fps": model.fps,
        "clip_frames": model.clip_frames,
        "frames_per_state": model.frames_per_state,
        "latent_dim": model.latent_dim,
        "regularizer": model.system.config.regularizer.name,
        "videos_read": len(done),
        "clips": rows // (model.clip_states - 1),
        "latents": rows,
        "skipped": skipped,
    }
    if not done:
        parts.rmtree()
        raise ValueError(f"no clip could be read from the {len(videos)} videos ({len(skipped)} skipped)")
    temporary = output.parent / f".{output.name}.{os.getpid()}.tmp"
    metadata = {METADATA_KEY: json.dumps(summary, default=str).encode()}
    with temporary.open("wb") as sink, pq.ParquetWriter(sink, table_schema.with_metadata(metadata)) as writer:
        for part in done:  # one part in memory at a time
            with part.open("rb") as file:
                writer.write_table(pq.read_table(file, schema=table_schema))
    temporary.replace(output)
    parts.rmtree()
    return summary
