"""Robot-data conventions against independent numbers: DROID rotation deltas from SciPy, RECON motion over
several steps by hand, success episodes, and held-out episodes by a stable hash (issue 19)."""

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from data_pipelines import poses, records
from data_pipelines.sources import clips
from data_pipelines.tools import rlds
from tests.helpers import ListRecords

WORLD = np.array([0.03, -0.02, 0.01])  # a small rotation in the base frame, extrinsic xyz Euler angles


@pytest.mark.parametrize("yaw", [0.0, 1.2, 2.5, np.pi - 0.004, -3.1])
def test_droid_rotation_delta_is_the_world_rotation_at_every_yaw(yaw):
    # A pose at this yaw (tilted too), then the same pose turned by WORLD in the base frame. Near ±pi the
    # Euler yaw of the second pose wraps: its element-wise difference is off by about 2 pi.
    start = Rotation.from_euler("xyz", [0.4, -0.3, yaw])
    end = Rotation.from_euler("xyz", WORLD) * start
    euler = np.stack([start.as_euler("xyz"), end.as_euler("xyz")])
    cartesian = np.concatenate([[[0.5, 0.0, 0.2], [0.6, -0.1, 0.25]], euler], axis=1)
    _, actions = rlds.droid_states_actions(cartesian, [[0.0], [0.5]])
    np.testing.assert_allclose(actions[0], [0.1, -0.1, 0.05, *WORLD, 0.5], atol=1e-6)
    elementwise = rlds.wrap_angles(euler[1] - euler[0])
    assert np.abs(elementwise - WORLD).max() > 3e-3  # what the old convention gave: not the rotation


def test_droid_resampling_composes_rotations_like_the_states_do():
    """15 Hz records read at 4 fps: each resampled row is the delta between the sampled states."""
    rng = np.random.default_rng(0)
    steps = Rotation.from_rotvec(rng.normal(scale=0.15, size=(15, 3)))
    rotations = [Rotation.from_euler("xyz", [0.2, 0.1, 3.0])]
    for step in steps:
        rotations.append(step * rotations[-1])  # turns through yaw ±pi on the way
    euler = np.stack([r.as_euler("xyz") for r in rotations])
    xyz, gripper = rng.normal(size=(16, 3)), rng.uniform(size=(16, 1))
    states, actions = rlds.droid_states_actions(np.concatenate([xyz, euler], 1), gripper)
    indices = [0, 4, 8, 11, 15]  # the 15 Hz frames nearest to 0, 0.25, ..., 1 s
    resampled = clips.step_actions(actions, indices, "ee_delta")
    for k, (a, b) in enumerate(zip(indices[:-1], indices[1:], strict=True)):
        expected = (rotations[b] * rotations[a].inv()).as_euler("xyz")
        np.testing.assert_allclose(resampled[k, 3:6], expected, atol=1e-5)
        np.testing.assert_allclose(resampled[k, :3], xyz[b] - xyz[a], atol=1e-5)
        np.testing.assert_allclose(resampled[k, 6], gripper[b, 0] - gripper[a, 0], atol=1e-5)
    summed = np.stack([actions[a:b, 3:6].sum(0) for a, b in zip(indices[:-1], indices[1:], strict=True)])
    assert np.abs(resampled[:, 3:6] - summed).max() > 1e-3  # rotations do not add up


