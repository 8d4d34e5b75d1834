"""Clip records: msgpack round trips, schema errors, ArrayRecord shards, skipping and counting bad records."""

import io

import grain
import msgpack
import numpy as np
import pytest
from array_record.python.array_record_module import ArrayRecordWriter
from PIL import Image

from data_pipelines import records, video

# Bit patterns a lossy round trip would change: -0.0, a subnormal, inf, NaN with a payload.
ODD_FLOATS = np.array([-0.0, 1e-45, np.inf, -np.inf], np.float32)
NAN_PAYLOAD = np.array([0x7FC01234], np.uint32).view(np.float32)


def tiny_video(seed=0, num=8):
    pixels = np.random.default_rng(seed).integers(0, 256, (num, 16, 16, 3), np.uint8)
    return video.encode_test_video(pixels, 4)


def jpeg(seed=0):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (16, 16, 3), np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def arrays(seed=0):
    rng = np.random.default_rng(seed)
    actions = rng.normal(size=(15, 7)).astype(np.float32)
    actions[0, :4], actions[0, 4] = ODD_FLOATS, NAN_PAYLOAD[0]
    return {"actions": actions, "states": rng.normal(size=(16, 3)).astype(np.float32)}


def video_record(source_id="vid-0", seed=0):
    return {"video": tiny_video(seed), "fps": 4.0, "meta": {"source_id": source_id, "start_s": 12.5}}


def assert_same_record(decoded, record):
    assert set(decoded) == set(record)
    for key, value in record.items():
        if key in ("actions", "states"):
            assert decoded[key].dtype == np.float32 and decoded[key].shape == value.shape
            assert decoded[key].tobytes() == value.tobytes()  # bit for bit, NaN payload included
        else:
            assert decoded[key] == value


@pytest.mark.parametrize("form", ["video", "frames"])
def test_round_trip(form):
    record = {"fps": 29.97, "meta": {"source_id": "droid/ep-3", "start_s": 0.5, "extra": [1, "a", None]}}
    record |= {"video": tiny_video()} if form == "video" else {"frames": [jpeg(0), jpeg(1), jpeg(2)]}
    record |= arrays()
    decoded = records.decode_record(records.encode_record(record))
    assert_same_record(decoded, record)
    decoded["actions"][0, 0] = 1.0  # arrays come back writable


def test_encode_casts_arrays_to_float32():
    record = video_record() | {"actions": [[1.0, 2.0]], "states": np.arange(3, dtype=np.float64)}
    decoded = records.decode_record(records.encode_record(record))
    assert decoded["actions"].dtype == np.float32 and decoded["actions"].shape == (1, 2)
    np.testing.assert_array_equal(decoded["states"], [0, 1, 2])


def raw(**changes):
    """msgpack bytes of a valid record with some fields replaced (None: removed), bypassing encode_record."""
    record = video_record() | {"actions": {"dtype": "float32", "shape": [2], "data": b"\0" * 8}}
    for key, value in changes.items():
        if value is None:
            record.pop(key)
        else:
            record[key] = value
    return msgpack.packb(record, use_bin_type=True)


@pytest.mark.parametrize(
    "data, field",
    [
        (raw(fps=None), "fps"),
        (raw(fps="30"), "fps"),
        (raw(fps=0.0), "fps"),
        (raw(video=None), "video/frames"),
        (raw(frames=[b"jpeg"]), "video/frames"),
        (raw(video=b""), "video"),
        (raw(video=None, frames=[b"ok", 3]), "frames[1]"),
        (raw(labels=[1]), "labels"),
        (raw(meta=None), "meta"),
        (raw(meta={"start_s": 1.0}), "meta.source_id"),
        (raw(meta={"source_id": "a", "start_s": -1}), "meta.start_s"),
        (raw(meta={"source_id": "a", "when": msgpack.ExtType(5, b"x")}), "meta.when"),
        (raw(actions={"dtype": "float64", "shape": [1], "data": b"\0" * 8}), "actions"),
        (raw(actions={"dtype": "float32", "shape": [3], "data": b"\0" * 8}), "actions"),
        (raw(states={"dtype": "float32", "shape": [-1], "data": b""}), "states"),
        (raw(states=[1.0, 2.0]), "states"),
        (msgpack.packb([1, 2]), "record"),
        (b"\xc1 not msgpack", "record"),
    ],
)
def test_schema_errors_name_the_field(data, field):
    with pytest.raises(records.RecordError) as info:
        records.decode_record(data, where="shard-00003.array_record[17]")
    message = str(info.value)
    assert message.startswith(f"shard-00003.array_record[17]: {field}: ") and "\n" not in message


def test_encode_validates_too():
    with pytest.raises(records.RecordError, match="^meta.source_id: "):
        records.encode_record(video_record() | {"meta": {}})


def test_shards_round_trip_through_record_source(tmp_path):
    written = [video_record(f"vid-{i}", seed=i) | arrays(i) for i in range(5)]
    assert records.write_shard(tmp_path / "shard-00000.array_record", written[:3]) == 3
    records.write_shard(tmp_path / "shard-00001.array_record", map(records.encode_record, written[3:]))
    source = records.RecordSource(tmp_path)
    assert len(source) == 5
    for i, record in enumerate(written):
        assert_same_record(source[i], record)
    assert repr(source) == repr(records.RecordSource(tmp_path))
    assert "2 shards, 5 records" in repr(source)
    assert len(grain.MapDataset.source(source)) == 5  # a grain random-access source


