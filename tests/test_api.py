"""A trained model on any video: lawm.load, lawm-export, lawm-transfer and lawm-latents on real footage.

One tiny world model run (2 steps) and one tiny decoder run on its encoder's states, trained in-process
with the configs tests/test_cli.py and tests/test_decoder.py train (the persistent compilation cache then
compiles their steps once per suite). The commands' work runs in-process through their library functions;
each command also runs once as a real subprocess, on a bad input.
"""

import json
import os
import shutil
import subprocess
import sys

import av
import jax
import numpy as np
import pyarrow.parquet as pq
import pytest

import lawm
from data_pipelines import video
from lawm import export, latent_table, systems, train, transfer_video
from lawm.evals import transfer
from tests.helpers import real_video, tiny_train_config
from tests.test_decoder import decoder_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CARPHONE, BIKES = "carphone_pristine.mp4", "bikes.mp4"  # 176x144 4 s one shot; 640x272 10 s montage


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(world model workdir, decoder workdir), each trained for a few steps."""
    folder = tmp_path_factory.mktemp("api")
    config = tiny_train_config(total_steps=2)
    config.evaluators = dict(latent_stats={})
    train.train_and_evaluate(config, folder / "world")
    train.train_and_evaluate(decoder_config(total_steps=3), folder / "decoder")
    return folder / "world", folder / "decoder"


@pytest.fixture(scope="module")
def model(runs):
    return lawm.load(runs[0], decoder=runs[1])


@pytest.fixture(scope="module")
def exported(runs, tmp_path_factory):
    """lawm-export's work: the world model and its decoder as a portable folder."""
    return export.export(runs[0], tmp_path_factory.mktemp("export") / "model", decoder=runs[1])


def frames(name, model, count=None):
    return lawm.api.read_video(real_video(name), model, num_frames=count)


def test_the_export_is_json_and_safetensors_with_bit_identical_params(model, exported):
    assert sorted(p.name for p in exported.iterdir()) == [
        "config.json",
        "decoder.safetensors",
        "model.safetensors",
    ]
    index = json.loads((exported / "config.json").read_text())
    assert index["format"] == "lawm-export" and index["step"] == 2 and index["encoder"] == "seed 0"
    again = export.read_export(exported)
    ours, theirs = export.flatten(model.params), export.flatten(again.params)
    assert sorted(ours) == sorted(theirs) and any(name.startswith("encoder/") for name in ours)
    for name, value in ours.items():
        assert theirs[name].dtype == value.dtype and np.array_equal(theirs[name], value), name
    decoder_again = export.flatten(again.decoder.params)
    for name, value in export.flatten({"decoder": model.decoder.params["decoder"]}).items():
        assert np.array_equal(decoder_again[name], value), name


def test_workdir_and_export_give_identical_outputs(model, exported):
    loaded = lawm.load(exported)  # the export's decoder comes along
    video_frames = frames(CARPHONE, model)
    assert np.array_equal(loaded.latent_actions(video_frames), model.latent_actions(video_frames))
    assert np.array_equal(loaded.predict(video_frames), model.predict(video_frames))
    states = model.encode(video_frames)
    assert np.array_equal(loaded.decode(states[:2]), model.decode(states[:2]))


def test_latent_actions_are_the_transfer_evaluators_idm_latents(model):
    a, b = frames(CARPHONE, model, 4), frames(BIKES, model, 4)  # one training clip each, 32 px
    assert a.shape == (4, 32, 32, 3)
    _, _, _, latents = transfer.transfer_fn(model.system, 1, 1)(model.params, np.stack([a, b]))
    # The evaluator runs A and B as a batch of two, latent_actions A alone: float rounding may differ.
    np.testing.assert_allclose(model.latent_actions(a), np.asarray(latents["A"][0]), rtol=0, atol=1e-5)
    result = model.transfer(a, b)
    assert (result.context_steps, result.horizon) == (1, 1)
    np.testing.assert_allclose(result.latents_a, np.asarray(latents["A"][0]), rtol=0, atol=0)
    assert result.ratio == pytest.approx(result.error_cycled.mean() / result.error_original.mean(), rel=1e-5)


