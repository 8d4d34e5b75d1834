"""lawm-prepare videos: clip records from real mp4, the manifest, resuming, interrupted shards, the CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from array_record.python.array_record_module import ArrayRecordReader

from data_pipelines import records, video
from data_pipelines.sources.clips import ClipSource
from data_pipelines.tools import prepare

FPS = 10  # frame k of a test video is uniformly grey at level 20 + 3k


def ramp_video(num_frames):
    levels = (20 + 3 * np.arange(num_frames)).astype(np.uint8)
    return video.encode_test_video(np.broadcast_to(levels[:, None, None, None], (num_frames, 48, 64, 3)), FPS)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """A list file of three videos: 5 s, corrupt, 3.5 s."""
    folder = tmp_path_factory.mktemp("videos")
    (folder / "long.mp4").write_bytes(ramp_video(50))
    (folder / "broken.mp4").write_bytes(ramp_video(50)[:300])  # truncated: the header cut short
    (folder / "short.mp4").write_bytes(ramp_video(35))
    (folder / "list.txt").write_text("long.mp4\nbroken.mp4\nshort.mp4\n")
    return folder


def argv(videos, output, *extra):
    flags = "--clip_seconds 1 --fps 4 --stride_seconds 1 --size 32 --videos_per_shard 1 --workers 1".split()
    return ["videos", "--input", str(videos / "list.txt"), "--output", str(output), *flags, *extra]


def shard_bytes(output):
    """Every shard's raw records, by shard name."""
    contents = {}
    for path in records.list_shards(output):
        reader = ArrayRecordReader(path)
        contents[os.path.basename(path)] = reader.read_all()
        reader.close()
    return contents


@pytest.fixture(scope="module")
def clean_run(videos, tmp_path_factory):
    """A run on 2 worker processes: the reference output."""
    output = tmp_path_factory.mktemp("clean")
    assert prepare.main(argv(videos, output, "--workers", "2")) == 0
    return output


def test_shards_decode_through_clip_source_and_the_manifest_lists_failures(clean_run, videos):
    assert sorted(os.listdir(clean_run)) == [
        f"clips-0000{k}.{ext}" for k in range(3) for ext in ("array_record", "json")
    ] + ["manifest.json"]
    manifest = json.loads((clean_run / "manifest.json").read_text())
    assert manifest["num_clips"] == 5 + 3 and manifest["num_videos"] == 3 and manifest["num_shards"] == 3
    assert [(s["shard"], s["clips"]) for s in manifest["shards"]] == [
        ("clips-00000.array_record", 5),
        ("clips-00001.array_record", 0),
        ("clips-00002.array_record", 3),
    ]
    [failure] = manifest["failures"]
    assert failure["video"] == str(videos / "broken.mp4") and failure["clips_kept"] == 0
    assert manifest["params"]["num_frames"] == 4

    source = ClipSource(
        records.RecordSource(str(clean_run)), num_frames=4, fps=4.0, image_size=32, train=False
    )
    assert len(source) == 8
    metas = [source.records[i]["meta"] for i in range(8)]
    assert [m["start_s"] for m in metas] == [0, 1, 2, 3, 4, 0, 1, 2]
    assert {m["source_id"] for m in metas} == {str(videos / "long.mp4"), str(videos / "short.mp4")}
    record = source.records[3]
    assert record["fps"] == 4.0 and len(record["frames"]) == 4
    clip = source[3]["video"]  # long.mp4 from 3 s: source frames 30, 32 (a tie: the earlier), 35, 37
    assert clip.shape == (4, 32, 32, 3)
    np.testing.assert_array_equal(np.round((clip.reshape(4, -1).mean(1) - 20) / 3), [30, 32, 35, 37])
    assert source.counter.bad == 0