def test_bad_record_error_names_the_shard_and_position(tmp_path):
    records.write_shard(tmp_path / "shard-00000.array_record", [video_record()] * 2)
    records.write_shard(tmp_path / "shard-00001.array_record", [video_record(), b"garbage", video_record()])
    source = records.RecordSource(tmp_path)
    with pytest.raises(records.RecordError, match=r"^shard-00001\.array_record\[1\]: record: "):
        source[3]
    assert source[4]["meta"]["source_id"] == "vid-0"


def test_partial_shards_are_never_visible(tmp_path):
    records.write_shard(tmp_path / "shard-00000.array_record", [video_record()])
    # A writer killed before its rename leaves only the .tmp file behind.
    crashed = ArrayRecordWriter(str(tmp_path / "shard-00001.array_record.tmp"), "group_size:1")
    crashed.write(records.encode_record(video_record()))
    crashed.close()
    assert records.list_shards(tmp_path) == [str(tmp_path / "shard-00000.array_record")]
    assert len(records.RecordSource(tmp_path)) == 1

    def failing():  # a writer that fails midway cleans up and leaves no shard
        yield video_record()
        raise RuntimeError("source went away")

    with pytest.raises(RuntimeError, match="went away"):
        records.write_shard(tmp_path / "shard-00002.array_record", failing())
    assert not (tmp_path / "shard-00002.array_record").exists()
    assert not (tmp_path / "shard-00002.array_record.tmp").exists()
    assert records.list_shards(tmp_path) == [str(tmp_path / "shard-00000.array_record")]


def bad_shard(tmp_path, num_good, num_bad_each=1):
    """A shard of good video records mixed with corrupt, truncated, empty and schema-breaking ones."""
    good = [video_record(f"good-{i}", seed=i) for i in range(num_good)]
    video_bytes = tiny_video()
    bad = [
        b"\x00\x01 corrupt record bytes",  # not msgpack
        records.encode_record(video_record("truncated") | {"video": video_bytes[: len(video_bytes) // 2]}),
        records.encode_record(video_record("garbage") | {"video": b"\x00" * 1000}),
        raw(video=b""),  # empty video
        raw(fps=None),
    ]
    bad = bad * num_bad_each
    records.write_shard(tmp_path / "shard-00000.array_record", good + bad)
    return records.RecordSource(tmp_path), len(good), len(bad)


def clip_reader(source):
    def make_clip(index):
        record = source[index]
        clip = video.decode_clip(record["video"], num_frames=4, fps=4, where=record["meta"]["source_id"])
        return {"clip": clip, "source_id": record["meta"]["source_id"]}

    return make_clip


def test_skip_bad_drops_and_counts_bad_records(tmp_path):
    source, num_good, num_bad = bad_shard(tmp_path, num_good=8)
    counter = records.BadRecordCounter(max_bad_fraction=1.0)  # no bound here
    dataset = (
        grain.MapDataset.range(len(source))
        .shuffle(seed=0)
        .map(records.skip_bad(clip_reader(source), counter))
        .to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=4))
        .batch(3, drop_remainder=False)
    )
    ids = [i for batch in dataset for i in batch["source_id"]]
    assert sorted(ids) == sorted(f"good-{i}" for i in range(num_good))  # every good clip, once
    assert (counter.good, counter.bad) == (num_good, num_bad)
    assert counter.metrics() == {
        "data/bad_records": num_bad,
        "data/bad_fraction": num_bad / (num_good + num_bad),
    }


def test_too_many_bad_records_stop_the_run(tmp_path):
    source, _, _ = bad_shard(tmp_path, num_good=4, num_bad_each=2)
    counter = records.BadRecordCounter(max_bad_fraction=0.25, min_records=6)
    dataset = grain.MapDataset.range(len(source)).map(records.skip_bad(clip_reader(source), counter))
    with pytest.raises(records.BadDataError, match=r"above max_bad_fraction=0\.25") as info:
        list(dataset.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)))
    assert "\n" not in str(info.value)
    assert counter.seen >= 6 and counter.bad_fraction > 0.25


def records_until_stopped(counter, kinds):
    """Feeds skip_bad records in order ("g" good, "b" bad): how many it took when the run stopped, or None."""

    def decode(kind):
        if kind == "b":
            raise records.RecordError("meta: missing")
        return kind

    read = records.skip_bad(decode, counter)
    for taken, kind in enumerate(kinds, start=1):
        try:
            read(kind)
        except records.BadDataError:
            return taken
    return None


def test_bad_records_first_stop_the_run_only_once_min_records_are_seen():
    counter = records.BadRecordCounter(max_bad_fraction=0.25, min_records=4)
    # 3 of 3 bad (100 %) is no verdict yet; the 4th record reaches min_records, still 100 % bad: stop there.
    assert records_until_stopped(counter, "bbbbgggg") == 4
    assert (counter.good, counter.bad) == (0, 4)


def test_a_bad_fraction_at_the_bound_never_stops_the_run_and_just_above_does():
    at_bound = records.BadRecordCounter(max_bad_fraction=0.25, min_records=4)
    assert records_until_stopped(at_bound, "gggb" * 50) is None  # 1 in 4 after every bad record: 0.25
    assert at_bound.bad_fraction == 0.25
    below = records.BadRecordCounter(max_bad_fraction=0.2499, min_records=4)  # the same records, just above
    assert records_until_stopped(below, "gggb" * 50) == 4


def test_other_errors_are_not_swallowed():
    counter = records.BadRecordCounter()
    with pytest.raises(ZeroDivisionError):
        records.skip_bad(lambda x: 1 / x, counter)(0)
    assert counter.seen == 0
