"""lawm-prepare: cut videos into clip-record shards (`videos`); RLDS datasets go through `rlds`.

    lawm-prepare videos --input VIDEOS --output DIR [--clip_seconds 4 --fps 4 --stride_seconds 4
        --size 256 --videos_per_shard 8 --jpeg_quality 90 --scene_cuts split --scene_threshold 0.2
        --workers N]
    lawm-prepare videos --input ids.txt --video_dir DOWNLOADS --output DIR    # a YT-Temporal-1B id list
    lawm-prepare rlds ...                                                     # data_pipelines/tools/rlds.py

VIDEOS is a folder, a glob or a list file of videos, local or gs:// (sources/video_folder.py); with
--video_dir it is an id list resolved as sources/yt_temporal.py does. DIR is local.

Each video gives clips of F = round(clip_seconds * fps) frames at `fps`, decoded with `video.decode_clip`
(PTS sampling, short side resized to --size, aspect kept: no crop, so training can still take a random
square crop). Where they start depends on --scene_cuts, scene cuts being found first by data_pipelines/
scenes.py (FFmpeg's scene score above --scene_threshold), in the worker that cuts the video's clips:
  split  (default) clips lie inside shots (a shot runs from a cut to the next, or from the start or to the
         end of the video): they start every stride_seconds from each shot's first frame while the whole
         clip fits before the next cut, so no clip crosses a detected cut;
  drop   the fixed grid (starts every stride_seconds from 0 while the clip fits in the video), less the
         clips that cross a cut (whose first sampled frame lies before a cut and last at or after it);
  keep   the fixed grid, cuts not looked for (no detection cost).
Detection decodes the whole video once more before its clips are cut: the scene score itself adds ~5-8%
to a decode (0.04-0.08 ms a frame, measured on bikes.mp4 and bigbuckbunny.mp4, scenes.py), the extra
decode pass is the cost: 216 -> 439 ms for the one 4 s clip of bigbuckbunny.mp4 (720p, 5.3 s), 739 -> 971
ms for its five 1 s clips (CPU time, median of 5, --size 256, one process).

A record holds `frames`: the F frames as JPEGs (quality --jpeg_quality), `fps` and `meta` =
{source_id: the video's path, start_s, shot: the index of the shot holding its first frame (split and
drop)}. JPEG rather than re-encoded H.264 because encoding is ~6x cheaper (measured 8 ms vs 53 ms per
16-frame 256 px clip), needs no even frame sizes or encoder settings, and training decodes exactly the
frames it uses (PIL's draft mode scales while decoding); the price is ~3x the bytes.

Work units: videos are grouped in input order, --videos_per_shard to a shard `clips-NNNNN.array_record`,
so a shard depends on the input list and the parameters alone: a re-run maps the same videos to the same
shards without probing anything first (clips per shard follow from the videos' lengths). Units run in
parallel worker processes through the resumable shard writer (tools/shards.py): beside each shard
`clips-NNNNN.json` records its videos (per video: clips, `cuts` found (null under keep) and
`clips_dropped`, the clips of the fixed grid that cross a cut: skipped under drop, avoided by the shot
layout under split), clip counts and failures; a re-run skips complete shards, redoes interrupted ones and
refuses shards written from other videos or parameters (--scene_cuts and --scene_threshold included);
`manifest.json` (inputs, parameters, every shard, every failure, num_cuts and num_clips_dropped in all) is
replaced in one step once all shards are complete. Unreadable or too-short videos are listed there, not
fatal; a video that breaks midway keeps the clips cut before the break (with detection: the clips that
lie wholly in the part decoded before the break). When not one clip could be made (e.g. a folder of junk
files), the command fails with one line and writes no manifest.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys

from tqdm import tqdm

from data_pipelines import records, scenes, video
from data_pipelines.sources import video_folder, yt_temporal
from data_pipelines.tools import cli, shards

MANIFEST = shards.MANIFEST
_PROG = "lawm-prepare"
_PREFIX = "clips-"


def clip_starts(duration_s: float, clip_seconds: float, stride_seconds: float) -> list[float]:
    """Start times of the clips that fit in a video of this duration, one every stride_seconds."""
    if duration_s + 1e-6 < clip_seconds:
        return []
    count = math.floor((duration_s - clip_seconds) / stride_seconds + 1e-6) + 1
    return [round(k * stride_seconds, 6) for k in range(count)]


def _layout(path: str, source, params: dict) -> tuple[list[tuple[float, int | None]], dict, str]:
    """(start, shot) of each clip of a video, its per-video counts {cuts, clips_dropped}, and the error of a
    scan that broke midway ("" if none); VideoError when the video cannot be read at all."""
    info = video.probe(source, where=path)
    clip_seconds, stride = params["clip_seconds"], params["stride_seconds"]
    mode = params["scene_cuts"]
    if mode == "keep":
        starts = clip_starts(info.duration_s, clip_seconds, stride)
        if not starts:
            raise video.VideoError(
                f"{path}: {info.duration_s:.2f} s is shorter than one {clip_seconds} s clip"
            )
        return [(s, None) for s in starts], {"cuts": None, "clips_dropped": 0}, ""
    duration_s = info.duration_s
    if duration_s + 1e-6 < clip_seconds:  # no scan for a video too short anyway
        raise video.VideoError(f"{path}: {duration_s:.2f} s is shorter than one {clip_seconds} s clip")
    found = scenes.scan(source, threshold=params["scene_threshold"], where=path)
    if found.error:  # broke midway: clips only from what was scanned, then the error is recorded
        duration_s = min(duration_s, found.last_s + 1 / (info.fps or 25))
    span_s = (params["num_frames"] - 1) / params["fps"]
    grid = clip_starts(duration_s, clip_seconds, stride)
    crossing = {s for s in grid if scenes.crosses(s, span_s, found.cuts, info.fps)}
    if mode == "split":
        starts = scenes.starts_in_shots(duration_s, clip_seconds, stride, span_s, found.cuts, info.fps)
    else:
        starts = [(s, scenes.shot_of(s, found.cuts, info.fps)) for s in grid if s not in crossing]
    return starts, {"cuts": len(found.cuts), "clips_dropped": len(crossing)}, found.error


def video_clips(path: str, params: dict, counts: dict | None = None):
    """The clip records of one video, in time order; VideoError when it cannot be read. `counts` gets the
    video's {cuts, clips_dropped} once its cuts are known."""
    source = video_folder.whole_video(path)
    starts, found, error = _layout(path, source, params)
    if counts is not None:
        counts.update(found)
    for start_s, shot in starts:
        frames = video.decode_clip(
            source,
            num_frames=params["num_frames"],
            fps=params["fps"],
            start_s=start_s,
            size=params["size"],
            crop=None,
            where=path,
        )
        meta = {"source_id": path, "start_s": start_s}
        if shot is not None:
            meta["shot"] = shot
        yield {
            "frames": [video.encode_jpeg(frame, params["jpeg_quality"]) for frame in frames],
            "fps": float(params["fps"]),
            "meta": meta,
        }
    if error:
        raise video.VideoError(error)


