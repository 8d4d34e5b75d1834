"""RLDS conversion: tiny DROID / RECON datasets built with tensorflow-datasets, converted and read back."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

tfds = pytest.importorskip("tensorflow_datasets")

from data_pipelines import records, video  # noqa: E402
from data_pipelines.tools import rlds  # noqa: E402

H, W = 16, 24
DROID_LENGTHS = (5, 7, 9, 6)  # the last episode failed: skipped by default (file_path without "success")
RECON_LENGTHS = (6, 6, 6, 1)  # the last episode is too short for one transition


def wrapped(angles):
    return np.arctan2(np.sin(angles), np.cos(angles))


def frame(episode, step):
    """A flat colour naming (episode, step) that survives JPEG."""
    return np.broadcast_to(np.array([20 * step + 5, 60 * episode + 10, 128], np.uint8), (H, W, 3)).copy()


def droid_cartesian(episode, num):
    """xyz and extrinsic euler xyz; the euler z (yaw) crosses pi between steps 1 and 2."""
    t = np.arange(num, dtype=np.float64)
    return np.stack(
        [0.1 * t, -0.05 * t + episode, 0.3 + 0 * t, 0.1 * t, -0.2 + 0 * t, wrapped(3.0 + 0.1 * t)], 1
    )


def recon_trajectory(episode, num):
    """(position, yaw): 0 faces +y and drives +y; 1 drives forward while turning through pi; 2 faces +x and
    slides left (+y). Expected robot-frame actions: (0.5, 0, 0), (0.5, 0, 0.1), (0, 0.5, 0)."""
    if episode == 1:
        yaw = wrapped(3.0 + 0.1 * np.arange(num))
        steps = 0.5 * np.stack([np.cos(yaw), np.sin(yaw)], 1)
        position = np.concatenate([np.zeros((1, 2)), np.cumsum(steps, 0)[:-1]])
        return position + [2.0, -1.0], yaw
    yaw = np.full(num, np.pi / 2 if episode == 0 else 0.0)
    return np.stack([np.full(num, 1.0), 0.5 * np.arange(num)], 1), yaw


def droid_metadata(episode):
    """As DROID's: gs://.../<lab>/<success|failure>/<date>/<time>/trajectory.h5, recordings beside it."""
    outcome = "failure" if episode == 3 else "success"
    folder = f"gs://xembodiment_data/r2d2/r2d2-data-full/LAB/{outcome}/2023-04-2{episode}/Fri_{episode}_2023"
    return {"file_path": f"{folder}/trajectory.h5", "recording_folderpath": f"{folder}/recordings/MP4"}


def recon_file_path(episode):
    return f"recon_release/jackal_2019-08-0{episode}-16-23-30_0.hdf5"


class TinyDroid(tfds.core.GeneratorBasedBuilder):
    """Shaped like DROID RLDS 1.0.0 (fewer, smaller features)."""

    VERSION = tfds.core.Version("1.0.0")
    code_path = None  # no checksums file to look up (tfds' lookup needs importlib_resources for packages)

    def _info(self):
        image = tfds.features.Image(shape=(H, W, 3), encoding_format="jpeg")
        observation = {
            "exterior_image_1_left": image,
            "wrist_image_left": tfds.features.Image(shape=(H, W, 3), encoding_format="png"),
            "cartesian_position": tfds.features.Tensor(shape=(6,), dtype=np.float64),
            "gripper_position": tfds.features.Tensor(shape=(1,), dtype=np.float64),
        }
        steps = {"observation": observation, "action": tfds.features.Tensor(shape=(7,), dtype=np.float64)}
        steps.update(is_first=np.bool_, is_last=np.bool_)
        metadata = {"file_path": tfds.features.Text(), "recording_folderpath": tfds.features.Text()}
        features = {"steps": tfds.features.Dataset(steps), "episode_metadata": metadata}
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for e, num in enumerate(DROID_LENGTHS):
            cartesian = droid_cartesian(e, num)
            steps = []
            for t in range(num):
                observation = {"exterior_image_1_left": frame(e, t), "wrist_image_left": frame(e, t)}
                observation.update(cartesian_position=cartesian[t], gripper_position=[t / 10])
                steps.append({"observation": observation, "action": np.zeros(7), "is_first": t == 0})
                steps[-1]["is_last"] = t == num - 1
            yield e, {"steps": steps, "episode_metadata": droid_metadata(e)}