def test_recon_resampled_action_is_the_displacement_in_the_start_frame_while_turning():
    # A robot driving an arc of radius 2 m counter-clockwise at 0.5 rad a step, from heading 2.5 rad
    # (through ±pi): poses on the circle, heading tangent to it.
    centre, radius = np.array([1.0, -2.0]), 2.0
    yaw = 2.5 + 0.5 * np.arange(9)
    xy = centre + radius * np.stack([np.sin(yaw), -np.cos(yaw)], 1)  # tangent heading = yaw
    _, actions = rlds.recon_states_actions(xy, rlds.wrap_angles(yaw)[:, None])
    resampled = clips.step_actions(actions, [0, 4, 8], "se2")
    for k, (a, b) in enumerate([(0, 4), (4, 8)]):
        # By hand: the chord from pose a to pose b, seen from pose a (x forward, y left), and the turn.
        chord = xy[b] - xy[a]
        c, s = np.cos(yaw[a]), np.sin(yaw[a])
        local = [c * chord[0] + s * chord[1], -s * chord[0] + c * chord[1]]
        np.testing.assert_allclose(resampled[k], [*local, 2.0], atol=1e-5)
        # The chord of a 2 rad arc of radius 2: length 2 r sin(1), 1 rad to the left of the heading.
        np.testing.assert_allclose(
            local, 2 * radius * np.sin(1.0) * np.array([np.cos(1), np.sin(1)]), atol=1e-5
        )
    summed = actions[0:4].sum(0)  # the old resampling: rows of different frames added up
    assert np.abs(summed[:2] - resampled[0, :2]).max() > 0.5


def test_compose_identities_and_bad_kinds():
    rows = np.arange(12, dtype=np.float64).reshape(4, 3) / 10
    np.testing.assert_allclose(poses.compose(rows, "additive"), rows.sum(0))
    np.testing.assert_allclose(poses.compose(rows[:1], "se2"), rows[0])  # one row: itself
    np.testing.assert_array_equal(poses.compose(np.zeros((0, 3)), "se2"), np.zeros(3))  # a repeated frame
    with pytest.raises(ValueError, match="action_kind must be one of"):
        poses.compose(rows, "quaternion")
    record = {"frames": [b"x"] * 4, "fps": 4.0, "actions": rows[:, :2], "meta": {"action_kind": "se2"}}
    source = clips.ClipSource(ListRecords([record]), num_frames=2, fps=4.0, image_size=8, train=False)
    with pytest.raises(records.RecordError, match=r"record\[0\]: actions: action_kind 'se2' needs rows of 3"):
        source._actions(record, 0.0, "record[0]")


def test_held_out_hash_is_stable_uniform_and_names_match_paths():
    identities = [f"gs://bucket/lab/success/2023-05-{i % 28:02d}/run_{i}/trajectory.h5" for i in range(4000)]
    job = {"eval_fraction": 0.1, "eval_names": []}
    held = [i for i in identities if rlds.is_held_out(i, job)]
    assert 0.085 < len(held) / len(identities) < 0.115  # roughly the requested fraction
    assert held == [i for i in identities if rlds.is_held_out(i, dict(job))]  # the same every time
    wider = [i for i in identities if rlds.is_held_out(i, {"eval_fraction": 0.2, "eval_names": []})]
    assert set(held) < set(wider)  # a larger fraction only adds episodes
    # SHA-256, not Python's salted hash(): a fixed value for a fixed identity, in any process.
    assert rlds.hash_fraction("droid/train/0") == pytest.approx(
        int.from_bytes(__import__("hashlib").sha256(b"droid/train/0").digest()[:8], "big") / 2**64
    )
    path = "gs://bucket/lab/success/2023-05-01/Mon_May_1_10:00:00_2023/trajectory.h5"
    for name in (path, "Mon_May_1_10:00:00_2023/trajectory.h5", "Mon_May_1_10:00:00_2023", "trajectory"):
        assert rlds.name_matches(name, path), name
    for name in ("May_1_10:00:00_2023", "trajectory.h", "success/2023-05-01/Mon"):
        assert not rlds.name_matches(name, path), name


@pytest.fixture(scope="module")
def builder_dirs(tmp_path_factory):
    from tests import test_rlds

    root = tmp_path_factory.mktemp("rlds")
    return {
        "droid": test_rlds.prepare(test_rlds.TinyDroid, root, "array_record"),
        "recon": test_rlds.prepare(test_rlds.TinyRecon, root, "array_record"),
    }


def held_out_ids(folder):
    source = records.RecordSource(folder / "eval")
    return sorted(source[i]["meta"]["file_path"] for i in range(len(source)))


