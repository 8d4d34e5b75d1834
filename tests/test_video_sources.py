"""Clips straight from video files (video_folder) and YT-Temporal-1B (yt_temporal), on real encoded mp4."""

import json
import logging

import ml_collections
import numpy as np
import pytest

from data_pipelines import records, sources, video
from data_pipelines.sources import video_folder, yt_temporal
from data_pipelines.sources.video_folder import VideoFolderSource
from data_pipelines.tools import prepare

FPS = 10  # native rate of the test videos; frame k is uniformly grey at level 20 + 3k
SMALL_CLIPS = "--clip_seconds 1 --fps 4 --stride_seconds 1 --size 32 --workers 1".split()  # 4-frame clips


def ramp_video(num_frames=60, height=48, width=64):
    levels = 20 + 3 * np.arange(num_frames)
    return video.encode_test_video(
        np.broadcast_to(levels[:, None, None, None], (num_frames, height, width, 3)).astype(np.uint8), FPS
    )


def frame_indices(clip_FHWC):
    """The source frame index each sampled frame shows, read back from its grey level."""
    return np.round((clip_FHWC.reshape(len(clip_FHWC), -1).mean(1) - 20) / 3).astype(int)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three 6 s videos, a corrupt one, a 0.3 s one (too short for a clip) and a file that is no video."""
    folder = tmp_path_factory.mktemp("videos")
    data = ramp_video()
    for name in ("a", "b", "c"):
        (folder / f"{name}.mp4").write_bytes(data)
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 and then nothing useful")
    (folder / "short.mp4").write_bytes(ramp_video(num_frames=3))
    (folder / "notes.txt").write_text("not a video")
    return folder


def folder_source(videos, train, seed=0, **kwargs):
    return VideoFolderSource(videos, num_frames=4, fps=4.0, image_size=32, train=train, seed=seed, **kwargs)


def test_folder_glob_and_list_file_give_the_same_videos(folder, tmp_path):
    names = ["a.mp4", "b.mp4", "broken.mp4", "c.mp4", "short.mp4"]
    # Relative and absolute paths, a comment and a blank line.
    (folder / "list.txt").write_text(
        f"# the videos\na.mp4\nb.mp4\n\n{folder / 'broken.mp4'}\nc.mp4\nshort.mp4\n"
    )
    expected = [str(folder / name) for name in names]
    by_folder = folder_source(folder, train=False)
    for spec in (str(folder / "*.mp4"), folder / "list.txt", expected):
        assert folder_source(spec, train=False).paths == expected == by_folder.paths
    assert repr(by_folder) == repr(folder_source(str(folder / "*.mp4"), train=False))
    assert repr(by_folder) != repr(folder_source(expected[:4], train=False))  # another list, another repr
    with pytest.raises(FileNotFoundError):
        folder_source(tmp_path / "nowhere", train=False)


def test_train_windows_are_seeded_by_index_and_eval_windows_spread_evenly(folder):
    evaluation = folder_source([folder / "a.mp4"], train=False)
    # 6 s video, 1 s clip: the centred window starts at 2.5 s; 4 fps from 10: 2.5, 2.75 (a tie: the earlier
    # frame), 3, 3.25 (a tie).
    np.testing.assert_array_equal(frame_indices(evaluation[0]["video"]), [25, 27, 30, 32])

    training = folder_source([folder / "a.mp4"], train=True, windows_per_video=8)
    spread = folder_source([folder / "a.mp4"], train=False, windows_per_video=8)
    assert len(training) == len(spread) == 8
    # Evaluation windows j = 0..7 start at (j + 1/2) / 8 of the 5 s of possible starts: 0.3125 s, ...
    expected = np.round((np.arange(8) + 0.5) / 8 * 5 * 10).astype(int)  # no ties: starts at x.x125 / x.x375 s
    assert [frame_indices(spread[j]["video"])[0] for j in range(8)] == expected.tolist()
    starts = [frame_indices(training[i]["video"])[0] for i in range(8)]
    assert len(set(starts)) >= 6 and 0 <= min(starts) and max(starts) <= 50  # distinct windows within 0..5 s
    same = folder_source([folder / "a.mp4"], train=True, windows_per_video=8)
    np.testing.assert_array_equal(training[3]["video"], same[3]["video"])  # same (seed, index): same clip
    other_seed = folder_source([folder / "a.mp4"], train=True, seed=1, windows_per_video=8)
    assert [frame_indices(other_seed[i]["video"])[0] for i in range(8)] != starts
    for i in range(8):  # the window is 4 frames at 4 fps: 2.5 source frames apart, in order
        assert set(np.diff(frame_indices(training[i]["video"])).tolist()) <= {2, 3}


def test_remote_paths_are_read_through_epath_file_objects(folder, tmp_path, monkeypatch):
    local = folder_source([folder / "a.mp4", folder / "broken.mp4"], train=False)
    expected = [local[0]["video"], local[1]["video"]]
    monkeypatch.setattr(video_folder, "is_remote", lambda path: True)  # gs:// takes this branch
    remote = folder_source([folder / "a.mp4", folder / "broken.mp4"], train=False)
    np.testing.assert_array_equal(remote[0]["video"], expected[0])
    np.testing.assert_array_equal(remote[1]["video"], expected[1])  # the substitute for broken.mp4
    assert remote.counter.bad == 1
    out = tmp_path / "clips"
    assert prepare.main(["videos", "--input", str(folder / "a.mp4"), "--output", str(out), *SMALL_CLIPS]) == 0
    assert json.loads((out / "manifest.json").read_text())["num_clips"] == 6


def test_corrupt_and_too_short_videos_are_replaced_and_counted(folder):
    source = folder_source(
        folder, train=False, counter=records.BadRecordCounter(max_bad_fraction=0.9, min_records=1)
    )
    clips = [source[i] for i in range(len(source))]
    assert all(clip["video"].shape == (4, 32, 32, 3) and clip["video"].dtype == np.uint8 for clip in clips)
    # Every failed decode counts: short.mp4's first substitute is broken.mp4 (4 + 1_000_003 = 2 mod 5).
    assert (source.counter.bad, source.counter.good) == (3, 5)
    assert "broken.mp4" in source.counter.last_error or "short.mp4" in source.counter.last_error
    again = folder_source(folder, train=False, counter=records.BadRecordCounter(max_bad_fraction=0.9))
    np.testing.assert_array_equal(again[2]["video"], clips[2]["video"])  # the substitute is deterministic
    strict = folder_source(
        folder, train=False, counter=records.BadRecordCounter(max_bad_fraction=0.1, min_records=2)
    )
    with pytest.raises(records.BadDataError, match="max_bad_fraction=0.1"):
        [strict[i] for i in range(len(strict))]


@pytest.fixture(scope="module")
def yt(tmp_path_factory):
    """Downloads for ids vidA (mp4, plus a stray mkv copy), vid-B_2 (mkv); gone1 and gone2 have no file."""
    root = tmp_path_factory.mktemp("yt")
    downloads = root / "downloads"
    downloads.mkdir()
    data = ramp_video()
    (downloads / "vidA.mp4").write_bytes(data)
    (downloads / "vidA.mkv").write_bytes(b"an older, broken download")
    (downloads / "vid-B_2.mkv").write_bytes(
        video.encode_test_video(np.full((40, 48, 64, 3), 90, np.uint8), FPS, container="matroska")
    )
    (downloads / "gone1.mp4.part").write_bytes(b"unfinished")
    ids = root / "ids.csv"
    ids.write_text("video_id,title\nvidA,first video\ngone1,removed\n\n# note\nvid-B_2 , second\ngone2\n")
    return root


def test_yt_temporal_skips_ids_without_files_and_reports_them(yt, caplog):
    with caplog.at_level(logging.WARNING):
        source = yt_temporal.make_source(
            "videos",
            ids=yt / "ids.csv",
            video_dir=yt / "downloads",
            num_frames=4,
            fps=4.0,
            image_size=32,
            train=True,
        )
    assert source.paths == [str(yt / "downloads" / "vidA.mp4"), str(yt / "downloads" / "vid-B_2.mkv")]
    assert source.missing_ids == ["gone1", "gone2"]
    lines = [r.getMessage() for r in caplog.records if "YT-Temporal-1B" in r.getMessage()]
    assert len(lines) == 1 and "2 of 4 ids" in lines[0] and "gone1, gone2" in lines[0]
    assert all(source[i]["video"].shape == (4, 32, 32, 3) for i in range(len(source)))
    assert source.counter.bad == 0
    with pytest.raises(ValueError, match="none of the"):
        yt_temporal.make_source(
            "videos", ids=yt / "ids.csv", video_dir=yt, num_frames=4, fps=4.0, image_size=32, train=True
        )


def test_yt_temporal_clips_mode_reads_prepared_records(yt, tmp_path):
    out = tmp_path / "clips"
    argv = [
        "videos",
        "--input",
        str(yt / "ids.csv"),
        "--video_dir",
        str(yt / "downloads"),
        "--output",
        str(out),
    ]
    assert prepare.main(argv + SMALL_CLIPS) == 0
    assert json.loads((out / "manifest.json").read_text())["missing_ids"] == {
        "count": 2,
        "first": ["gone1", "gone2"],
    }
    source = yt_temporal.make_source(
        "clips", records_path=out, num_frames=4, fps=4.0, image_size=32, train=False
    )
    assert len(source) == 6 + 4  # 6 s and 4 s videos, one 1 s clip per second
    assert all(source[i]["video"].shape == (4, 32, 32, 3) for i in range(len(source)))
    assert source.counter.bad == 0


def data_config(**fields):
    base = dict(num_frames=4, fps=4.0, image_size=32, seed=0, max_bad_fraction=0.5, windows_per_video=2)
    return ml_collections.ConfigDict({**base, **fields})


def test_make_source_builds_the_video_sources_from_a_config(folder, yt, tmp_path):
    good = [str(folder / name) for name in ("a.mp4", "b.mp4", "c.mp4")]
    configs = [
        data_config(source="video_folder", videos=dict(train=str(folder), eval=good)),
        data_config(
            source="yt_temporal",
            yt_temporal=dict(
                mode="videos",
                ids=dict(train=str(yt / "ids.csv"), eval=str(yt / "ids.csv")),
                video_dir=str(yt / "downloads"),
            ),
        ),
    ]
    out = tmp_path / "clips"
    assert prepare.main(["videos", "--input", good[0], "--output", str(out), *SMALL_CLIPS]) == 0
    configs.append(
        data_config(
            source="yt_temporal", yt_temporal=dict(mode="clips", records=dict(train=str(out), eval=str(out)))
        )
    )
    lengths = []
    for config in configs:
        assert sources.num_frames(config) == 4 and sources.image_hw(config) == (32, 32)
        train, evaluation = sources.make_source(config, "train"), sources.make_source(config, "eval")
        assert train.train and not evaluation.train
        assert evaluation[0]["video"].shape == train[len(train) - 1]["video"].shape == (4, 32, 32, 3)
        assert train.counter.max_bad_fraction == 0.5
        lengths.append((len(train), len(evaluation)))
    assert lengths == [(2 * 5, 2 * 3), (2 * 2, 2 * 2), (6, 6)]  # windows_per_video=2 per video
    assert sources.make_source(configs[0], "train").scene_cuts == "split"  # the default
    for config in configs[:2]:
        config.scene_cuts = "keep"
        assert sources.make_source(config, "eval").scene_cuts == "keep"
