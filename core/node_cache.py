"""The node's cache of downloaded objects: a size cap and least-recently-used eviction.

Whatever a node must hold as a local file (a checkpoint from S3, a photo read whole) is kept
under ``$FRAMESTYLE_CACHE/objects`` so the processes of one node share one download. The files
there never add up to more than ``$FRAMESTYLE_CACHE_BYTES`` (default: 10 GiB, or half the disk's
free space when that is less): before a download, the least recently used files go until the new
one fits. Sizes are reserved before the bytes arrive (the partial file is created at full size),
so downloads running side by side cannot overshoot the cap together. Video inputs do not come
through here at all: ffmpeg reads them in place over HTTP range requests (``storage.media_url``).

Eviction unlinks files: a process that already opened one keeps reading it, as POSIX promises.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from .errors import InputError, disk_full

ROOT_ENV = "FRAMESTYLE_CACHE"
LIMIT_ENV = "FRAMESTYLE_CACHE_BYTES"
DEFAULT_LIMIT = 10 * 2**30
PARTIAL = ".partial"


def cache_root() -> Path:
    path = Path(os.environ.get(ROOT_ENV) or Path(tempfile.gettempdir(), "framestyle-cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_limit(root: Path) -> int:
    """The cap in bytes: ``$FRAMESTYLE_CACHE_BYTES`` (suffixes K, M, G allowed), else the
    default, never more than half of what the disk has free besides the cache itself."""
    value = os.environ.get(LIMIT_ENV, "").strip()
    if value:
        return parse_bytes(value)
    free = shutil.disk_usage(root).free + used_bytes(root / "objects")
    return min(DEFAULT_LIMIT, free // 2)


def parse_bytes(text: str) -> int:
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    text = text.upper().removesuffix("B").removesuffix("I")
    try:
        if text and text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(text)
    except ValueError:
        raise InputError(f"{LIMIT_ENV}: not a size: {text!r} (try 20G)") from None


def used_bytes(folder: Path) -> int:
    """What the cached files (and the reservations of downloads under way) take."""
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def cached(name: str, size: int, fill: Callable[[str], None]) -> str:
    """The path of cached file ``name`` (``size`` bytes), calling ``fill(path)`` to download it
    when it is not there; marks it most recently used."""
    root = cache_root()
    folder, locks, target, partial = _places(root, "objects", name)
    with _locked(locks / name):  # one download of an object at a time; the others wait for it
        with _locked(root / "cache.lock"):  # one process at a time arranges the cache
            if target.exists() and target.stat().st_size == size:
                os.utime(target)  # most recently used
                return str(target)
            limit = cache_limit(root)
            if size > limit:
                raise InputError(f"{name}: {size} bytes do not fit in the node cache "
                                 f"({LIMIT_ENV}={limit}); raise it")
            _evict(folder, limit - size, keep=target, locks=locks)
            with open(partial, "wb") as f:
                f.truncate(size)  # the reservation: counted from now on
        _fill(fill, partial, target)
    return str(target)


def built(name: str, build: Callable[[str], None]) -> str:
    """The path of file ``name`` that this node makes itself (a model exported for another
    runtime), calling ``build(path)`` once when it is not there yet: processes asking together
    wait for the one building it. Kept under ``$FRAMESTYLE_CACHE/built``, outside the download
    cap (such files are few and small, and made again in seconds if removed)."""
    _, locks, target, partial = _places(cache_root(), "built", name)
    with _locked(locks / f"built-{name}"):
        if not target.exists():
            _fill(build, partial, target)
    return str(target)


def existing(name: str) -> str | None:
    """The path of file ``name`` that ``built`` made on this node, if it is there (whole: a
    file is moved into place only once written); else None, and nothing is made."""
    target = cache_root() / "built" / name
    return str(target) if target.is_file() else None


def _places(root: Path, kind: str, name: str) -> tuple[Path, Path, Path, Path]:
    """(folder, locks folder, file, its partial) for file ``name`` of ``kind``, folders made."""
    folder, locks = root / kind, root / "locks"
    folder.mkdir(exist_ok=True)
    locks.mkdir(exist_ok=True)
    target = folder / name
    return folder, locks, target, target.with_name(target.name + PARTIAL)


def _fill(fill: Callable[[str], None], partial: Path, target: Path) -> None:
    """``fill(partial)``, then the file moved into place whole; a full disk is our one-line
    error naming the file, and nothing partial is left."""
    try:
        fill(str(partial))
        os.replace(partial, target)
    except OSError as e:
        if full := disk_full(e, f"{partial} (the node cache: ${ROOT_ENV})"):
            raise full from None
        raise
    finally:
        partial.unlink(missing_ok=True)


def _evict(folder: Path, room: int, keep: Path, locks: Path) -> None:
    """Remove the least recently used finished files until the rest fit in ``room`` bytes.
    A reservation whose download is no longer under way (its process was killed: nobody holds
    its lock) goes first."""
    for partial in folder.glob(f"*{PARTIAL}"):
        with _try_locked(locks / partial.name.removesuffix(PARTIAL)) as free:
            if free:
                partial.unlink(missing_ok=True)
    files = [p for p in folder.iterdir() if p.is_file()]
    used = sum(p.stat().st_size for p in files)
    done = sorted((p for p in files if not p.name.endswith(PARTIAL) and p != keep),
                  key=lambda p: p.stat().st_mtime_ns)
    for path in done:
        if used <= room:
            return
        used -= path.stat().st_size
        path.unlink(missing_ok=True)
    if used > room:
        raise InputError(f"the node cache is full of downloads under way ({used} bytes); "
                         f"raise {LIMIT_ENV}")


@contextlib.contextmanager
def _try_locked(path: Path) -> Iterator[bool]:
    """Hold ``path``'s lock if nobody does: whether it was free."""
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
