"""Training clips decoded from clip records (data_pipelines/records.py), as a grain random-access source.

Record i becomes {"video": uint8 (F, S, S, 3)} (+ "actions" (F-1, A) when the record has them): F frames
sampled at `fps` by presentation timestamps from the record's start (evaluation) or from a random time
within it (training, when the record is longer than the clip, as a whole robot episode is), the short side
resized to S and a crop taken (random in training, seeded by (seed, index) so runs repeat exactly; centred
in evaluation).
Actions are resampled to the sampled frames (`step_actions`): row k composes the record's rows between
frames k and k + 1 as its `meta.action_kind` says (data_pipelines/poses.py: DROID rotations compose, RECON
robot-frame steps compose as poses, other rows add up), e.g. DROID records at 15 fps read at 4 fps.

A record that fails to decode is skipped and counted: the source serves a deterministic substitute
(another record) in its place, so batches keep their static shape, the run stays reproducible and the
global batch still does not depend on the number of processes. The counter stops the run with a one-line
error once the bad fraction passes its bound.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from data_pipelines import poses, records, video

# Substitutes are spread over the source by a large odd stride, so one damaged shard does not feed the
# next bad neighbour in.
_SUBSTITUTE_STRIDE = 1_000_003


def first_good(
    make: Callable[[int], dict],
    index: int,
    size: int,
    counter: records.BadRecordCounter,
    max_attempts: int,
    where: Callable[[int], str],
    what: str,
) -> dict:
    """make(index), or make() of the next substitute when it raises RecordError / VideoError (counted).

    Candidates are index, index + stride, index + 2 * stride, ... (mod size); every one is counted, good or
    bad, so the counter raises BadDataError past its bound. `max_attempts` bad ones in a row raise
    BadDataError too, naming `where(index)` and `what` ("records", "videos").
    """
    for attempt in range(max_attempts):
        candidate = (index + attempt * _SUBSTITUTE_STRIDE) % size
        try:
            clip = make(candidate)
        except (records.RecordError, video.VideoError) as error:
            counter.count(error)  # raises BadDataError past the bound
            continue
        counter.count()
        return clip
    raise records.BadDataError(
        f"{max_attempts} {what} in a row failed to decode, from {where(index)}; last: {counter.last_error}"
    )


class SampledSource:
    """What ClipSource and VideoFolderSource share: the clips they sample and the substitute policy.

    Element i is a clip of `num_frames` frames at `fps`, `image_size` square; in training its random draws
    come from `np.random.default_rng([seed, i])`, so runs repeat exactly. A subclass defines `__len__`,
    `where(index)` (the record or video behind an element, for messages) and `_clip(index)`; an element that
    fails to decode is replaced through `first_good`, counted by `counter`.
    """

    what = "records"  # what an element is read from, for BadDataError messages

    def __init__(
        self,
        *,
        num_frames: int,
        fps: float,
        image_size: int,
        train: bool,
        seed: int = 0,
        counter: records.BadRecordCounter | None = None,
        max_attempts: int = 8,
    ):
        self.num_frames, self.fps, self.image_size = num_frames, fps, image_size
        self.train, self.seed, self.max_attempts = train, seed, max_attempts
        self.counter = counter if counter is not None else records.BadRecordCounter()

    def __getitem__(self, index) -> dict:
        return first_good(
            self._clip, int(index), len(self), self.counter, self.max_attempts, self.where, self.what
        )

    def rng(self, index: int) -> np.random.Generator | None:
        """The random draws of element `index` in training; None (centred window and crop) in evaluation."""
        return np.random.default_rng([self.seed, index]) if self.train else None


class ClipSource(SampledSource):
    """Clips from the records of a RecordSource (`**sampling`: SampledSource's keyword arguments)."""

    def __init__(self, record_source: records.RecordSource, **sampling):
        super().__init__(**sampling)
        self.records = record_source

    def __len__(self) -> int:
        return len(self.records)

    def where(self, index: int) -> str:
        return self.records.where(index)

    def __repr__(self) -> str:  # grain checkpoints identify a source by its repr
        return (
            f"ClipSource({self.records!r}, num_frames={self.num_frames}, fps={self.fps}, "
            f"image_size={self.image_size}, train={self.train}, seed={self.seed})"
        )

    def start_s(self, record, index: int, where: str) -> float:
        """Where the clip starts in its record: at a uniform random time in training, when the record is
        longer than the clip (e.g. a whole robot episode; drawn from its own stream, so the crops of
        clip-length records stay as they were), at the record's start in evaluation."""
        if not self.train:
            return 0.0
        if "frames" in record:
            length_s = (len(record["frames"]) - 1) / record["fps"]
        else:
            length_s = video.probe(record["video"], where=where).duration_s - 1 / self.fps
        latest = length_s - (self.num_frames - 1) / self.fps
        if latest <= video.TIE_EPS_S:
            return 0.0
        return float(np.random.default_rng([self.seed, index, 1]).uniform(0.0, latest))

    def _clip(self, index: int) -> dict:
        record = self.records[index]
        where = self.records.where(index)
        start_s = self.start_s(record, index, where)
        sampling = dict(
            num_frames=self.num_frames,
            fps=self.fps,
            start_s=start_s,
            size=self.image_size,
            crop="random" if self.train else "center",
            rng=self.rng(index),
            where=where,
        )
        if "video" in record:
            frames = video.decode_clip(record["video"], **sampling)
        else:
            frames = video.decode_jpeg_frames(record["frames"], source_fps=record["fps"], **sampling)
        clip = {"video": frames}
        if "actions" in record:
            clip["actions"] = self._actions(record, start_s, where)
        return clip

    def _actions(self, record, start_s: float, where: str) -> np.ndarray:
        """The record's actions (one row per transition of its frames, at its fps) resampled to the clip's
        frames, chosen as for `frames` (`step_actions`)."""
        actions, rate = np.asarray(record["actions"]), record["fps"]
        if start_s + (self.num_frames - 1) / self.fps > (len(actions) + 0.5) / rate + video.TIE_EPS_S:
            raise records.RecordError(
                f"{where}: actions: {len(actions)} rows at {rate} fps for {self.num_frames} frames at "
                f"{self.fps} fps"
            )
        indices = video.nearest_indices(
            len(actions) + 1, rate, self.num_frames, self.fps, start_s=start_s, where=where
        )
        kind = record.get("meta", {}).get("action_kind", "additive")
        try:
            return step_actions(actions, indices, kind)
        except ValueError as e:
            raise records.RecordError(f"{where}: actions: {e}") from None


def step_actions(actions_TA, indices, kind: str = "additive") -> np.ndarray:
    """Per-transition actions (T, A) of a record -> the action between each pair of consecutive record frame
    `indices` (len(indices) - 1, A): the rows between them composed as `kind` says (poses.compose: the
    displacement from frame indices[k] to indices[k + 1]); at equal rates the rows unchanged. float32."""
    actions = np.asarray(actions_TA, np.float64)
    pairs = zip(indices[:-1], indices[1:], strict=True)
    return np.stack([poses.compose(actions[a:b], kind) for a, b in pairs]).astype(np.float32)
