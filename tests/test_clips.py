"""Training clips from real encoded video in ArrayRecord shards: shapes, crops, bad records, the trainer."""

import ml_collections
import numpy as np
import pytest

from data_pipelines import pipeline, records, sources, video
from data_pipelines.sources.clips import ClipSource
from lawm import train
from tests.helpers import ListRecords, tiny_train_config


def moving_square(seed, frames=12, size=40):
    """A bright square moving across a dark frame at 8 fps; frame k's square is at x = 2k."""
    clip = np.full((frames, size, size, 3), 30, np.uint8)
    for k in range(frames):
        clip[k, 10:20, 2 * k + seed : 2 * k + seed + 10] = 220
    return clip


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    good = [
        {
            "video": video.encode_test_video(moving_square(i), 8),
            "fps": 8.0,
            "meta": {"source_id": f"v{i}"},
            "actions": np.full((11, 2), i, np.float32),
        }
        for i in range(6)
    ]
    bad_video = {"video": b"not a video at all", "fps": 8.0, "meta": {"source_id": "broken"}}
    truncated = records.encode_record(good[0])[:200]
    records.write_shard(folder / "clips-00000.array_record", good[:3] + [bad_video])
    records.write_shard(folder / "clips-00001.array_record", [b"\x93garbage"] + good[3:] + [truncated, b""])
    return folder


def clip_source(shard_dir, train, **counter):
    return ClipSource(
        records.RecordSource(str(shard_dir)),
        num_frames=4,
        fps=4.0,
        image_size=32,
        train=train,
        counter=records.BadRecordCounter(**counter),
    )


def test_clips_have_the_configured_shape_and_crops(shard_dir):
    evaluation, training = clip_source(shard_dir, False), clip_source(shard_dir, True)
    assert len(evaluation) == 10
    clip = evaluation[0]
    assert clip["video"].shape == (4, 32, 32, 3) and clip["video"].dtype == np.uint8
    np.testing.assert_array_equal(clip["actions"], np.zeros((3, 2), np.float32))
    assert training[1]["video"].shape == (4, 32, 32, 3)  # random crops: test_training_crops_are_random_...
    # 4 fps from 8 fps takes every other frame: the square moves 4 px per sampled frame.
    columns = [np.flatnonzero(frame[15, :, 0] > 128).mean() for frame in evaluation[0]["video"]]
    assert np.allclose(np.diff(columns), 4 * 32 / 40, atol=1.0)