class TinyRecon(tfds.core.GeneratorBasedBuilder):
    """Shaped like Open X-Embodiment's berkeley_gnm_recon 0.1.0."""

    VERSION = tfds.core.Version("0.1.0")
    code_path = None

    def _info(self):
        observation = {
            "image": tfds.features.Image(shape=(H, W, 3), encoding_format="jpeg"),
            "position": tfds.features.Tensor(shape=(2,), dtype=np.float64),
            "yaw": tfds.features.Tensor(shape=(1,), dtype=np.float64),
            "state": tfds.features.Tensor(shape=(3,), dtype=np.float64),
        }
        steps = {"observation": observation, "action": tfds.features.Tensor(shape=(2,), dtype=np.float64)}
        metadata = {"file_path": tfds.features.Text()}
        features = tfds.features.FeaturesDict(
            {"steps": tfds.features.Dataset(steps), "episode_metadata": metadata}
        )
        # Unshuffled: split index = generation order (TinyDroid is shuffled on write, the tfds default).
        return tfds.core.DatasetInfo(builder=self, features=features, disable_shuffling=True)

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for e, num in enumerate(RECON_LENGTHS):
            position, yaw = recon_trajectory(e, num)
            steps = []
            for t in range(num):
                observation = {"image": frame(e, t), "position": position[t], "yaw": yaw[t : t + 1]}
                observation["state"] = np.concatenate([position[t], yaw[t : t + 1]])
                steps.append({"observation": observation, "action": np.zeros(2)})
            yield e, {"steps": steps, "episode_metadata": {"file_path": recon_file_path(e)}}


def prepare(builder_cls, root, file_format):
    builder = builder_cls(data_dir=str(root), file_format=file_format)
    # Two files: reading must follow the split's index order across files.
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(num_shards=2))
    return builder.data_dir


@pytest.fixture(scope="module")
def builder_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("rlds")
    return {
        "droid": prepare(TinyDroid, root / "tfrecord", "tfrecord"),  # as released: sequential reads
        "droid_ar": prepare(TinyDroid, root / "array_record", "array_record"),  # random access
        "recon": prepare(TinyRecon, root / "array_record", "array_record"),
    }


def droid_episode(record):
    """The generation episode of a DROID record: tfds shuffles episodes on write; y = e - 0.05 * step."""
    return round(float(record["states"][0, 1]) + 0.05 * record["meta"]["start_step"])


def read(output_dir):
    source = records.RecordSource(output_dir)
    return [source[i] for i in range(len(source))]


def pixels(record):
    frames = record["frames"]
    return video.decode_jpeg_frames(
        frames, source_fps=record["fps"], num_frames=len(frames), fps=record["fps"], size=None, crop=None
    )


def test_import_does_not_load_tensorflow():
    heavy = "{'tensorflow', 'tensorflow_datasets'}"
    code = f"import sys, data_pipelines.tools.rlds; print(sorted({heavy} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout == "[]\n"


def test_conventions_wrap_angles_and_rotate_into_robot_frame():
    assert np.allclose(
        rlds.wrap_angles(np.array([np.pi, -np.pi, 3 * np.pi, 0.1 - 2 * np.pi])), [np.pi] * 3 + [0.1]
    )
    states, actions = rlds.droid_states_actions([[0, 0, 0, 0, 0, 3.1], [1, 2, 3, 0, 0, -3.1]], [[0], [1]])
    assert states.shape == (2, 7) and np.allclose(actions, [[1, 2, 3, 0, 0, 2 * np.pi - 6.2, 1]], atol=1e-6)
    states, actions = rlds.recon_states_actions([[0, 0], [0, 1]], [[np.pi / 2], [np.pi / 2]])  # facing +y
    assert np.allclose(actions, [[1, 0, 0]], atol=1e-7)  # forward
    with pytest.raises(rlds.EpisodeError, match="too short"):
        rlds.recon_states_actions([[0, 0]], [[0]])
    encoded = rlds._jpeg(frame(1, 2))  # a raw uint8 image tensor, as some releases store cameras
    assert encoded[:3] == b"\xff\xd8\xff"
    assert np.abs(pixels({"frames": [encoded], "fps": 1.0})[0].astype(int) - frame(1, 2)).max() <= 3
    with pytest.raises(rlds.EpisodeError, match="too short: 0 step"):
        rlds.droid_states_actions([], [])
    with pytest.raises(rlds.EpisodeError, match="cartesian: expected 6 values per step, got 7"):
        rlds.droid_states_actions(np.zeros((3, 7)), np.zeros(3))


