"""Scratch folders for one step of work, named after the process that owns them, so the folders
of a worker that was killed (by Ray's memory monitor, a lost node, SIGKILL) are removed by the
next process on the node that makes one, instead of filling the disk over time."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path

_NAME = re.compile(r"^framestyle-[a-z]+-(\d+)-[A-Za-z0-9_]+$")
_swept = False


def scratch(purpose: str) -> tempfile.TemporaryDirectory:
    """A temporary folder ``framestyle-PURPOSE-PID-XXXX`` in the system temp folder, removed
    when the ``with`` block ends, or by a later run if this process dies first."""
    global _swept
    if not _swept:
        _swept = True
        sweep_stale()
    return tempfile.TemporaryDirectory(prefix=f"framestyle-{purpose}-{os.getpid()}-")


def sweep_stale(root: str | None = None) -> list[str]:
    """Remove scratch folders under ``root`` (the temp folder) whose process is gone."""
    removed = []
    for entry in Path(root or tempfile.gettempdir()).iterdir():
        match = _NAME.match(entry.name)
        if match and entry.is_dir() and not _alive(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(str(entry))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    with contextlib.suppress(OSError):  # a zombie has exited: its folder is orphaned too
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    return True
