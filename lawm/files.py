"""Writing files so that a reader never sees half of one: the one atomic writer of the project.

A file is written next to its destination under a hidden temporary name and then renamed over it, which
replaces an existing file in one step (POSIX rename; object stores write whole objects). A crash leaves the
old file, or none, and at most a stray `.<name>.tmp` that the next write overwrites. Local paths and
`gs://` paths (etils.epath) alike.
"""

from __future__ import annotations

import json
import os

from etils import epath


def write_atomic(path, data: str | bytes) -> epath.Path:
    """Writes `data` to `path` (creating its folder), replacing any file there in one step."""
    path = epath.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data)
    tmp.replace(path)
    return path


def write_json(path, value) -> epath.Path:
    """`value` as indented JSON (numpy scalars and other objects by their str), atomically."""
    return write_atomic(path, json.dumps(value, indent=2, default=str) + "\n")


def read_json(path):
    """The JSON value in `path`; a missing file raises FileNotFoundError, a damaged one ValueError, each
    naming the file."""
    path = epath.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found" if not path.exists() else f"{path} is not a file")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error})") from None