def test_droid_records_hold_frames_states_rotation_deltas_and_success_episodes(builder_dirs, tmp_path):
    manifest = rlds.convert(builder_dirs["droid"], tmp_path, dataset="droid")
    assert (manifest["fps"], manifest["camera"], manifest["records"], manifest["failures"]) == (
        15.0,
        "exterior_image_1_left",
        3,
        [],
    )
    assert (manifest["episode_filter"], manifest["episodes"], manifest["skipped_episodes"]) == (
        "success",
        4,
        1,
    )
    assert manifest["action_kind"] == "ee_delta" and manifest["layout"] == "shards"
    got = read(tmp_path)
    episodes = tfds.builder_from_directory(builder_dirs["droid_ar"]).as_data_source("train")
    assert len(got) == 3 and len(episodes) == 4
    for record in got:
        # tfds shuffled the episodes on write: generation episode e sits at split index i (y = e at step 0).
        i = record["meta"]["episode"]
        e = round(float(episodes[i]["steps"][0]["observation"]["cartesian_position"][1]))
        assert e != 3  # the failed episode is not converted
        num = DROID_LENGTHS[e]
        assert record["meta"] == {
            "source_id": f"droid/train/{i}",
            "episode": i,
            "camera": "exterior_image_1_left",
            **droid_metadata(e),
            "start_step": 0,
            "start_s": 0.0,
            "action_kind": "ee_delta",
        }
        clip = pixels(record)
        assert clip.shape == (num, H, W, 3)
        assert np.abs(clip.astype(int) - np.stack([frame(e, t) for t in range(num)])).max() <= 3
        expected_states = np.concatenate([droid_cartesian(e, num), np.arange(num)[:, None] / 10], 1)
        assert record["states"].shape == (num, 7) and np.allclose(
            record["states"], expected_states, atol=1e-6
        )
        actions = record["actions"]
        assert actions.shape == (num - 1, 7) and actions.dtype == np.float32
        assert np.allclose(actions[:, [0, 1, 2, 6]], [[0.1, -0.05, 0, 0.1]], atol=1e-5)
        # The rotation delta, from SciPy: extrinsic xyz Euler angles of R[t+1] R[t]^T (the yaw crosses pi).
        rotations = Rotation.from_euler("xyz", droid_cartesian(e, num)[:, 3:])
        expected = (rotations[1:] * rotations[:-1].inv()).as_euler("xyz")
        assert np.allclose(actions[:, 3:6], expected, atol=1e-5)
        assert not np.allclose(expected, [0.1, 0, 0.1], atol=1e-3)  # not the element-wise difference


def test_read_paths_agree_and_pngs_become_jpegs(builder_dirs, tmp_path):
    """TFRecord (as_dataset, in index order) and ArrayRecord (as_data_source) give the same records."""
    sequential, random_access = tmp_path / "tfrecord", tmp_path / "array_record"
    rlds.convert(builder_dirs["droid"], sequential, dataset="droid", camera="wrist_image_left")
    rlds.convert(builder_dirs["droid_ar"], random_access, dataset="droid", camera="wrist_image_left")
    a, b = read(sequential), read(random_access)
    assert len(a) == len(b) == 3
    for x, y in zip(a, b, strict=True):
        assert (
            x["frames"] == y["frames"]
            and x["meta"] == y["meta"]
            and x["meta"]["camera"] == "wrist_image_left"
        )
        assert np.array_equal(x["states"], y["states"]) and np.array_equal(x["actions"], y["actions"])
        assert all(f[:3] == b"\xff\xd8\xff" for f in x["frames"])  # PNG steps re-encoded as JPEG
        assert np.abs(pixels(x).astype(int)[0] - frame(droid_episode(x), 0)).max() <= 3