def test_corrupt_truncated_and_empty_records_are_skipped_and_counted(shard_dir):
    source = clip_source(shard_dir, False, max_bad_fraction=0.5, min_records=100)
    data = pipeline.train_dataset(source, global_batch=5, seed=0, num_threads=2)
    served = [
        b for iterator in [iter(data)] for b in (next(iterator), next(iterator))
    ]  # one epoch: 10 records
    assert all(b["video"].shape == (5, 4, 32, 32, 3) for b in served)
    clip_ids = {int(a[0, 0]) // 2 for b in served for a in b["actions"]}  # 2 rows at 8 fps per 4 fps step
    assert clip_ids == set(range(6))  # every good clip came through; substitutes fill the bad slots
    assert (
        source.counter.bad >= 4 and source.counter.good >= 10
    )  # garbage, bad video, truncated, empty (+ prefetch)
    strict = clip_source(shard_dir, False, max_bad_fraction=0.05, min_records=4)
    with pytest.raises(records.BadDataError, match="max_bad_fraction=0.05"):
        [strict[i] for i in range(10)]


def test_trainer_runs_on_clip_records(shard_dir, tmp_path):
    config = tiny_train_config(total_steps=2)
    config.data = ml_collections.ConfigDict(
        dict(
            source="records",
            paths=dict(train=str(shard_dir), eval=str(shard_dir)),
            num_frames=4,
            fps=4.0,
            image_size=32,
            seed=0,
            shuffle_seed=0,
            num_threads=1,
            prefetch=1,
            max_bad_fraction=0.5,
        )
    )
    config.eval.update(num_clips=4, batch_size=4)
    assert sources.num_frames(config.data) == 4
    result = train.train_and_evaluate(config, tmp_path)
    assert [h["step"] for h in result["history"]] == [1, 2]
    assert np.isfinite(result["eval"]["error_own_latents"])


def gradient_record(height, width, axis):
    """Three JPEG frames whose grey level is 10 x the row (axis 0) or the column (axis 1) index."""
    ramp = 10 * np.arange((height, width)[axis])
    frame = np.broadcast_to(ramp[:, None] if axis == 0 else ramp[None, :], (height, width))
    jpeg = video.encode_jpeg(np.repeat(frame[..., None], 3, axis=-1).astype(np.uint8))
    return {"frames": [jpeg] * 3, "fps": 8.0}


def crop_offsets(source, axis, indices):
    """Where each clip's 8 px crop starts along `axis`, read back from the ramp: its mean is 10 (o + 3.5)."""
    return [round(source[i]["video"][..., 0].mean() / 10 - 3.5) for i in indices]


@pytest.mark.parametrize("axis", [0, 1])
def test_training_crops_are_random_per_index_repeatable_and_not_the_centre(axis):
    # 24 x 8 (tall) or 8 x 24 (wide) frames, cropped 8 x 8 without resizing: 17 offsets along the long side.
    record = gradient_record(*((24, 8) if axis == 0 else (8, 24)), axis)
    make = lambda train, seed=0: ClipSource(  # noqa: E731
        ListRecords([record] * 8), num_frames=2, fps=4.0, image_size=8, train=train, seed=seed
    )
    indices = range(8)
    assert crop_offsets(make(False), axis, indices) == [8] * 8  # evaluation: the centre, (24 - 8) / 2
    train = crop_offsets(make(True), axis, indices)
    assert all(0 <= o <= 16 for o in train), train
    assert len(set(train)) >= 4, train  # drawn per index
    assert sum(o != 8 for o in train) >= 4, train  # not the evaluation crop
    np.testing.assert_array_equal(make(True)[3]["video"], make(True)[3]["video"])  # (seed, index): repeatable
    assert crop_offsets(make(True), axis, indices) == train
    assert crop_offsets(make(True, seed=1), axis, indices) != train  # another seed, other crops


def test_actions_are_resampled_to_the_sampled_frames():
    frames = [video.encode_jpeg(np.full((8, 8, 3), 10 * i, np.uint8)) for i in range(12)]
    actions = np.arange(11, dtype=np.float32)[:, None] * [1.0, 10.0]  # row i takes frame i to i + 1
    fast = {"frames": frames, "fps": 8.0, "actions": actions}
    source = ClipSource(ListRecords([fast]), num_frames=4, fps=4.0, image_size=8, train=False)
    # 4 fps from 8 fps: frames 0, 2, 4, 6, so row k is the sum of rows 2k and 2k + 1.
    np.testing.assert_array_equal(source[0]["actions"], actions[0:6].reshape(3, 2, 2).sum(1))
    same_rate = ClipSource(
        ListRecords([dict(fast, fps=4.0)]), num_frames=4, fps=4.0, image_size=8, train=False
    )
    np.testing.assert_array_equal(same_rate[0]["actions"], actions[:3])
    # Too few rows for the window: a bad record, skipped and counted like any other.
    short = ClipSource(
        ListRecords([dict(fast, actions=actions[:5])] * 2), num_frames=4, fps=4.0, image_size=8, train=False
    )
    with pytest.raises(records.BadDataError, match="actions: 5 rows at 8.0 fps for 4 frames"):
        short[0]


def test_training_clips_start_anywhere_in_a_longer_record_with_their_actions():
    """A record longer than the clip (a whole robot episode): training windows start at random times within
    it, seeded by index, and the actions follow the frames; evaluation reads from the record's start."""
    levels = 8 * np.arange(30)  # JPEG frame i is uniformly grey at level 8 i (10 fps, 3 s)
    frames = [video.encode_jpeg(np.full((8, 8, 3), level, np.uint8)) for level in levels]
    actions = np.arange(29, dtype=np.float32)[:, None]  # row i takes frame i to i + 1
    record = {"frames": frames, "fps": 10.0, "actions": actions}

    def make(train):
        return ClipSource(ListRecords([record] * 8), num_frames=4, fps=4.0, image_size=8, train=train)

    starts = []
    for index in range(8):
        clip = make(True)[index]
        shown = np.round(clip["video"].reshape(4, -1).mean(1) / 8).astype(int)  # source frame of each
        assert 0 <= shown[0] and shown[-1] <= 29 and set(np.diff(shown).tolist()) <= {2, 3}
        expected = [actions[a:b].sum() for a, b in zip(shown[:-1], shown[1:], strict=True)]
        np.testing.assert_allclose(clip["actions"][:, 0], expected)
        starts.append(shown[0])
    assert len(set(starts)) >= 5 and max(starts) > 10  # spread over the 3 s, not just the first frames
    np.testing.assert_array_equal(make(True)[3]["video"], make(True)[3]["video"])  # seeded by index
    shown = np.round(make(False)[3]["video"].reshape(4, -1).mean(1) / 8).astype(int)
    assert shown.tolist() == [0, 2, 5, 7]  # evaluation: from the start (ties to the earlier frame)
