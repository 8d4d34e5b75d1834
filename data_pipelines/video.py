"""Video decoding and temporal sampling with PyAV: any container/codec FFmpeg reads -> uint8 clips.

A clip is `num_frames` frames at a target `fps` starting at `start_s`: for each target time
t_k = start_s + k / fps the decoded frame whose presentation timestamp (PTS) is nearest is chosen; a tie
(within `TIE_EPS_S`) goes to the earlier frame, the one on screen at t_k. Choosing by PTS rather than by
frame count makes any native rate work: 30, 29.97 (30000/1001), 25, and variable frame rates. Times are
seconds on the stream's own timeline, where 0 is its first frame (the stream's start_time), and a window
that runs past the last frame repeats the last frame. Frames are resized (short side to `size`) and
cropped to `size x size`: a random position from `rng` in training, the centre in evaluation. Output stays
uint8 so the host->device transfer is small; normalisation happens on device.

Bad input (corrupt or truncated bytes, no video stream, zero frames, a window starting after the last
frame) raises `VideoError` with a one-line message; the pipeline skips and counts such records.

`iter_frames` decodes a whole stream as (frame, time) pairs on the same timeline, and decode_clip's
`on_frame` sees every frame it decodes: both feed scene-cut detection (scenes.py).

Dimension keys: F frames, H height, W width, C = 3 colours.
"""

from __future__ import annotations

import bisect
import io
import math
import os
from collections.abc import Sequence
from fractions import Fraction
from typing import NamedTuple

import av
import av.video.reformatter
import numpy as np
from PIL import Image

# Two target-to-frame distances closer than this are a tie (float rounding of exact PTS ties, e.g. 4 fps
# sampled from 30 fps hits the exact midpoint between two frames at every other step).
TIE_EPS_S = 1e-6
# Frame threading: measured on a 2-core CPU: 2150 frames/s single-threaded vs 1200 with AUTO threads
# on 2 cores; on one core the thread type made no difference to decode_clip. The pipeline already decodes
# several clips in parallel threads, so one thread per decoder.
THREAD_TYPE = "NONE"
# swscale's bilinear widens its filter when shrinking, so it does not alias like a 2-tap bilinear would.
INTERPOLATION = "BILINEAR"
CROPS = ("center", "random", None)


class VideoError(ValueError):
    """A video (or JPEG frame list) that cannot be decoded into the requested clip."""


class VideoInfo(NamedTuple):
    duration_s: float
    fps: float  # the stream's average rate (nominal for variable frame rate)
    num_frames_estimate: int  # from the container header when present, else duration * fps
    width: int
    height: int


def _fail(where: str, message: str) -> VideoError:
    message = " ".join(str(message).split())  # FFmpeg messages can span lines; the log wants one
    return VideoError(f"{where}: {message}" if where else message)


def _open(data_or_path, where: str):
    """An input container and its first video stream, set up for single-threaded decoding."""
    if isinstance(data_or_path, (bytes, bytearray, memoryview)):
        if not len(data_or_path):
            raise _fail(where, "empty video bytes")
        source = io.BytesIO(data_or_path)
    elif hasattr(data_or_path, "read"):
        source = data_or_path
    else:
        source = os.fspath(data_or_path)
    try:
        container = av.open(source, mode="r")
    except (av.error.FFmpegError, OSError) as e:
        raise _fail(where, f"cannot open video: {e}") from None
    if not container.streams.video:
        container.close()
        raise _fail(where, "no video stream")
    stream = container.streams.video[0]
    stream.codec_context.thread_type = THREAD_TYPE
    stream.codec_context.thread_count = 1
    return container, stream


def probe(data_or_path, *, where: str = "") -> VideoInfo:
    """Duration, nominal fps, frame count estimate and size of the first video stream (bytes or a path)."""
    container, stream = _open(data_or_path, where)
    with container:
        rate = stream.average_rate or stream.guessed_rate or 0
        if stream.duration is not None:
            duration_s = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration_s = container.duration / av.time_base
        else:
            duration_s = 0.0
        num_frames = stream.frames or round(duration_s * float(rate))
        return VideoInfo(duration_s, float(rate), int(num_frames), stream.width, stream.height)