def test_recon_actions_are_robot_frame_and_short_episodes_are_listed(builder_dirs, tmp_path):
    manifest = rlds.convert(builder_dirs["recon"], tmp_path, dataset="recon", workers=2, episodes_per_shard=2)
    assert manifest["fps"] == 4.0 and manifest["camera"] == "image" and len(manifest["shards"]) == 2
    assert (manifest["episodes"], manifest["converted_episodes"], manifest["failed_episodes"]) == (4, 3, 1)
    assert (
        manifest["failures"][0]["source_id"] == "recon/train/3"
        and "too short" in manifest["failures"][0]["error"]
    )
    assert manifest["shards"][1] == {
        "shard": "shard-00001.array_record",
        "start": 2,
        "stop": 4,
        "episodes": 1,
        "records": 1,
        "eval_episodes": 0,
        "skipped": 0,
    }
    got = read(tmp_path)
    expected = {0: [0.5, 0, 0], 1: [0.5, 0, 0.1], 2: [0, 0.5, 0]}  # forward; forward through pi; left
    assert [r["meta"]["source_id"] for r in got] == ["recon/train/0", "recon/train/1", "recon/train/2"]
    for e, record in enumerate(got):
        position, yaw = recon_trajectory(e, 6)
        assert np.allclose(record["states"], np.concatenate([position, yaw[:, None]], 1), atol=1e-6)
        assert record["actions"].shape == (5, 3) and np.allclose(record["actions"], [expected[e]], atol=1e-5)
        assert pixels(record).shape == (6, H, W, 3) and record["fps"] == 4.0
        assert record["meta"]["file_path"] == recon_file_path(e) and record["meta"]["action_kind"] == "se2"
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk == {k: v for k, v in manifest.items() if k not in ("written", "skipped")}


def test_clip_frames_cut_episodes_into_windows(builder_dirs, tmp_path):
    manifest = rlds.convert(builder_dirs["droid_ar"], tmp_path, dataset="droid", clip_frames=3, fps=5)
    got = read(tmp_path)
    assert manifest["records"] == len(got) == 1 + 2 + 3  # 5, 7, 9 steps; tails dropped
    windows = {}
    for record in got:
        windows.setdefault((record["meta"]["episode"], droid_episode(record)), []).append(record["meta"])
    assert len({i for i, _ in windows}) == 3 and sorted(e for _, e in windows) == [0, 1, 2]  # successes
    for (i, e), metas in windows.items():
        starts = list(range(0, DROID_LENGTHS[e] - 2, 3))
        assert [(m["start_step"], m["start_s"]) for m in metas] == [(k, k / 5) for k in starts]
        assert {m["source_id"] for m in metas} == {f"droid/train/{i}"}
    for record in got:
        e, start = droid_episode(record), record["meta"]["start_step"]
        assert (
            len(record["frames"]) == 3
            and record["states"].shape == (3, 7)
            and record["actions"].shape == (2, 7)
        )
        assert np.allclose(record["states"][:, :6], droid_cartesian(e, 9)[start : start + 3], atol=1e-6)
        assert np.abs(pixels(record).astype(int)[0] - frame(e, start)).max() <= 3 and record["fps"] == 5.0