def test_rerun_skips_complete_shards_and_redoes_interrupted_ones(clean_run, videos, tmp_path, monkeypatch):
    output = tmp_path / "out"
    written = []
    write_unit = prepare.write_unit

    def counting(shard_path, *args):
        written.append(os.path.basename(shard_path))
        return write_unit(shard_path, *args)

    def interrupting(path, params, *counts):  # ^C after the first clip of short.mp4
        for i, clip in enumerate(original_clips(path, params, *counts)):
            if i == 1 and path.endswith("short.mp4"):
                raise KeyboardInterrupt
            yield clip

    original_clips = prepare.video_clips
    monkeypatch.setattr(prepare, "write_unit", counting)
    monkeypatch.setattr(prepare, "video_clips", interrupting)
    with pytest.raises(KeyboardInterrupt):
        prepare.main(argv(videos, output))
    # The interrupted shard left nothing that looks complete (no shard, no .tmp) and no manifest was written.
    assert sorted(os.listdir(output)) == [
        f"clips-0000{k}.{ext}" for k in range(2) for ext in ("array_record", "json")
    ]
    monkeypatch.setattr(prepare, "video_clips", original_clips)

    written.clear()
    assert prepare.main(argv(videos, output)) == 0
    assert written == ["clips-00002.array_record"]
    assert shard_bytes(output) == shard_bytes(clean_run)
    assert (
        json.loads((output / "manifest.json").read_text())["shards"]
        == json.loads((clean_run / "manifest.json").read_text())["shards"]
    )

    # A complete run is skipped entirely: no unit runs, no shard is touched.
    mtimes = {name: os.stat(output / name).st_mtime_ns for name in os.listdir(output) if "clips" in name}
    written.clear()
    assert prepare.main(argv(videos, output)) == 0
    assert written == []
    assert mtimes == {name: os.stat(output / name).st_mtime_ns for name in mtimes}

    # Killed while writing shard 0: a .tmp is left and the final file is missing (but its summary exists).
    (output / "clips-00000.array_record").rename(output / "clips-00000.array_record.tmp")
    with open(output / "clips-00000.array_record.tmp", "r+b") as f:
        f.truncate(100)
    assert prepare.main(argv(videos, output)) == 0
    assert written == ["clips-00000.array_record"]
    assert not (output / "clips-00000.array_record.tmp").exists()
    assert shard_bytes(output) == shard_bytes(clean_run)


def test_other_parameters_on_the_same_output_are_refused(clean_run, videos, tmp_path):
    output = tmp_path / "out"
    assert prepare.main(argv(videos, output)) == 0
    with pytest.raises(SystemExit, match="other videos or parameters"):
        prepare.main(argv(videos, output, "--fps", "2"))


def test_bad_input_is_one_line_and_help_works(tmp_path, capsys):
    assert prepare.main(["videos", "--input", str(tmp_path / "missing"), "--output", str(tmp_path)]) == 1
    assert "lawm-prepare: error: no such folder" in capsys.readouterr().err
    result = subprocess.run(
        [sys.executable, "-m", "data_pipelines.tools.prepare", "videos", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--clip_seconds" in result.stdout and "--stride_seconds" in result.stdout


def test_running_twice_keeps_the_shards_and_replaces_the_manifest(videos, tmp_path):
    output = tmp_path / "out"
    assert prepare.main(argv(videos, output)) == 0
    names, shards, manifest = sorted(os.listdir(output)), shard_bytes(output), (output / "manifest.json")
    first = json.loads(manifest.read_text())
    assert prepare.main(argv(videos, output)) == 0
    assert sorted(os.listdir(output)) == names  # the same shards and sidecars, one manifest, no .tmp
    assert shard_bytes(output) == shards
    assert json.loads(manifest.read_text()) == first


def test_command_line_errors_are_one_line_without_a_traceback(videos, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    assert prepare.main(argv(videos, a_file)) == 1
    assert capsys.readouterr().err == f"lawm-prepare: error: {a_file} is a file, not a folder\n"
    for bad in (["videos", "--bogus"], ["videos", "--input", "x"], argv(videos, tmp_path, "--fps", "0")):
        with pytest.raises(SystemExit) as stopped:
            prepare.main(bad)
        err = capsys.readouterr().err
        assert stopped.value.code == 2 and err.count("\n") == 1 and ": error: " in err, err