def test_split_is_disjoint_and_the_same_for_any_shard_size_or_worker_count(builder_dirs, tmp_path):
    options = dict(dataset="droid", episodes="all", eval_fraction=0.5)
    one = rlds.convert(builder_dirs["droid"], tmp_path / "one", **options)
    two = rlds.convert(builder_dirs["droid"], tmp_path / "two", episodes_per_shard=1, workers=2, **options)
    assert one["layout"] == "train/ and eval/ shards" and one["skipped_episodes"] == 0
    assert 0 < one["eval_episodes"] < 4 and one["eval_episodes"] == two["eval_episodes"]
    train = records.RecordSource(tmp_path / "one" / "train")
    train_ids = {train[i]["meta"]["file_path"] for i in range(len(train))}
    assert held_out_ids(tmp_path / "one") == held_out_ids(tmp_path / "two")
    assert not train_ids & set(held_out_ids(tmp_path / "one"))  # disjoint ...
    assert len(train_ids) + one["eval_episodes"] == 4  # ... and together every episode
    expected = sorted(
        i for i in train_ids | set(held_out_ids(tmp_path / "one")) if rlds.hash_fraction(i) < 0.5
    )
    assert held_out_ids(tmp_path / "one") == expected
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["eval_records"] == one["eval_episodes"] and len(manifest["shards"]) == 4
    again = rlds.convert(builder_dirs["droid"], tmp_path / "one", **options)  # a re-run: nothing to redo
    assert again["written"] == [] and held_out_ids(tmp_path / "one") == expected


def test_named_held_out_episodes_success_filter_and_metadata(builder_dirs, tmp_path):
    from tests.test_rlds import recon_file_path

    names = tmp_path / "eval.txt"
    trajectory = recon_file_path(1).split("/")[-1].removesuffix(".hdf5")  # as NWM's split files name them
    names.write_text(f"# held out\n{trajectory}\nnot_there\n")
    manifest = rlds.convert(
        builder_dirs["recon"], tmp_path / "out", dataset="recon", eval_episodes=str(names)
    )
    assert (manifest["episode_filter"], manifest["eval_episodes"], manifest["converted_episodes"]) == (
        "all",
        1,
        3,
    )
    assert manifest["eval_names_unmatched"] == ["not_there"] and manifest["fps"] == 4.0
    assert held_out_ids(tmp_path / "out") == [recon_file_path(1)]
    with pytest.raises(rlds.RLDSError, match="eval_episodes: cannot read /no/such"):
        rlds.convert(builder_dirs["recon"], tmp_path / "x", dataset="recon", eval_episodes="/no/such")
    # DROID's default keeps the successes only and counts the rest; "all" keeps the failed one too.
    success = rlds.convert(builder_dirs["droid"], tmp_path / "success", dataset="droid")
    every = rlds.convert(builder_dirs["droid"], tmp_path / "all", dataset="droid", episodes="all")
    assert (success["converted_episodes"], success["skipped_episodes"]) == (3, 1)
    assert (every["converted_episodes"], every["skipped_episodes"]) == (4, 0)
    kept = records.RecordSource(tmp_path / "success")
    assert all("/success/" in kept[i]["meta"]["file_path"] for i in range(len(kept)))
    assert all(kept[i]["meta"]["recording_folderpath"].endswith("/recordings/MP4") for i in range(len(kept)))
    # A flat output cannot become a split one in place.
    with pytest.raises(rlds.RLDSError, match="holds shards this conversion would not write"):
        rlds.convert(
            builder_dirs["droid"], tmp_path / "all", dataset="droid", episodes="all", eval_fraction=0.5
        )


def test_success_needs_file_paths(builder_dirs, tmp_path, monkeypatch):
    monkeypatch.setitem(rlds.METADATA, "recon", {"file_path": "episode_metadata/no_such_path"})
    with pytest.raises(
        rlds.RLDSError, match="episodes='success' needs the feature 'episode_metadata/no_such"
    ):
        rlds.convert(builder_dirs["recon"], tmp_path, dataset="recon", episodes="success")