def test_rerun_skips_complete_shards_redoes_the_rest_and_equals_a_clean_run(builder_dirs, tmp_path):
    clean, resumed = tmp_path / "clean", tmp_path / "resumed"
    rlds.convert(builder_dirs["droid"], clean, dataset="droid", episodes_per_shard=1)
    first = rlds.convert(builder_dirs["droid"], resumed, dataset="droid", episodes_per_shard=1)
    assert first["written"] == [f"shard-0000{k}.array_record" for k in range(4)] and first["skipped"] == []
    # A killed run: shard 1 half-written (.tmp, no final file), and the manifest never written.
    os.remove(resumed / "shard-00001.array_record")
    (resumed / "shard-00001.array_record.tmp").write_bytes(b"half a shard")
    os.remove(resumed / "manifest.json")
    kept = {k: os.stat(resumed / f"shard-0000{k}.array_record").st_mtime_ns for k in (0, 2, 3)}
    again = rlds.convert(builder_dirs["droid"], resumed, dataset="droid", episodes_per_shard=1)
    assert again["written"] == ["shard-00001.array_record"]
    assert again["skipped"] == [f"shard-0000{k}.array_record" for k in (0, 2, 3)]
    assert kept == {k: os.stat(resumed / f"shard-0000{k}.array_record").st_mtime_ns for k in (0, 2, 3)}
    assert sorted(os.listdir(resumed)) == sorted(os.listdir(clean))  # no .tmp left
    for name in os.listdir(clean):
        assert (resumed / name).read_bytes() == (clean / name).read_bytes(), name
    with pytest.raises(rlds.RLDSError, match="other settings.*fps"):
        rlds.convert(builder_dirs["droid"], resumed, dataset="droid", episodes_per_shard=1, fps=10)


def test_missing_feature_or_builder_dir_fails_with_one_line(builder_dirs, tmp_path, capsys):
    with pytest.raises(rlds.RLDSError) as error:
        rlds.convert(builder_dirs["droid"], tmp_path, dataset="recon")
    message = str(error.value)
    assert (
        "'steps/observation/image' (image)" in message and "steps/observation/cartesian_position" in message
    )
    assert "\n" not in message and not os.listdir(tmp_path)
    argv = ["--builder-dir", builder_dirs["droid"], "--output", str(tmp_path), "--dataset", "droid"]
    for extra, expected in [
        (["--camera", "nope"], "'steps/observation/nope'"),
        (["--builder-dir", "/no/such"], "/no/such"),
    ]:
        assert rlds.main(argv + extra) == 1
        err = capsys.readouterr().err
        assert expected in err
        assert err.startswith("lawm-prepare rlds: error:") and err.count("\n") == 1


def test_main_end_to_end(builder_dirs, tmp_path, capsys):
    argv = ["--builder-dir", builder_dirs["recon"], "--output", str(tmp_path), "--dataset", "recon"]
    assert rlds.main(argv + ["--max_episodes", "2", "--clip_frames", "4", "--fps", "3"]) == 0
    out = capsys.readouterr().out
    assert (
        out.count("\n") == 1 and "2 records from 2 episodes in 1 shards" in out and "0 episodes failed" in out
    )
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert (manifest["dataset"], manifest["fps"], manifest["clip_frames"], manifest["episodes"]) == (
        "recon",
        3.0,
        4,
        2,
    )
    assert [r["meta"]["source_id"] for r in read(tmp_path)] == ["recon/train/0", "recon/train/1"]


def test_running_twice_keeps_the_shards_and_replaces_the_manifest(builder_dirs, tmp_path, capsys):
    argv = ["--builder-dir", builder_dirs["recon"], "--output", str(tmp_path), "--dataset", "recon"]
    argv += ["--episodes-per-shard", "2", "--workers", "1"]
    assert rlds.main(argv) == 0
    assert "(2 written, 0 already complete)" in capsys.readouterr().out
    contents = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)}
    assert rlds.main(argv) == 0
    assert "(0 written, 2 already complete)" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path)) == sorted(contents)  # the same shards, one manifest, no .tmp
    assert {name: (tmp_path / name).read_bytes() for name in contents} == contents
    assert json.loads(contents["manifest.json"])["shards"][1]["shard"] == "shard-00001.array_record"


def test_an_output_that_is_a_file_is_one_line(builder_dirs, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    argv = ["--builder-dir", builder_dirs["recon"], "--output", str(a_file), "--dataset", "recon"]
    assert rlds.main(argv) == 1
    assert capsys.readouterr().err == f"lawm-prepare rlds: error: {a_file} is a file, not a folder\n"
