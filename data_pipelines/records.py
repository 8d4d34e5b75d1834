"""The clip record format: ArrayRecord shards of msgpack maps (never pickle: shards may come from strangers).

A record is a msgpack map with exactly these keys:

- `video`: encoded bytes of any container PyAV reads (mp4/H.264, webm/VP9, ...), *or*
- `frames`: a list of JPEG bytes, shown at `fps`;
- `fps`: float > 0: the rate of `frames`; for `video` the nominal rate (the container's timestamps rule);
- `actions`, `states` (optional): float32 arrays, stored as {"dtype": "float32", "shape": [...],
  "data": little-endian bytes}; they come back as numpy arrays. `states` are a robot's (joint or pose)
  states, one row per frame: never the encoder's states, which a batch calls `encoder_states`;
- `meta`: a map with string keys: `source_id` (str, required: the video or episode the record came from),
  `start_s` (number, optional: where the record's first frame lies in that source), anything else small.

`decode_record` validates the schema: a missing, mistyped or unknown field raises `RecordError` with one
line naming the field (and where the record lives, e.g. "shard-00003.array_record[17]"). Shards are
written to `path + ".tmp"` and renamed when complete, so a half-written shard never looks like a shard;
`list_shards` sees only `*.array_record`. `skip_bad` and `BadRecordCounter` turn records that fail to
decode into counted, logged drops, and stop the run with a clear error only past a configured bad fraction.
"""

from __future__ import annotations

import glob
import math
import os
import threading
from collections.abc import Callable, Iterable, Sequence

import grain
import msgpack
import numpy as np
from absl import logging
from array_record.python.array_record_module import ArrayRecordReader, ArrayRecordWriter

from data_pipelines.video import VideoError

SHARD_SUFFIX = ".array_record"
_ARRAY_FIELDS = ("actions", "states")
_FIELDS = {"video", "frames", "fps", "meta", *_ARRAY_FIELDS}
_META_SCALARS = (str, int, float, bool, bytes, type(None))


class RecordError(ValueError):
    """A record whose bytes are not a valid clip record."""


class BadDataError(RuntimeError):
    """More records failed to decode than the configured bound allows."""


def _fail(where: str, field: str, problem: str) -> RecordError:
    return RecordError(f"{where}: {field}: {problem}" if where else f"{field}: {problem}")


def _check_meta(value, field: str, where: str) -> None:
    """Plain msgpack values only: no ext types (msgpack's Timestamp, ExtType) reach user code."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _fail(where, field, f"keys must be strings, got {type(key).__name__}")
            _check_meta(item, f"{field}.{key}", where)
    elif isinstance(value, (list, tuple)) and not isinstance(value, msgpack.ExtType):  # ExtType: a tuple
        for i, item in enumerate(value):
            _check_meta(item, f"{field}[{i}]", where)
    elif not isinstance(value, _META_SCALARS):
        raise _fail(where, field, f"unsupported type {type(value).__name__}")


def _array_to_map(value, field: str) -> dict:
    try:
        array = np.asarray(value, np.float32)
    except (TypeError, ValueError) as e:
        raise _fail("", field, f"not convertible to float32: {e}") from None
    return {"dtype": "float32", "shape": list(array.shape), "data": array.astype("<f4").tobytes()}


def _map_to_array(value, field: str, where: str) -> np.ndarray:
    if not isinstance(value, dict) or set(value) != {"dtype", "shape", "data"}:
        raise _fail(where, field, 'expected a map with exactly "dtype", "shape", "data"')
    if value["dtype"] != "float32":
        raise _fail(where, field, f'dtype must be "float32", got {value["dtype"]!r}')
    shape = value["shape"]
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):  # bool is no int
        raise _fail(where, field, f"shape must be a list of non-negative ints, got {shape!r}")
    data = value["data"]
    if not isinstance(data, bytes) or len(data) != 4 * math.prod(shape):
        size = len(data) if isinstance(data, bytes) else type(data).__name__
        raise _fail(where, field, f"data must be {4 * math.prod(shape)} bytes for shape {shape}, got {size}")
    return np.frombuffer(data, "<f4").astype(np.float32).reshape(shape)  # a writable native-order copy


def _validate(record, where: str) -> None:
    """Checks everything but the array fields' contents (see _map_to_array)."""
    if not isinstance(record, dict):
        raise _fail(where, "record", f"expected a map, got {type(record).__name__}")
    unknown = sorted(str(key) for key in record if key not in _FIELDS)
    if unknown:
        raise _fail(where, unknown[0], f"unknown field (allowed: {', '.join(sorted(_FIELDS))})")
    if ("video" in record) == ("frames" in record):
        raise _fail(where, "video/frames", "exactly one of the two is required")
    if "video" in record and not (isinstance(record["video"], bytes) and record["video"]):
        raise _fail(where, "video", "must be non-empty bytes")
    if "frames" in record:
        frames = record["frames"]
        if not isinstance(frames, list) or not frames:
            raise _fail(where, "frames", "must be a non-empty list of JPEG bytes")
        for i, frame in enumerate(frames):
            if not isinstance(frame, bytes) or not frame:
                raise _fail(where, f"frames[{i}]", "must be non-empty bytes")
    fps = record.get("fps")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not (math.isfinite(fps) and fps > 0):
        raise _fail(where, "fps", f"must be a finite number > 0, got {fps!r}")
    if "meta" not in record:
        raise _fail(where, "meta", "missing")
    meta = record["meta"]
    if not isinstance(meta, dict):
        raise _fail(where, "meta", f"expected a map, got {type(meta).__name__}")
    _check_meta(meta, "meta", where)
    if not isinstance(meta.get("source_id"), str):
        raise _fail(where, "meta.source_id", f"must be a string, got {meta.get('source_id')!r}")
    start_s = meta.get("start_s", 0.0)
    if isinstance(start_s, bool) or not isinstance(start_s, (int, float)) or not start_s >= 0:
        raise _fail(where, "meta.start_s", f"must be a number >= 0, got {start_s!r}")


