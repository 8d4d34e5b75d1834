"""Log filtering shared by the command-line tools."""

from __future__ import annotations

import logging as python_logging
import os


def quiet_dependencies(record) -> bool:
    """Keeps our logs, clu's metric lines and every warning; drops the INFO chatter of orbax, jax, etc."""
    path = record.pathname.replace(os.sep, "/")
    ours = any(f"/{package}/" in path for package in ("lawm", "data_pipelines", "experiments", "clu"))
    return record.levelno >= python_logging.WARNING or ours or "site-packages/" not in path