def sample_times(num_frames: int, fps: float, start_s: float) -> list[float]:
    """The target times t_k = start_s + k / fps, k < num_frames."""
    if num_frames <= 0 or not fps > 0 or not start_s >= 0:
        raise ValueError(f"need num_frames > 0, fps > 0, start_s >= 0; got {num_frames}, {fps}, {start_s}")
    return [start_s + k / fps for k in range(num_frames)]


def _earlier_is_nearer(t: float, earlier: float, later: float) -> bool:
    return t - earlier <= later - t + TIE_EPS_S


def _check_crop(crop: str | None, rng) -> None:
    """Caller errors are plain ValueErrors, raised before decoding: they must never pass as bad input."""
    if crop not in CROPS:
        raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
    if crop == "random" and rng is None:
        raise ValueError('crop="random" needs an rng (numpy Generator)')


def _resize_plan(height: int, width: int, size: int | None, crop: str | None, rng) -> tuple:
    """((resized_h, resized_w), (top, left, crop_h, crop_w)) for a clip whose first frame has this size.

    Every frame of the clip is resized to (resized_h, resized_w), so a stream that changes resolution
    midway still yields one array.
    """
    if size is None:
        return (height, width), (0, 0, height, width)
    scale = size / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    if crop is None:
        return (new_h, new_w), (0, 0, new_h, new_w)
    if crop == "center":
        top, left = (new_h - size) // 2, (new_w - size) // 2
    else:
        top, left = int(rng.integers(0, new_h - size + 1)), int(rng.integers(0, new_w - size + 1))
    return (new_h, new_w), (top, left, size, size)


def _crop(image_HWC: np.ndarray, box) -> np.ndarray:
    top, left, crop_h, crop_w = box
    return image_HWC[top : top + crop_h, left : left + crop_w]


def _timed(container, stream):
    """(frame, t) for each frame decoded from the container's position on; t in seconds on the stream's
    timeline, (pts - start_pts) * time_base, or one nominal frame after the previous one without a PTS."""
    time_base = float(stream.time_base)
    start_pts = stream.start_time or 0
    prev_t = None
    for frame in container.decode(stream):
        if frame.pts is not None:
            t = (frame.pts - start_pts) * time_base
        else:  # rare (raw streams): assume the nominal rate
            t = prev_t + 1 / float(stream.average_rate or 25) if prev_t is not None else 0.0
        yield frame, t
        prev_t = t


def iter_frames(data_or_path, *, where: str = ""):
    """Every frame of the first video stream, decoded in order, as (av.VideoFrame, t seconds) pairs, t on
    decode_clip's timeline (0 = the first frame). Raises VideoError when the video cannot be opened or
    decoding fails (after the frames decoded before the failure)."""
    container, stream = _open(data_or_path, where)
    with container:
        try:
            yield from _timed(container, stream)
        except (av.error.FFmpegError, OSError) as e:
            raise _fail(where, f"decoding failed: {e}") from None