def encode_record(record: dict) -> bytes:
    """A record dict (arrays as numpy or nested lists, cast to float32) -> msgpack bytes, validated."""
    packed = dict(record)
    for field in _ARRAY_FIELDS:
        if field in packed:
            packed[field] = _array_to_map(packed[field], field)
    for field in ("video", "frames"):  # bytearray / memoryview in, bytes stored
        if isinstance(packed.get(field), (bytearray, memoryview)):
            packed[field] = bytes(packed[field])
    if isinstance(packed.get("frames"), tuple):
        packed["frames"] = list(packed["frames"])
    if isinstance(packed.get("fps"), np.floating | np.integer):
        packed["fps"] = float(packed["fps"])
    _validate(packed, "")
    return msgpack.packb(packed, use_bin_type=True)


def decode_record(data: bytes, *, where: str = "") -> dict:
    """msgpack bytes -> a validated record dict, `actions` / `states` as float32 numpy arrays."""
    try:
        record = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException) as e:
        raise _fail(where, "record", f"not a msgpack map: {type(e).__name__}: {e}") from None
    _validate(record, where)
    for field in _ARRAY_FIELDS:
        if field in record:
            record[field] = _map_to_array(record[field], field, where)
    record["fps"] = float(record["fps"])
    return record


def write_shard(path: str | os.PathLike, records: Iterable[dict | bytes]) -> int:
    """Write records (dicts, or bytes from encode_record) to one shard; returns how many were written.

    The shard appears at `path` only once complete (written to `path + ".tmp"`, then renamed).
    """
    path = os.fspath(path)
    tmp = path + ".tmp"
    writer = ArrayRecordWriter(tmp, "group_size:1")  # group_size 1: cheap random access per record
    count = 0
    try:
        for record in records:
            writer.write(record if isinstance(record, bytes) else encode_record(record))
            count += 1
    except BaseException:
        writer.close()
        os.remove(tmp)
        raise
    writer.close()
    os.replace(tmp, path)
    return count


def list_shards(pattern: str | os.PathLike) -> list[str]:
    """Sorted complete shards: `pattern` is a directory (its *.array_record files) or a glob."""
    pattern = os.fspath(pattern)
    if os.path.isdir(pattern):
        pattern = os.path.join(pattern, "*" + SHARD_SUFFIX)
    return sorted(p for p in glob.glob(pattern) if p.endswith(SHARD_SUFFIX))


