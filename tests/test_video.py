"""Video decoding: frames sampled by presentation timestamp from real encoded videos, crops, bad input.

Each test video's frame k shows k in binary as a 3x3 grid of black/white 16 px blocks (macroblock-aligned
solid blocks survive H.264 and VP9 compression), so a decoded frame says which source frame it is.
"""

import io
from fractions import Fraction

import av
import numpy as np
import pytest

from data_pipelines import video

BITS, BLOCK = 9, 16


def index_frames(num, height=64, width=64):
    """(num, H, W, 3) uint8 frames; frame k encodes k (< 2**BITS) in its top-left 48x48 pixels."""
    frames = np.full((num, height, width, 3), 128, np.uint8)
    for k in range(num):
        for bit in range(BITS):
            top, left = BLOCK * (bit // 3), BLOCK * (bit % 3)
            frames[k, top : top + BLOCK, left : left + BLOCK] = 255 * ((k >> bit) & 1)
    return frames


def frame_index(image_HWC):
    centre = BLOCK // 2
    return sum(
        1 << bit
        for bit in range(BITS)
        if image_HWC[(bit // 3) * BLOCK + centre, (bit % 3) * BLOCK + centre].mean() > 128
    )


def stored_times(data):
    """Exact presentation times (Fractions of a second from the first frame) read from the demuxed packets."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        pts = sorted(p.pts for p in container.demux(stream) if p.pts is not None)
        return [(p - pts[0]) * stream.time_base for p in pts]


def nearest_indices(times, start_s, num_frames=8, fps=4):
    """Reference sampling, in exact arithmetic: the nearest frame to each target, ties to the earlier one."""
    targets = [Fraction(start_s) + Fraction(k, fps) for k in range(num_frames)]
    return [min(range(len(times)), key=lambda i: (abs(times[i] - t), i)) for t in targets]


rng = np.random.default_rng(0)
VFR_TIMES = np.cumsum(np.r_[0, rng.uniform(1 / 60, 1 / 8, 59)]).tolist()  # 60 frames, irregular gaps
VIDEOS = {  # name: (encode_test_video arguments, intended frame times)
    "mp4-30": (dict(fps=30), [k / 30 for k in range(120)]),
    "mp4-29.97": (dict(fps=Fraction(30000, 1001)), [k * 1001 / 30000 for k in range(120)]),
    "mp4-25": (dict(fps=25), [k / 25 for k in range(100)]),
    "mp4-vfr": (dict(fps=30, pts_s=VFR_TIMES), VFR_TIMES),
    "webm-vp9-30": (dict(fps=30, codec="libvpx-vp9", container="webm"), [k / 30 for k in range(120)]),
}


@pytest.fixture(scope="module")
def encoded():
    return {
        name: video.encode_test_video(index_frames(len(times)), **kwargs)
        for name, (kwargs, times) in VIDEOS.items()
    }


@pytest.mark.parametrize("name", list(VIDEOS))
def test_samples_the_frame_with_the_nearest_timestamp(encoded, name):
    data, intended = encoded[name], VIDEOS[name][1]
    times = stored_times(data)
    assert len(times) == len(intended)
    np.testing.assert_allclose([float(t) for t in times], intended, atol=1e-3)  # webm keeps milliseconds
    # 2.5 s is an exact tie between two 25 fps frames; 3.3 s runs past the end of every video.
    for start_s in (0.0, 0.37, 1.0, 2.5, 3.3):
        clip = video.decode_clip(data, num_frames=8, fps=4, start_s=start_s)
        assert clip.shape == (8, 64, 64, 3) and clip.dtype == np.uint8
        assert [frame_index(f) for f in clip] == nearest_indices(times, start_s), start_s
        # Seeking to the keyframe before start_s decodes exactly what decoding from the start does.
        np.testing.assert_array_equal(
            clip, video.decode_clip(data, num_frames=8, fps=4, start_s=start_s, seek=False)
        )


class CountingContainer:
    """Wraps an input container and counts the frames decoded through it."""

    def __init__(self, container, counts):
        self.container, self.counts = container, counts

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.container.close()

    def seek(self, *args, **kwargs):
        self.container.seek(*args, **kwargs)

    def decode(self, *args, **kwargs):
        for frame in self.container.decode(*args, **kwargs):
            self.counts.append(frame.pts)
            yield frame


@pytest.mark.parametrize("name", ["mp4-30", "webm-vp9-30"])
def test_seeking_skips_the_frames_before_the_window(encoded, name, monkeypatch):
    open_video, decoded = video._open, []

    def counting_open(data, where):
        container, stream = open_video(data, where)
        return CountingContainer(container, decoded), stream

    monkeypatch.setattr(video, "_open", counting_open)
    for seek, expected in ((True, 30), (False, 114)):
        decoded.clear()
        video.decode_clip(encoded[name], num_frames=4, fps=4, start_s=3.0, seek=seek)
        # Keyframes every 12 frames: from the one at 2.8 s (frame 84), or from 0 s, up to frame 113 (3.77 s),
        # the first at or after the last target (3.75 s).
        assert len(decoded) == expected, seek


@pytest.mark.parametrize("name", ["mp4-29.97", "mp4-vfr"])
def test_iter_frames_and_on_frame_see_the_frames_on_the_clip_timeline(encoded, name):
    data = encoded[name]
    times = [float(t) for t in stored_times(data)]
    pairs = list(video.iter_frames(data))
    assert [frame_index(frame.to_ndarray(format="rgb24")) for frame, _ in pairs] == list(range(len(times)))
    np.testing.assert_allclose([t for _, t in pairs], times, atol=1e-9)
    seen = []
    clip = video.decode_clip(data, num_frames=4, fps=4, start_s=1.0, on_frame=lambda f, t: seen.append(t))
    # Every frame decoded for the clip, in order: from the keyframe before 1 s to the first at or after the
    # last target (1.75 s), which holds every frame the clip shows.
    first = int(np.argmin(np.abs(np.array(times) - seen[0])))
    np.testing.assert_allclose(seen, times[first : first + len(seen)], atol=1e-9)
    assert seen[0] <= 1.0 and seen[-1] >= 1.75 > seen[-2]
    assert all(first <= frame_index(f) < first + len(seen) for f in clip)


def test_past_the_end_repeats_the_last_frame(encoded):
    clip = video.decode_clip(encoded["mp4-30"], num_frames=8, fps=4, start_s=3.3)
    assert [frame_index(f) for f in clip] == [99, 106, 114, 119, 119, 119, 119, 119]


def test_probe(encoded):
    info = video.probe(encoded["mp4-29.97"])
    assert info.fps == pytest.approx(30000 / 1001, abs=1e-9)
    assert (info.width, info.height, info.num_frames_estimate) == (64, 64, 120)
    assert info.duration_s == pytest.approx(120 * 1001 / 30000, abs=0.05)
    info = video.probe(encoded["webm-vp9-30"])
    assert (info.fps, info.num_frames_estimate) == (30.0, 120)


def test_reads_from_a_path(encoded, tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(encoded["mp4-25"])
    np.testing.assert_array_equal(
        video.decode_clip(path, num_frames=4, fps=4, start_s=1.0),
        video.decode_clip(encoded["mp4-25"], num_frames=4, fps=4, start_s=1.0),
    )


@pytest.fixture(scope="module")
def landscape():
    """A 64x96 video whose columns all differ, so every crop position gives different pixels."""
    x = np.linspace(0, 255, 96)
    frames = np.broadcast_to(np.stack([x, 255 - x, x[::-1] * 0.5], -1), (6, 64, 96, 3)).astype(np.uint8)
    return video.encode_test_video(np.ascontiguousarray(frames), 30)


def test_resize_short_side_and_centre_crop(landscape):
    full = video.decode_clip(landscape, num_frames=3, fps=10, size=32, crop=None)
    assert full.shape == (3, 32, 48, 3)  # short side 64 -> 32, aspect kept
    centre = video.decode_clip(landscape, num_frames=3, fps=10, size=32)
    assert centre.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(centre, full[:, :, 8:40])
    native = video.decode_clip(landscape, num_frames=3, fps=10)
    assert native.shape == (3, 64, 96, 3)


def test_random_crops_differ_across_rngs_and_stay_in_bounds(landscape):
    full = video.decode_clip(landscape, num_frames=3, fps=10, size=32, crop=None)
    lefts = set()
    for seed in range(8):
        crop = video.decode_clip(
            landscape, num_frames=3, fps=10, size=32, crop="random", rng=np.random.default_rng(seed)
        )
        assert crop.shape == (3, 32, 32, 3)
        matches = [left for left in range(17) if np.array_equal(crop, full[:, :, left : left + 32])]
        assert len(matches) == 1  # a window of the resized frames, hence inside them
        lefts.add(matches[0])
    assert len(lefts) > 1
    with pytest.raises(ValueError, match="rng"):
        video.decode_clip(landscape, num_frames=3, fps=10, size=32, crop="random")


def jpegs(frames_FHWC, quality=95):
    return [video.encode_jpeg(frame, quality) for frame in frames_FHWC]


def test_jpeg_frames_sample_by_index():
    frames = jpegs(index_frames(100))
    times = [Fraction(i, 25) for i in range(100)]
    for start_s in (0.0, 0.37, 2.5, 3.3):
        clip = video.decode_jpeg_frames(frames, source_fps=25, num_frames=8, fps=4, start_s=start_s)
        assert [frame_index(f) for f in clip] == nearest_indices(times, start_s)
    clip = video.decode_jpeg_frames(frames, source_fps=25, num_frames=8, fps=4, size=32)
    assert clip.shape == (8, 32, 32, 3) and clip.dtype == np.uint8


def assert_one_line_video_error(fn, match):
    with pytest.raises(video.VideoError, match=match) as info:
        fn()
    assert "\n" not in str(info.value)


def test_bad_input_raises_a_one_line_video_error(encoded):
    data = encoded["mp4-30"]
    sample = dict(num_frames=4, fps=4, where="vid-7")
    garbage = np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes()
    assert_one_line_video_error(lambda: video.decode_clip(garbage, **sample), "vid-7: cannot open")
    assert_one_line_video_error(lambda: video.decode_clip(data[: len(data) // 2], **sample), "vid-7")
    assert_one_line_video_error(lambda: video.decode_clip(b"", **sample), "empty")
    assert_one_line_video_error(lambda: video.probe(garbage), "cannot open")
    assert_one_line_video_error(
        lambda: video.decode_clip(data, start_s=9.0, **sample), "after the last frame"
    )
    frames = jpegs(index_frames(4))
    frames[2] = frames[2][:100]
    assert_one_line_video_error(
        lambda: video.decode_jpeg_frames(frames, source_fps=4, **sample), "vid-7: JPEG frame 2"
    )
    assert_one_line_video_error(lambda: video.decode_jpeg_frames([], source_fps=4, **sample), "zero frames")
