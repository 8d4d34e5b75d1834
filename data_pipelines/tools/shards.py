"""The resumable shard writer behind `lawm-prepare videos` and `lawm-prepare rlds`.

A conversion is planned as units, one shard each, that depend on the inputs and settings alone, so a
re-run maps the same inputs to the same shard names without reading anything first. Then:

1. `make_output(folder)`: the output folder, created if needed (`OutputError` if it is a file).
2. `Plan(units, accept)`: which units are complete. A unit is complete when its shard and its sidecar
   (`<shard stem>.json`, the unit's summary) both exist and `accept(unit, sidecar)` says they match the
   unit; `accept` may raise to refuse an output written from other inputs or settings.
3. `plan.run(worker, workers=N)`: every other unit through `worker(unit.path, *unit.args)`, in this process
   or in N spawned worker processes. Stale files go first: `.tmp` leftovers of killed runs, and the
   manifest, since a manifest means every shard is complete. The worker writes its shard with `write`,
   which writes the records to `<shard>.tmp`, then the sidecar, then renames the shard into place: an
   interrupted unit never looks complete and is redone by the next run, a complete one is never redone.
4. `plan.write_manifest(manifest)`: `manifest.json`, replaced in one step (lawm.files.write_json).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import os
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from data_pipelines import records
from lawm import files

MANIFEST = "manifest.json"


class OutputError(ValueError):
    """The output folder cannot be used (it is a file, or cannot be created)."""


class Unit(NamedTuple):
    """One shard to write: its final path and the rest of the worker's (picklable) arguments."""

    path: str
    args: tuple


def sidecar_path(shard_path: str) -> str:
    """Where the summary of a shard lives: `clips-00003.array_record` -> `clips-00003.json`."""
    return shard_path.removesuffix(records.SHARD_SUFFIX) + ".json"


def make_output(folder: str | os.PathLike) -> None:
    """Create the output folder (and its parents) unless it exists."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise OutputError(f"{folder} is a file, not a folder")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the output folder {folder}: {e.strerror or e}") from None


def write(path: str, shard_records: Iterable[dict | bytes], sidecar: dict) -> dict:
    """Write one shard and its sidecar; returns the sidecar (what `Plan.run` expects of a worker).

    `sidecar` may still be filled in while `shard_records` is consumed: it is written once the records are
    exhausted and before the shard is renamed into place, so a complete shard always has its sidecar.
    """

    def then_sidecar():
        yield from shard_records
        files.write_json(sidecar_path(path), sidecar)

    records.write_shard(path, then_sidecar())
    return sidecar


def _sidecar(unit: Unit) -> dict | None:
    """The sidecar of a unit whose shard and sidecar exist; None otherwise or when the sidecar is damaged."""
    if not os.path.exists(unit.path):
        return None
    try:
        return files.read_json(sidecar_path(unit.path))
    except (FileNotFoundError, ValueError):
        return None


def _tmp_owner(name: str) -> str:
    """The file a temporary file was to become: records.write_shard's `<name>.tmp`, or lawm.files'
    `.<name>.<pid>.tmp`."""
    if name.startswith("."):
        return name[1:].rsplit(".", 2)[0]
    return name.removesuffix(".tmp")


class Plan:
    """The units of one output folder, those already complete and those still to write."""

    def __init__(
        self, folder: str | os.PathLike, units: Sequence[Unit], accept: Callable[[Unit, dict], bool]
    ):
        self.folder, self.units = os.fspath(folder), list(units)
        self.sidecars: list[dict | None] = []
        for unit in self.units:
            sidecar = _sidecar(unit)
            self.sidecars.append(sidecar if sidecar is not None and accept(unit, sidecar) else None)

    @property
    def pending(self) -> list[Unit]:
        return [unit for unit, sidecar in zip(self.units, self.sidecars, strict=True) if sidecar is None]

    @property
    def complete(self) -> list[Unit]:
        return [unit for unit, sidecar in zip(self.units, self.sidecars, strict=True) if sidecar is not None]

    def _remove_stale_files(self, pending: list[Unit]) -> None:
        """Temporary files of killed runs, and the manifest of an output about to change."""
        ours = {os.path.basename(p) for unit in self.units for p in (unit.path, sidecar_path(unit.path))}
        ours.add(MANIFEST)
        for name in os.listdir(self.folder):
            if name.endswith(".tmp") and _tmp_owner(name) in ours:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(self.folder, name))
        if pending:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(self.folder, MANIFEST))

    def run(
        self,
        worker: Callable[..., dict],
        *,
        workers: int = 1,
        on_done: Callable[[Unit, dict], None] | None = None,
    ) -> list[dict]:
        """Write every pending unit with `worker(unit.path, *unit.args)` -> its sidecar; returns all sidecars
        in unit order. `worker` must be a top-level function when `workers` > 1 (spawned processes import
        it). `on_done(unit, sidecar)` runs here, in this process, as each unit finishes."""
        pending = self.pending
        self._remove_stale_files(pending)
        index = {unit.path: i for i, unit in enumerate(self.units)}
        with contextlib.ExitStack() as stack:
            if workers == 1 or len(pending) <= 1:  # in-process: no worker start-up for small jobs
                finished = ((unit, worker(unit.path, *unit.args)) for unit in pending)
            else:
                # spawn, not fork: the parent has threads (grain, jax), and forking those can deadlock;
                # TensorFlow is not fork-safe once imported either.
                pool = stack.enter_context(
                    concurrent.futures.ProcessPoolExecutor(
                        min(workers, len(pending)), mp_context=multiprocessing.get_context("spawn")
                    )
                )
                stack.callback(pool.shutdown, cancel_futures=True)  # on error or ^C: drop the queued units
                futures = {pool.submit(worker, unit.path, *unit.args): unit for unit in pending}
                finished = (
                    (futures[future], future.result()) for future in concurrent.futures.as_completed(futures)
                )
            for unit, sidecar in finished:
                self.sidecars[index[unit.path]] = sidecar
                if on_done is not None:
                    on_done(unit, sidecar)
        return list(self.sidecars)

    def write_manifest(self, manifest: dict) -> str:
        """`manifest.json` in the output folder, replacing any earlier one in one step; returns its path."""
        return os.fspath(files.write_json(os.path.join(self.folder, MANIFEST), manifest))