def _decode_nearest(container, stream, targets: list[float], seek: bool, where: str, on_frame=None) -> list:
    """For each target time, the decoded av.VideoFrame with the nearest PTS (one pass, stops early);
    `on_frame(frame, t)` sees every frame decoded for it, in order."""
    start_pts = stream.start_time or 0
    if seek and targets[0] > 0:
        # Backward seek lands on a keyframe at or before t_0, hence at or before the frame just before t_0,
        # so decoding forward from it sees every candidate for t_0.
        container.seek(
            start_pts + int(targets[0] / float(stream.time_base)),
            stream=stream,
            backward=True,
            any_frame=False,
        )
    chosen, prev, prev_t, first = [], None, -math.inf, True
    for frame, t in _timed(container, stream):
        if first and seek and t > targets[0] + TIE_EPS_S and targets[0] > 0:
            # The demuxer seeked past t_0 (some containers index coarsely): decode from the start instead.
            container.seek(start_pts, stream=stream, backward=True, any_frame=False)
            return _decode_nearest(container, stream, targets, False, where, on_frame)
        first = False
        if on_frame is not None:
            on_frame(frame, t)
        while len(chosen) < len(targets) and t >= targets[len(chosen)]:
            target = targets[len(chosen)]
            chosen.append(prev if prev is not None and _earlier_is_nearer(target, prev_t, t) else frame)
        if len(chosen) == len(targets):
            return chosen
        prev, prev_t = frame, t
    if prev is None:
        raise _fail(where, "no decodable frames")
    if not chosen and targets[0] > prev_t + TIE_EPS_S:
        raise _fail(where, f"window starts at {targets[0]:.3f} s, after the last frame at {prev_t:.3f} s")
    return chosen + [prev] * (len(targets) - len(chosen))  # the video ended early: repeat its last frame


def decode_clip(
    data_or_path,
    *,
    num_frames: int,
    fps: float,
    start_s: float = 0.0,
    size: int | None = None,
    crop: str | None = "center",
    rng: np.random.Generator | None = None,
    seek: bool = True,
    where: str = "",
    on_frame=None,
) -> np.ndarray:
    """Sample a clip frames_FHWC (uint8, F = num_frames) from encoded video bytes, a file object or a path.

    Frame k is the frame whose PTS is nearest to start_s + k / fps (ties to the earlier frame); past the end
    of the video the last frame is repeated. With `seek`, decoding starts at the keyframe before start_s
    instead of at the start of the video (same frames, less work). `size`: resize the short side to it, then
    crop `size x size` at the centre ("center"), at a position drawn from `rng` ("random"), or not at all
    (None); with size=None frames keep their native size. `where` prefixes error messages (a source id).
    `on_frame(frame, t)`: called with every frame decoded for the clip (from the seek point to the last one
    it needs) and its time, in order, before any is converted (e.g. a scenes.CutDetector).
    """
    targets = sample_times(num_frames, fps, start_s)
    _check_crop(crop, rng)
    container, stream = _open(data_or_path, where)
    with container:
        try:
            frames = _decode_nearest(container, stream, targets, seek, where, on_frame)
        except (av.error.FFmpegError, OSError) as e:
            raise _fail(where, f"decoding failed: {e}") from None
        (new_h, new_w), box = _resize_plan(frames[0].height, frames[0].width, size, crop, rng)
        clip_FHWC = np.empty((num_frames, box[2], box[3], 3), np.uint8)
        converted = {}  # a frame chosen for several targets is converted once
        # One reformatter for the clip: frame.reformat builds a new scaler context per call (~5x slower).
        reformatter = av.video.reformatter.VideoReformatter()
        for k, frame in enumerate(frames):
            if id(frame) not in converted:
                try:
                    rgb = reformatter.reformat(frame, new_w, new_h, "rgb24", interpolation=INTERPOLATION)
                    converted[id(frame)] = _crop(rgb.to_ndarray(), box)
                except (av.error.FFmpegError, OSError) as e:
                    raise _fail(where, f"frame conversion failed: {e}") from None
            clip_FHWC[k] = converted[id(frame)]
    return clip_FHWC


def nearest_indices(
    num_source_frames: int,
    source_fps: float,
    num_frames: int,
    fps: float,
    start_s: float = 0.0,
    where: str = "",
) -> list[int]:
    """Which of `num_source_frames` frames shown at i / source_fps a clip samples: the nearest to each
    target time (ties to the earlier frame, the last frame past the end), as decode_jpeg_frames does."""
    targets = sample_times(num_frames, fps, start_s)
    times = [i / source_fps for i in range(num_source_frames)]
    if targets[0] > times[-1] + TIE_EPS_S:
        raise _fail(where, f"window starts at {targets[0]:.3f} s, after the last frame at {times[-1]:.3f} s")
    indices = []
    for t in targets:
        j = bisect.bisect_left(times, t - TIE_EPS_S)  # first frame not clearly before t
        if j == len(times) or (j > 0 and _earlier_is_nearer(t, times[j - 1], times[j])):
            j -= 1
        indices.append(j)
    return indices