class RecordSource:
    """A grain random-access source over shards: source[i] is the i-th record, decoded and validated.

    Video bytes and JPEGs stay encoded (decoding them is the pipeline's per-clip work). A record that fails
    validation raises RecordError naming the shard and position, e.g. "shard-00003.array_record[17]".
    """

    def __init__(self, paths: str | os.PathLike | Sequence[str | os.PathLike]):
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths] if os.path.isfile(paths) else list_shards(paths)
        self.paths = [os.fspath(p) for p in paths]
        if not self.paths:
            raise ValueError(f"RecordSource: no shards in {paths!r}")
        self._source = grain.sources.ArrayRecordDataSource(self.paths)
        self._ends = None  # cumulative record counts per shard, computed on the first error

    def __len__(self) -> int:
        return len(self._source)

    def __repr__(self) -> str:
        return f"RecordSource({len(self.paths)} shards, {len(self)} records, first={self.paths[0]!r})"

    def where(self, index: int) -> str:
        """Shard file name and position, e.g. "shard-00003.array_record[17]", of a global record index."""
        if self._ends is None:
            counts = []
            for path in self.paths:
                reader = ArrayRecordReader(path)
                counts.append(reader.num_records())
                reader.close()
            self._ends = np.cumsum(counts).tolist()
        shard = int(np.searchsorted(self._ends, index, side="right"))
        start = self._ends[shard - 1] if shard else 0
        return f"{os.path.basename(self.paths[shard])}[{index - start}]"

    def __getitem__(self, index: int) -> dict:
        data = self._source[index]
        try:
            return decode_record(data)
        except RecordError as e:
            raise RecordError(f"{self.where(index)}: {e}") from None


class BadRecordCounter:
    """Counts records that decoded and records that did not; fails once too many did not.

    Thread-safe (grain's read threads share one counter). Counts are per process: use grain's read
    threads, not mp_prefetch workers, for pipelines that skip bad records. After `min_records` records,
    a bad fraction above `max_bad_fraction` raises BadDataError, a one-line message naming the bound.
    """

    def __init__(self, *, max_bad_fraction: float = 0.01, min_records: int = 1000, log_first: int = 100):
        self.max_bad_fraction, self.min_records, self.log_first = max_bad_fraction, min_records, log_first
        self.good = self.bad = 0
        self.last_error = ""
        self._lock = threading.Lock()

    @property
    def seen(self) -> int:
        return self.good + self.bad

    @property
    def bad_fraction(self) -> float:
        return self.bad / self.seen if self.seen else 0.0

    def metrics(self) -> dict[str, float]:
        return {"data/bad_records": float(self.bad), "data/bad_fraction": self.bad_fraction}

    def count(self, error: Exception | None = None) -> None:
        """Count one record: good when `error` is None, else bad (logged with its message)."""
        with self._lock:
            if error is None:
                self.good += 1
            else:
                self.bad += 1
                self.last_error = str(error)
                # Log every bad record at first, then one in 1000: a bad dataset must not flood the log.
                if self.bad <= self.log_first or self.bad % 1000 == 0:
                    logging.warning("Skipped bad record (%d so far): %s", self.bad, error)
            if self.seen >= self.min_records and self.bad_fraction > self.max_bad_fraction:
                raise BadDataError(
                    f"{self.bad} of {self.seen} records ({self.bad_fraction:.2%}) failed to decode, above "
                    f"max_bad_fraction={self.max_bad_fraction}; last: {self.last_error}"
                )


def skip_bad(
    fn: Callable, counter: BadRecordCounter, errors: tuple[type[Exception], ...] = (RecordError, VideoError)
) -> Callable:
    """Wrap a per-element function so an element raising one of `errors` becomes None, counted and logged.

    grain's MapDataset.map passes None through without calling later maps, and `to_iter_dataset()` drops
    Nones, so batch after converting to an IterDataset. To count schema errors too, map over indices:
    `grain.MapDataset.range(len(source)).map(skip_bad(lambda i: make_clip(source[i]), counter))`.
    """

    def skipping(element):
        try:
            result = fn(element)
        except errors as e:
            counter.count(e)
            return None
        counter.count()
        return result

    return skipping