def test_a_long_video_is_computed_on_training_length_windows(model):
    long = frames(BIKES, model)  # 10 s at 4 fps: 40 frames, 20 states; the model trained on 2-state clips
    assert long.shape == (40, 32, 32, 3)
    latents = model.latent_actions(long)
    assert latents.shape == (19, model.latent_dim)
    # 19 windows run as batches of 8, 8 and 3 padded to 4; 17 as 8, 8, 1: few shapes, each compiled once.
    np.testing.assert_allclose(model.latent_actions(long[:-4]), latents[:-2], atol=1e-5)
    compiled = model._latents._cache_size()
    np.testing.assert_array_equal(model.latent_actions(long), latents)
    model.latent_actions(long[:-4])
    assert model._latents._cache_size() == compiled
    for j in (0, 7, 18):  # the latent of pair (j, j+1) is that of the clip holding just those two states
        np.testing.assert_allclose(latents[j], model.latent_actions(long[2 * j : 2 * j + 4])[0], atol=1e-5)
    big = lawm.api.resize_and_crop(long[:6], (100, 150))  # any size: resized and centre-cropped
    assert model.latent_actions(big).shape == (2, model.latent_dim)
    context = model.encode(long)[:2]
    assert model.rollout(context, latents[:4], steps=3).shape == (3, *context.shape[1:])


def test_lawm_transfer_writes_a_playable_video_from_two_real_videos(model, runs, tmp_path):
    output = tmp_path / "transfer.mp4"
    record = transfer_video.write(model, real_video(CARPHONE), real_video(BIKES), output, num_frames=8)
    assert record["written"] == [str(output), str(tmp_path / "transfer.gif"), str(tmp_path / "transfer.json")]
    with av.open(str(output)) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    # 8 frames (4 states of 2 frames: 1 context, 3 predicted), four 128 px panels, 4 px gaps, 14 px labels
    assert len(decoded) == 8 and decoded[0].shape == (142, 4 * 128 + 3 * 4, 3)
    from PIL import Image

    assert Image.open(tmp_path / "transfer.gif").n_frames == 8
    written = json.loads((tmp_path / "transfer.json").read_text())
    assert written["horizon"] == 3 and len(written["error_cycled"]) == 3 and written["ratio"] > 0
    without = lawm.load(runs[0])  # no decoder: the errors only
    record = transfer_video.write(without, real_video(CARPHONE), real_video(BIKES), tmp_path / "plain.mp4")
    assert record["written"] == [str(tmp_path / "plain.json")] and not (tmp_path / "plain.mp4").exists()


class Interrupted(Exception):
    """A run stopped midway (a kill, a crash)."""


