"""The resumable shard writer (data_pipelines/tools/shards.py): what is complete, what is redone, what is
cleaned up, and the manifest."""

import json
import os

import pytest

from data_pipelines import records
from data_pipelines.tools import shards


def write_numbers(path, count):
    """A worker: `count` records and a sidecar counting them."""
    numbers = ({"frames": [b"\xff\xd8\xff"], "fps": 1.0, "meta": {"source_id": str(i)}} for i in range(count))
    return shards.write(path, numbers, {"count": count})


def plan(folder, counts, accept=lambda unit, sidecar: sidecar["count"] == unit.args[0]):
    units = [shards.Unit(str(folder / f"part-{k}{records.SHARD_SUFFIX}"), (n,)) for k, n in enumerate(counts)]
    return shards.Plan(folder, units, accept)


def test_a_run_writes_shards_sidecars_and_a_manifest_and_a_rerun_writes_nothing(tmp_path):
    first = plan(tmp_path, [2, 3])
    assert first.pending == first.units
    done = []
    assert first.run(write_numbers, on_done=lambda unit, sidecar: done.append(unit.args)) == [
        {"count": 2},
        {"count": 3},
    ]
    assert done == [(2,), (3,)]
    first.write_manifest({"shards": first.sidecars})
    names = ["manifest.json", "part-0.array_record", "part-0.json", "part-1.array_record", "part-1.json"]
    assert sorted(os.listdir(tmp_path)) == names
    assert len(records.RecordSource(str(tmp_path))) == 5

    again = plan(tmp_path, [2, 3])
    assert again.pending == [] and again.complete == again.units
    assert again.run(write_numbers) == [{"count": 2}, {"count": 3}]  # from the sidecars: nothing written
    assert json.loads((tmp_path / "manifest.json").read_text()) == {"shards": [{"count": 2}, {"count": 3}]}


def test_leftovers_of_a_killed_run_are_removed_and_its_units_redone(tmp_path):
    plan(tmp_path, [2, 3]).run(write_numbers)
    (tmp_path / "manifest.json").write_text("{}")
    os.remove(tmp_path / "part-0.array_record")  # killed while writing shard 0 ...
    (tmp_path / "part-0.array_record.tmp").write_bytes(b"half a shard")
    (tmp_path / ".part-0.json.123.tmp").write_text("{")  # ... or its sidecar (lawm.files' temporary name)
    (tmp_path / "part-1.json").write_text("{")  # a damaged sidecar: the shard is redone
    (tmp_path / "someone-elses.tmp").write_text("kept")
    again = plan(tmp_path, [2, 3])
    assert again.pending == again.units
    written = []
    again.run(write_numbers, on_done=lambda unit, sidecar: written.append(os.path.basename(unit.path)))
    assert written == ["part-0.array_record", "part-1.array_record"]
    assert sorted(os.listdir(tmp_path)) == [
        "part-0.array_record",
        "part-0.json",
        "part-1.array_record",
        "part-1.json",
        "someone-elses.tmp",
    ]  # and no manifest: it would describe shards that were being rewritten


def test_accept_redoes_or_refuses_a_shard_and_the_output_must_be_a_folder(tmp_path):
    plan(tmp_path, [2]).run(write_numbers)
    assert plan(tmp_path, [4]).pending != []  # another unit under the same name: redone

    def refuse(unit, sidecar):
        raise ValueError(f"{unit.path} is foreign")

    with pytest.raises(ValueError, match="is foreign"):
        plan(tmp_path, [2], refuse)
    shards.make_output(tmp_path / "new" / "folder")
    assert (tmp_path / "new" / "folder").is_dir()
    with pytest.raises(shards.OutputError, match="is a file, not a folder"):
        shards.make_output(tmp_path / "part-0.json")
