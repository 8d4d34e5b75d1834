"""YT-Temporal-1B (Zellers et al. 2022, MERLOT Reserve) as users hold it: a list of ids and the downloads.

Where the ids come from: the release (github.com/rowanz/merlot_reserve) published the YouTube ids of its
~20M videos in a public bucket (gs://merlot/yttemporal1b/...). That bucket is gone (reported in
rowanz/merlot_reserve#27 and facebookresearch/vjepa2#58), and many of the videos no longer play on
YouTube. So users bring their own copy of the list, or any list of YouTube ids, and their own downloads,
e.g. `yt-dlp -o "%(id)s.%(ext)s" -a ids.txt` into one folder (local or gs://).

- The id list: one id per line; anything after the first comma or whitespace (extra CSV columns) is
  ignored, as are blank lines, "#" comments and a header line ("id", "video_id", ...).
- The folder: files named `<id>.<ext>` with ext one of mp4, webm, mkv (if an id has several, the first in
  that order wins). Ids without a file are skipped when the source is built and reported in one log line
  (count and the first few); `missing_ids` keeps them all. Nothing is dropped silently.

Two modes (`make_source`):
  videos  decode straight from the downloads: a random window per video (`windows_per_video` per pass)
          in training, the centred window in evaluation, kept off scene cuts per `scene_cuts`
          (`VideoFolderSource`);
  clips   pre-cut clip records written by `lawm-prepare videos` (`ClipSource`): decoding a short clip is
          cheaper than seeking into a long download, at the cost of a fixed set of windows.
"""

from __future__ import annotations

import os
import re

from absl import logging
from etils import epath

from data_pipelines import records
from data_pipelines.sources.clips import ClipSource
from data_pipelines.sources.video_folder import VideoFolderSource

EXTENSIONS = ("mp4", "webm", "mkv")  # preference order when an id was downloaded more than once
MODES = ("videos", "clips")
_HEADERS = {"id", "ids", "video_id", "videoid", "youtube_id", "vid"}
_SHOW_MISSING = 5


def read_ids(ids_file: str | os.PathLike) -> list[str]:
    """The ids of a list file, in order (first column; comments, blanks and a header line skipped)."""
    ids = []
    for line in epath.Path(ids_file).read_text().splitlines():
        fields = re.split(r"[,\s]+", line.strip(), maxsplit=1)
        if not fields[0] or fields[0].startswith("#") or (not ids and fields[0].lower() in _HEADERS):
            continue
        ids.append(fields[0])
    return ids


def find_videos(ids: list[str], video_dir: str | os.PathLike) -> tuple[list[str], list[str]]:
    """(paths of the ids that have a file in video_dir, in id order; the ids that have none).

    Lists the folder once instead of testing each id: on gs:// one listing is far cheaper than 20M stats.
    """
    rank = {ext: i for i, ext in enumerate(EXTENSIONS)}
    files: dict[str, tuple[int, str]] = {}
    for path in epath.Path(video_dir).iterdir():
        stem, _, ext = path.name.rpartition(".")
        ext = ext.lower()
        if stem and ext in rank and (stem not in files or rank[ext] < files[stem][0]):
            files[stem] = (rank[ext], str(path))
    paths, missing = [], []
    for video_id in ids:
        if video_id in files:
            paths.append(files[video_id][1])
        else:
            missing.append(video_id)
    return paths, missing


def resolve(ids_file: str | os.PathLike, video_dir: str | os.PathLike) -> tuple[list[str], list[str]]:
    """find_videos over a list file, logging the ids without a file; raises when none has one."""
    ids = read_ids(ids_file)
    paths, missing = find_videos(ids, video_dir)
    if missing:
        logging.warning(
            "YT-Temporal-1B: %d of %d ids in %s have no video in %s (skipped), e.g. %s",
            len(missing),
            len(ids),
            ids_file,
            video_dir,
            ", ".join(missing[:_SHOW_MISSING]),
        )
    if not paths:
        raise ValueError(
            f"none of the {len(ids)} ids in {ids_file} has a video (<id>.{{mp4,webm,mkv}}) in {video_dir}"
        )
    return paths, missing


class YTTemporalVideos(VideoFolderSource):
    """VideoFolderSource over the downloaded videos of an id list; `missing_ids`: the ids without a file."""

    def __init__(self, ids_file: str | os.PathLike, video_dir: str | os.PathLike, **kwargs):
        paths, self.missing_ids = resolve(ids_file, video_dir)
        super().__init__(paths, **kwargs)


def make_source(
    mode: str,
    *,
    ids: str | os.PathLike | None = None,
    video_dir: str | os.PathLike | None = None,
    records_path: str | os.PathLike | None = None,
    windows_per_video: int = 1,
    scene_cuts: str = "split",
    **sampling,
):
    """The YT-Temporal-1B source: "videos" needs `ids` and `video_dir`, "clips" needs `records_path`;
    `sampling`: the keyword arguments of SampledSource (num_frames, fps, image_size, train, ...);
    `scene_cuts` applies to "videos" (VideoFolderSource; clip records had theirs applied by lawm-prepare)."""
    if mode == "videos":
        if not ids or not video_dir:
            raise ValueError('yt_temporal mode "videos" needs an id list (ids) and a folder (video_dir)')
        return YTTemporalVideos(
            ids, video_dir, windows_per_video=windows_per_video, scene_cuts=scene_cuts, **sampling
        )
    if mode == "clips":
        if not records_path:
            raise ValueError('yt_temporal mode "clips" needs clip records (records) from lawm-prepare')
        return ClipSource(records.RecordSource(records_path), **sampling)
    raise ValueError(f"yt_temporal mode must be one of {MODES}, got {mode!r}")