def write_unit(shard_path: str, videos: list[str], params: dict) -> dict:
    """Write one shard from a group of videos (a top-level function: spawned workers import it)."""
    summary = {"shard": os.path.basename(shard_path), "params": params, "videos": [], "failures": []}

    def clips():
        for path in videos:
            count, counts = 0, {"cuts": None, "clips_dropped": 0}
            try:
                for record in video_clips(path, params, counts):
                    yield record
                    count += 1
            except video.VideoError as error:
                summary["failures"].append({"video": path, "error": str(error), "clips_kept": count})
            summary["videos"].append({"video": path, "clips": count, **counts})
        summary["clips"] = sum(v["clips"] for v in summary["videos"])
        summary["cuts"] = sum(v["cuts"] or 0 for v in summary["videos"])
        summary["clips_dropped"] = sum(v["clips_dropped"] for v in summary["videos"])

    return shards.write(shard_path, clips(), summary)


def _matches(unit: shards.Unit, summary: dict) -> bool:
    """A complete shard is this unit's; refuses one written from other videos or parameters."""
    videos, params = unit.args
    if summary["params"] != params or [v["video"] for v in summary["videos"]] != videos:
        raise SystemExit(
            cli.error_line(
                _PROG,
                f"{unit.path} was written from other videos or parameters; "
                "use a new --output (or the original arguments)",
            )
        )
    return True


class InputError(ValueError):
    """--input (or --video_dir) names no videos."""


class NoClipsError(ValueError):
    """Not one clip could be cut from the videos."""