def latents_folder(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in (CARPHONE, BIKES):
        shutil.copy(real_video(name), folder / name)
    (folder / "corrupt.mp4").write_bytes((folder / BIKES).read_bytes()[:5000])  # truncated: no frame
    return folder


def test_lawm_latents_writes_every_good_clip_counts_the_bad_video_and_resumes(model, tmp_path, monkeypatch):
    folder = latents_folder(tmp_path)
    videos = [str(folder / name) for name in (BIKES, CARPHONE, "corrupt.mp4")]
    output = tmp_path / "latents.parquet"
    summary = latent_table.write(model, videos, output)
    table = pq.read_table(output).to_pylist()
    # Clips of 4 frames at 4 fps start every 0.5 s (consecutive clips share a state) while they fit:
    # bikes (last frame at 9.96 s) 19 clips, carphone (3.97 s) 7; the tiny model has 1 latent per clip.
    counts = {path: sum(row["source"] == path for row in table) for path in videos}
    assert counts == {videos[0]: 19, videos[1]: 7, videos[2]: 0}
    assert summary["clips"] == 26 and [s["path"] for s in summary["skipped"]] == [videos[2]]
    metadata = json.loads(pq.read_schema(output).metadata[b"lawm"])
    assert metadata["skipped"][0]["path"] == videos[2] and metadata["fps"] == 4.0
    row = next(r for r in table if r["source"] == videos[1] and r["clip"] == 3)
    assert row["clip_start_s"] == row["time_s"] == 1.5 and row["step"] == 0 and "clip_kl" in row
    clip = video.decode_clip(videos[1], num_frames=4, fps=4.0, start_s=1.5, size=32)
    np.testing.assert_allclose(row["latent"], model.clip_latents([clip])[0][0, 0], atol=1e-6)
    assert not (tmp_path / "latents.parquet.parts").exists()

    # Interrupted after the first video, then run again: only the others are read, the file is the same.
    calls, real, stop = [], latent_table.video_table, [videos[1]]

    def video_table(model, path, *args):
        calls.append(path)
        if path in stop:
            raise Interrupted
        return real(model, path, *args)

    monkeypatch.setattr(latent_table, "video_table", video_table)
    resumed = tmp_path / "resumed.parquet"
    with pytest.raises(Interrupted):
        latent_table.write(model, videos, resumed)
    assert not resumed.exists() and calls == videos[:2]
    calls.clear(), stop.clear()
    latent_table.write(model, videos, resumed)
    assert calls == videos[1:] and pq.read_table(resumed).equals(pq.read_table(output))


def test_a_model_of_another_size_and_regularizer_loads_with_no_code_change(tmp_path):
    config = tiny_train_config(total_steps=2, regularizer="discrete")
    config.model.regularizer = dict(name="discrete", codebook_size=16)
    config.model.idm.update(width=24, depth=2)
    config.model.world_model.update(width=32, depth=2)
    params = systems.make(config).init(jax.random.key(3))
    folder = export.write(tmp_path / "vq", export.Weights(config, params, step=0, encoder="seed 0"))
    loaded = lawm.load(folder)
    video_frames = frames(CARPHONE, loaded, 8)
    latents, raw = loaded.latents_and_raw(video_frames)
    assert latents.shape == (3, 8)
    codes = loaded.latent_statistics(raw[None])["code"][0]
    np.testing.assert_allclose(latents, np.asarray(params["regularizer"]["codebook"])[codes], atol=1e-6)
    assert "code" in latent_table.schema(loaded).names


def test_bad_inputs_fail_in_one_line_before_writing(runs, model, exported, tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a lawm-train workdir .* nor a lawm-export folder"):
        lawm.load(tmp_path)
    with pytest.raises(ValueError, match="shorter than two states"):
        model.latent_actions(frames(CARPHONE, model, 1))
    with pytest.raises(export.ExportError, match="not a lawm export: not overwriting"):
        (tmp_path / "taken").mkdir()
        (tmp_path / "taken" / "notes.txt").write_text("mine")
        export.export(exported, tmp_path / "taken")
    other = decoder_config(total_steps=3)
    other.seed = 1
    with pytest.raises(export.ExportError, match="another encoder's states"):
        export.check_decoder(export.read(runs[0]), export.Weights(other, {}, 3, "seed 1"), "decoder")

    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(broken / "model.safetensors"))
    del tensors["idm/head/kernel"]
    save_file(tensors, str(broken / "model.safetensors"))
    short = tmp_path / "short.mp4"  # 2 frames at 30 fps: one frame at the model's 4 fps
    short.write_bytes(video.encode_test_video(np.zeros((2, 32, 32, 3), np.uint8), 30))
    commands = {  # each command once as a real subprocess, all at once
        "export": ["--workdir", tmp_path / "nothing", "--output", tmp_path / "out"],
        "transfer": [
            "--model",
            runs[0],
            "--source",
            short,
            "--target",
            real_video(BIKES),
            "--output",
            tmp_path / "t.mp4",
        ],
        "latents": ["--model", broken, "--input", real_video(CARPHONE), "--output", tmp_path / "l.parquet"],
    }
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-m", f"experiments.{name}", *map(str, args)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in commands.items()
    }
    expected = {
        "export": f"{tmp_path / 'nothing'} is neither a lawm-train workdir",
        "transfer": "a video of 1 frames is shorter than two states (4 frames at 4 fps)",
        "latents": f"{broken / 'model.safetensors'}: missing tensor idm/head/kernel",
    }
    for name, process in processes.items():
        _, stderr = process.communicate(timeout=300)
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert process.returncode == 1 and "Traceback" not in stderr, stderr[-3000:]
        assert lines[-1].startswith(f"lawm-{name}: error: ") and expected[name] in lines[-1], lines[-1]
    leftovers = {"out", "t.mp4", "t.gif", "t.json", "l.parquet", "l.parquet.parts"}
    assert not leftovers & {p.name for p in tmp_path.iterdir()}
