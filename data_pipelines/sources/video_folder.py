"""Training clips sampled straight from video files, as a grain random-access source.

The videos are a folder (its files with a video extension, sorted), a glob (sorted matches), a list file
(one path per line, in file order; blank lines and "#" comments skipped; relative paths are relative to
the list file's folder) or a list of paths; local or `gs://...` alike, through etils.epath.

Element i is one clip from video i: {"video": uint8 (F, S, S, 3)}, F frames at `fps` from a window of the
video (decoded with `video.decode_clip`: PTS sampling, seeking, short side resized to S). In training the
window starts uniformly at random in [0, duration - F / fps] and the crop is random, both drawn from
`np.random.default_rng([seed, i])`, so runs repeat exactly; in evaluation the window is centred in the
video and so is the crop. The source only ever sees indices in [0, len) (grain's repeat re-reads them every
epoch), so `windows_per_video=k` makes it k * videos long, element i being video i % videos: k
independent windows of every video per pass over the data.

A video that cannot be read (missing, corrupt, truncated, no video stream, or shorter than the clip's
(F - 1) / fps span, which would need repeated frames) is replaced by a deterministic substitute and
counted, exactly like a bad record in `ClipSource`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Sequence

import numpy as np
from etils import epath

from data_pipelines import video
from data_pipelines.sources.clips import SampledSource

VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".flv")
_GLOB_CHARS = re.compile(r"[*?[]")


def is_remote(path: str) -> bool:
    return "://" in path


def _glob(pattern: str) -> list[str]:
    """Sorted matches of a glob; the part before the first wildcard is listed through epath (gs:// too)."""
    parts = pattern.split("/")
    first = next(i for i, part in enumerate(parts) if _GLOB_CHARS.search(part))
    base = "/".join(parts[:first]) or ("/" if pattern.startswith("/") else ".")
    return sorted(str(p) for p in epath.Path(base).glob("/".join(parts[first:])))


def _read_list(list_file: epath.Path) -> list[str]:
    paths = []
    for line in list_file.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        paths.append(line if is_remote(line) or line.startswith("/") else str(list_file.parent / line))
    return paths


def list_videos(videos: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Video paths from a folder, a glob, a list file, a single video file or a sequence of paths."""
    if not isinstance(videos, (str, os.PathLike)):
        paths = [os.fspath(v) if isinstance(v, os.PathLike) else str(v) for v in videos]
    else:
        spec = os.fspath(videos)
        path = epath.Path(spec)
        if _GLOB_CHARS.search(spec):
            paths = _glob(spec)
        elif path.is_dir():
            paths = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            paths = [spec]
        elif path.exists():
            paths = _read_list(path)
        else:
            raise FileNotFoundError(f"no such folder, list file or video: {spec}")
    if not paths:
        raise ValueError(f"no videos in {videos!r}")
    return paths


@contextlib.contextmanager
def open_video(path: str):
    """What PyAV should open: a local path as is (FFmpeg reads it), a remote one as an epath file object."""
    if not is_remote(path):
        yield path
        return
    try:
        file = epath.Path(path).open("rb")
    except OSError as e:
        raise video.VideoError(f"{path}: cannot open: {e}") from None
    with file:
        yield file


class VideoFolderSource(SampledSource):
    """Clips from video files (`**sampling`: SampledSource's keyword arguments)."""

    what = "videos"

    def __init__(
        self,
        videos: str | os.PathLike | Sequence[str | os.PathLike],
        *,
        windows_per_video: int = 1,
        **sampling,
    ):
        if windows_per_video < 1:
            raise ValueError(f"windows_per_video must be >= 1, got {windows_per_video}")
        super().__init__(**sampling)
        self.paths = list_videos(videos)
        self.windows_per_video = windows_per_video if self.train else 1  # evaluation: one centred window
        # Identifies the video list in the repr: a resumed run must see the same videos in the same order.
        self._digest = hashlib.sha1("\n".join(self.paths).encode()).hexdigest()[:10]

    def __len__(self) -> int:
        return len(self.paths) * self.windows_per_video

    def __repr__(self) -> str:  # grain checkpoints identify a source by its repr
        return (
            f"{type(self).__name__}({len(self.paths)} videos, first={self.paths[0]!r}, "
            f"sha1={self._digest}, num_frames={self.num_frames}, fps={self.fps}, "
            f"image_size={self.image_size}, train={self.train}, seed={self.seed}, "
            f"windows_per_video={self.windows_per_video})"
        )

    def where(self, index: int) -> str:
        """The video behind element `index`."""
        return self.paths[index % len(self.paths)]

    def window_start(self, duration_s: float, rng: np.random.Generator | None) -> float:
        """Where the clip starts: uniform over the video in training (rng), centred in evaluation (None)."""
        latest = max(duration_s - self.num_frames / self.fps, 0.0)
        return float(rng.uniform(0.0, latest)) if rng is not None else latest / 2

    def _clip(self, index: int) -> dict:
        path = self.where(index)
        rng = self.rng(index)
        with open_video(path) as source:
            duration_s = video.probe(source, where=path).duration_s
            if duration_s < (self.num_frames - 1) / self.fps:
                raise video.VideoError(
                    f"{path}: {duration_s:.2f} s is shorter than a clip of {self.num_frames} frames at "
                    f"{self.fps} fps"
                )
            if not isinstance(source, str):
                source.seek(0)
            frames = video.decode_clip(
                source,
                num_frames=self.num_frames,
                fps=self.fps,
                start_s=self.window_start(duration_s, rng),
                size=self.image_size,
                crop="random" if self.train else "center",
                rng=rng,
                where=path,
            )
        return {"video": frames}