def decode_jpeg_frames(
    frames: Sequence[bytes],
    *,
    source_fps: float,
    start_s: float = 0.0,
    num_frames: int,
    fps: float,
    size: int | None = None,
    crop: str | None = "center",
    rng: np.random.Generator | None = None,
    where: str = "",
) -> np.ndarray:
    """decode_clip for the `frames` record form: JPEG frame i is shown at i / source_fps, and the clip's
    `num_frames` frames at `fps` are sampled from `start_s` on.

    Same sampling (nearest frame, ties to the earlier one, last frame repeated past the end), resize and
    crop; only the chosen JPEGs are decoded.
    """
    _check_crop(crop, rng)
    if not frames:
        raise _fail(where, "zero frames")
    indices = nearest_indices(len(frames), source_fps, num_frames, fps, start_s, where)
    decoded, plan, clip_FHWC = {}, None, None
    for k, index in enumerate(indices):
        if index not in decoded:
            try:
                image = Image.open(io.BytesIO(frames[index]))  # reads the header only
                if plan is None:
                    (new_h, new_w), box = plan = _resize_plan(image.height, image.width, size, crop, rng)
                    clip_FHWC = np.empty((num_frames, box[2], box[3], 3), np.uint8)
                image.draft("RGB", (new_w, new_h))  # let libjpeg decode at a reduced scale when it can
                image = image.convert("RGB")
                if image.size != (new_w, new_h):
                    image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
                decoded[index] = _crop(np.asarray(image), box)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
                raise _fail(where, f"JPEG frame {index}: {e}") from None
        clip_FHWC[k] = decoded[index]
    return clip_FHWC


def encode_jpeg(frame_HWC, quality: int = 90) -> bytes:
    """One uint8 RGB frame as JPEG bytes (the `frames` form of a clip record)."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(frame_HWC, np.uint8)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def encode_test_video(
    frames_FHWC: np.ndarray,
    fps: float | Fraction,
    *,
    codec: str = "libx264",
    container: str = "mp4",
    pts_s: Sequence[float] | None = None,
    gop_size: int = 12,
    options: dict[str, str] | None = None,
) -> bytes:
    """Encode uint8 frames (even H, W) into `container` bytes with PyAV (libx264/mp4, libvpx-vp9/webm, ...).

    `fps` may be fractional: pass Fraction(30000, 1001) for 29.97 (a float is turned into the nearest
    fraction with denominator <= 100000). `pts_s`: explicit presentation times in seconds, one per frame and
    increasing, for variable frame rate (stored on a 1/90000 s clock; the container may round it further,
    e.g. webm to milliseconds). `gop_size`: frames between keyframes, small enough that seeking matters.
    """
    frames_FHWC = np.asarray(frames_FHWC)
    num, height, width, channels = frames_FHWC.shape
    if frames_FHWC.dtype != np.uint8 or channels != 3 or height % 2 or width % 2:
        raise ValueError(f"need uint8 (F, H, W, 3), even H, W; got {frames_FHWC.dtype} {frames_FHWC.shape}")
    if pts_s is not None and len(pts_s) != num:
        raise ValueError(f"pts_s has {len(pts_s)} entries for {num} frames")
    rate = Fraction(fps).limit_denominator(100000)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        stream = output.add_stream(codec, rate=rate, options=options or {})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop_size
        clock = Fraction(1, 90000)
        if pts_s is not None:
            stream.codec_context.time_base = clock
        for k in range(num):
            frame = av.VideoFrame.from_ndarray(frames_FHWC[k], format="rgb24")
            if pts_s is not None:
                frame.pts, frame.time_base = round(pts_s[k] / clock), clock
            output.mux(stream.encode(frame))
        output.mux(stream.encode())
    return buffer.getvalue()