def prepare_videos(args: argparse.Namespace) -> dict:
    """Write every missing shard, then the manifest; returns the manifest."""
    try:
        if args.video_dir:
            paths, missing = yt_temporal.resolve(args.input, args.video_dir)
        else:
            paths, missing = video_folder.list_videos(args.input), []
    except (OSError, ValueError) as e:
        raise InputError(str(e)) from None
    params = dict(
        clip_seconds=args.clip_seconds,
        fps=args.fps,
        num_frames=round(args.clip_seconds * args.fps),
        stride_seconds=args.stride_seconds,
        size=args.size,
        jpeg_quality=args.jpeg_quality,
        scene_cuts=args.scene_cuts,
        scene_threshold=args.scene_threshold if args.scene_cuts != "keep" else None,
    )
    shards.make_output(args.output)
    groups = [paths[i : i + args.videos_per_shard] for i in range(0, len(paths), args.videos_per_shard)]
    width = max(5, len(str(len(groups) - 1)))
    units = [
        shards.Unit(
            os.path.join(args.output, f"{_PREFIX}{k:0{width}d}{records.SHARD_SUFFIX}"), (group, params)
        )
        for k, group in enumerate(groups)
    ]
    plan = shards.Plan(args.output, units, _matches)
    clips = sum(s["clips"] for s in plan.sidecars if s)
    with tqdm(total=len(units), initial=len(plan.complete), unit="shard", desc=_PROG) as progress:
        progress.set_postfix(clips=clips)

        def done(unit: shards.Unit, summary: dict) -> None:
            nonlocal clips
            for failure in summary["failures"]:
                progress.write(f"{_PROG}: skipped {failure['video']}: {failure['error']}")
            clips += summary["clips"]
            progress.set_postfix(clips=clips)
            progress.update()

        summaries = plan.run(write_unit, workers=args.workers, on_done=done)
    failures = [failure for s in summaries for failure in s["failures"]]
    if not clips:  # no manifest: an output without clips is no dataset
        raise NoClipsError(
            f"no clip could be made from the {len(paths)} videos of {args.input} ({len(failures)} failed"
            + (f", e.g. {failures[0]['error']})" if failures else ")")
        )
    manifest = {
        "input": args.input,
        "video_dir": args.video_dir,
        "params": params,
        "num_videos": len(paths),
        "num_clips": clips,
        "num_shards": len(summaries),
        "num_cuts": sum(s.get("cuts", 0) for s in summaries),
        "num_clips_dropped": sum(s.get("clips_dropped", 0) for s in summaries),
        "shards": [
            {key: s[key] for key in ("shard", "clips", "cuts", "clips_dropped", "videos")} for s in summaries
        ],
        "failures": failures,
        "missing_ids": {"count": len(missing), "first": missing[:1000]},
    }
    plan.write_manifest(manifest)
    return manifest


def _parser() -> argparse.ArgumentParser:
    parser = cli.ArgumentParser(prog=_PROG, description="Write clip-record shards.")
    commands = parser.add_subparsers(dest="command", required=True)
    videos = commands.add_parser(
        "videos",
        help="cut videos into clip records",
        description="Cut each video into fixed-length clips at a target fps, stored as JPEG frame records.",
    )
    videos.add_argument("--input", required=True, help="folder, glob or list file of videos (local or gs://)")
    videos.add_argument("--output", required=True, help="local folder for the shards and manifest.json")
    videos.add_argument("--video_dir", help="makes --input a YT-Temporal-1B id list of files <id>.<ext> here")
    videos.add_argument("--clip_seconds", type=float, default=4.0, help="clip length (default 4)")
    videos.add_argument("--fps", type=float, default=4.0, help="frames per second kept (default 4)")
    videos.add_argument("--stride_seconds", type=float, default=4.0, help="between clip starts (default 4)")
    videos.add_argument("--size", type=int, default=256, help="short side in pixels; aspect kept (256)")
    videos.add_argument("--jpeg_quality", type=int, default=90, help="JPEG quality (default 90)")
    videos.add_argument("--videos_per_shard", type=int, default=8, help="videos per shard (default 8)")
    videos.add_argument(
        "--scene_cuts",
        choices=scenes.SCENE_CUTS,
        default="split",
        help="at a detected scene cut: lay clips out inside shots (split, default), skip clips that cross "
        "one (drop), or ignore cuts (keep)",
    )
    videos.add_argument(
        "--scene_threshold",
        type=float,
        default=scenes.THRESHOLD,
        help=f"FFmpeg scene score above which a frame starts a shot, in (0, 1) (default {scenes.THRESHOLD})",
    )
    videos.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: cores)")
    commands.add_parser("rlds", help="convert an RLDS dataset (DROID, RECON): lawm-prepare rlds --help")
    return parser


def main(argv: list[str]) -> int:
    if argv[:1] == ["rlds"]:  # the other command owns its arguments, --help included
        try:
            rlds = importlib.import_module("data_pipelines.tools.rlds")
        except ModuleNotFoundError as e:
            if e.name != "data_pipelines.tools.rlds":
                raise
            _parser().error("rlds: not available (data_pipelines/tools/rlds.py is missing)")
        return rlds.main(argv[1:]) or 0
    parser = _parser()
    args = parser.parse_args(argv)
    for name in ("clip_seconds", "fps", "stride_seconds", "size", "videos_per_shard", "workers"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name} must be > 0")
    if not 1 <= args.jpeg_quality <= 100:
        parser.error("--jpeg_quality must be in [1, 100]")
    if not 0 < args.scene_threshold < 1:
        parser.error("--scene_threshold must be in (0, 1)")
    try:
        manifest = prepare_videos(args)
    except (InputError, NoClipsError, shards.OutputError) as e:  # bad input or output: one line
        return cli.fail(_PROG, e)
    cuts = (
        f"{manifest['num_cuts']} scene cuts ({manifest['num_clips_dropped']} grid clips crossed one)"
        if args.scene_cuts != "keep"
        else "scene cuts kept"
    )
    print(
        f"lawm-prepare: {manifest['num_clips']} clips in {manifest['num_shards']} shards from "
        f"{manifest['num_videos']} videos; {len(manifest['failures'])} failed, {cuts}, "
        f"{manifest['missing_ids']['count']} ids without a file (see {os.path.join(args.output, MANIFEST)})",
        file=sys.stderr,
    )
    return 0


def run() -> None:
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
    run()
