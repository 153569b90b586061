"""Where images come from: prefixes, folders, globs and archives, local or in object storage.

``resolve_sources`` turns the user's SRC arguments into ``SourceUnit``s on the driver: one per
plain file and one per archive. ``read_unit`` then streams a unit's images as (key, bytes) pairs
inside a Ray Data read task: a tar (plain or gzipped) is read front to back from one GET stream,
a zip through ranged GETs to its central directory and members, so an archive is never unpacked
to disk or held in memory whole. Member names are untrusted: absolute paths, ``../`` and links
are reported and never become output keys.
"""

from __future__ import annotations

import glob
import io
import os
import re
import stat
import tarfile
import unicodedata
import zipfile
import zlib
from dataclasses import asdict, dataclass, replace

from pydantic import PositiveFloat, PositiveInt
from typing import Callable, Iterator

from ..core import storage
from ..core.errors import FramestyleError, InputError, UnavailableError, first_line
from ..core.spec import Spec

ARCHIVE_SUFFIXES = {".tar": "tar", ".tar.gz": "tar", ".tgz": "tar", ".zip": "zip"}


class ArchiveLimits(Spec):
    """What one archive may hold, so a zip bomb or a runaway tarball cannot fill a shared
    cluster's memory or keep a job reading for ever. Past a limit the rest of the archive is
    not read and one failure line says why; its earlier members are done."""

    max_members: PositiveInt = 100_000  # files in one archive
    max_gigabytes: PositiveFloat = 20  # their uncompressed sizes added up, in GB (10^9 bytes)
    max_member_megabytes: PositiveFloat = 256  # one member, uncompressed, in MB (10^6 bytes)

    def exceeded(self, members: int, total_bytes: int) -> str:
        """Why reading must stop after ``members`` members of ``total_bytes``, or ""."""
        if members > self.max_members:
            return (f"more than {self.max_members} members (--max-archive-members); the rest "
                    "were not read")
        if total_bytes > self.max_gigabytes * 1e9:
            return (f"members add up to more than {self.max_gigabytes:g} GB uncompressed "
                    "(--max-archive-gb); the rest were not read")
        return ""

GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class SourceUnit:
    """One plain file (``kind`` "file") or one archive ("tar" / "zip") to read."""

    uri: str
    kind: str
    key: str  # output key of a file; key prefix ("" or "name/") of an archive's members
    size: int = 0  # bytes of the file or archive as listed (0: not known)

    def to_row(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SourceItem:
    """One image as read: its output key (before any format change), bytes or a failure."""

    key: str
    source: str  # what users see in reports: the URI, or ARCHIVE!member
    data: bytes = b""
    failure: str = ""  # why it cannot be processed, if it cannot
    skipped: bool = False  # already stylized by an earlier run


def archive_kind(name: str) -> str | None:
    lower = name.lower()
    for suffix, kind in ARCHIVE_SUFFIXES.items():
        if lower.endswith(suffix):
            return kind
    return None


def archive_stem(name: str) -> str:
    lower = name.lower()
    for suffix in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return name[:-len(suffix)]
    return name


def safe_key(name: str) -> str | None:
    """``name`` as a relative output key, or None if it could escape the destination: absolute,
    a drive, ``..``, Windows separators, control characters, or Unicode look-alikes that
    become any of those once normalised (NFKC: "\uff0e\uff0e" is "..") by a tool downstream."""
    if not name or any(ord(c) < 32 for c in name):
        return None
    for form in (name, unicodedata.normalize("NFKC", name)):
        form = form.replace("\\", "/")
        if form.startswith("/") or re.match(r"^[A-Za-z]:", form):
            return None
        if ".." in form.split("/"):
            return None
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    return "/".join(parts) if parts else None


def resolve_sources(sources: list[str]) -> list[SourceUnit]:
    """SourceUnits for the SRC arguments. With several SRCs, each prefix, glob or archive puts
    its outputs under a folder named after it, so two sources cannot write to the same key
    (a plain file keeps its own name)."""
    units: list[SourceUnit] = []
    for src in sources:
        found = _resolve_one(src)
        if not found:
            raise InputError(f"no files found at {src}")
        plain_file = [(u.uri, u.kind, u.key) for u in found] == \
            [(src, "file", storage.basename(src))]
        if len(sources) > 1 and not plain_file:
            name = archive_stem(storage.basename(GLOB_CHARS.split(src)[0]) or "source")
            found = [replace(u, key=f"{name}/{u.key}") for u in found]
        units.extend(found)
    return units


def source_overlaps(src: str, destination: str) -> bool:
    """Whether outputs written under ``destination`` could overwrite what SRC reads, or be read
    by SRC on a re-run: the same object, either inside the other, or inside a recursive glob."""
    if not GLOB_CHARS.search(src):
        return storage.overlaps(src, destination)
    root = _glob_root(src)
    return storage.contains(destination, root) or ("**" in src
                                                   and storage.contains(root, destination))


def _glob_root(pattern: str) -> str:
    """The folder before a glob's first wildcard; its keys are relative to it."""
    head = pattern[:GLOB_CHARS.search(pattern).start()]
    return head.rsplit("/", 1)[0] if "/" in head else "."


def _resolve_one(src: str) -> list[SourceUnit]:
    if GLOB_CHARS.search(src):
        return _resolve_glob(src)
    if storage.is_s3(src):
        info = None if src.endswith("/") else storage.storage_for(src).stat(src)
        if info is not None:
            return [_single(src, info.size)]
        return _resolve_prefix(src)
    if os.path.isdir(src):
        return _resolve_prefix(src)
    if os.path.isfile(src):
        return [_single(src, os.path.getsize(src))]
    raise InputError(f"input not found: {src}")


def _single(uri: str, size: int) -> SourceUnit:
    kind = archive_kind(uri)
    return SourceUnit(uri, kind or "file", "" if kind else storage.basename(uri), size)


def _resolve_prefix(prefix: str) -> list[SourceUnit]:
    return _found(prefix, storage.storage_for(prefix).list_sizes(prefix))


def _resolve_glob(pattern: str) -> list[SourceUnit]:
    """Glob over keys or paths; keys are relative to the folder before the first wildcard."""
    root = _glob_root(pattern)
    if storage.is_s3(pattern):
        matcher = glob_regex(pattern)
        sizes = {rel: size for rel, size in storage.storage_for(root).list_sizes(root).items()
                 if matcher.fullmatch(storage.join(root, rel))}
    else:
        sizes = {os.path.relpath(p, root): os.path.getsize(p)
                 for p in glob.glob(pattern, recursive=True) if os.path.isfile(p)}
    return _found(root, dict(sorted(sizes.items())))


def glob_regex(pattern: str) -> re.Pattern:
    """Shell glob semantics for keys, as ``glob.glob(recursive=True)`` has for paths: ``*`` and
    ``?`` stay within one path segment, ``**/`` spans any number of folders (none included),
    ``[...]`` is a character class."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2:]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def _found(root: str, sizes: dict[str, int]) -> list[SourceUnit]:
    """Units for the files found under ``root`` ({path relative to it: bytes}); an archive there
    expands into a folder named after it."""
    units = []
    for rel, size in sizes.items():
        uri, kind = storage.join(root, rel), archive_kind(rel)
        units.append(SourceUnit(uri, kind, archive_stem(rel) + "/", size) if kind
                     else SourceUnit(uri, "file", rel, size))
    return units


def read_unit(unit: SourceUnit, is_done: Callable[[str], bool],
              limits: ArchiveLimits = ArchiveLimits()) -> Iterator[SourceItem]:
    """The images of ``unit``. Archive members whose key ``is_done`` (stylized by an earlier
    run) come back marked skipped, unread; plain files are filtered on the driver already."""
    if unit.kind == "file":
        data = storage.storage_for(unit.uri).get_bytes(unit.uri)
        if data is None:
            yield SourceItem(unit.key, unit.uri, failure="disappeared before it was read")
        else:
            yield SourceItem(unit.key, unit.uri, data)
        return
    members = _tar_members if unit.kind == "tar" else _zip_members
    count = total = 0
    try:
        for name, size, read, failure in members(unit.uri, int(limits.max_member_megabytes * 1e6)):
            count, total = count + 1, total + size
            if stop := limits.exceeded(count, total):
                yield SourceItem(unit.key or storage.basename(unit.uri), unit.uri,
                                 failure=f"archive {stop}")
                return
            source = f"{unit.uri}!{name}"
            key = safe_key(name)
            if key is None:
                yield SourceItem(name, source, failure="unsafe member path (absolute or ../): "
                                                       "not extracted")
                continue
            key = unit.key + key
            if failure:
                yield SourceItem(key, source, failure=failure)
            elif is_done(key):
                yield SourceItem(key, source, skipped=True)
            else:
                try:
                    yield SourceItem(key, source, read())
                except (OSError, EOFError, zlib.error, RuntimeError, zipfile.BadZipFile) as e:
                    yield SourceItem(key, source, failure=f"cannot read member ({e})")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as e:
        yield SourceItem(unit.key or storage.basename(unit.uri), unit.uri,
                         failure=f"corrupt or truncated archive ({e}); members after this "
                                 "point were not read")


def read_guarded(unit: SourceUnit, is_done: Callable[[str], bool] = lambda key: False,
                 limits: ArchiveLimits = ArchiveLimits()) -> Iterator[SourceItem]:
    """``read_unit``, ending in one failure if the source cannot be read on (vanished, access
    denied, connection lost): the items read before it and the rest of the job go on."""
    try:
        yield from read_unit(unit, is_done, limits)
    except FramestyleError:
        raise  # the store is down or a disk is full: the job's fault, not this source's
    except Exception as e:  # noqa: BLE001 - any other error here is this source's
        if storage.is_transient(e):  # e.g. a connection reset while streaming an archive
            raise UnavailableError(f"S3 unavailable: lost {unit.uri} while reading it "
                                   f"({first_line(e)}); re-run to resume") from None
        yield SourceItem(unit.key, unit.uri, failure=f"cannot read ({first_line(e)})")


def _tar_members(uri: str, max_bytes: int):
    """(name, size, read(), failure) for each regular member, streaming through one read of
    ``uri``; a member over ``max_bytes`` is refused, not read into memory."""
    with _open_stream(uri) as stream, tarfile.open(fileobj=stream, mode="r|*") as tar:
        for member in tar:
            if member.isdir():
                continue
            if not member.isreg():
                yield member.name, 0, None, "link or special file: not extracted"
            elif member.size > max_bytes:
                yield member.name, 0, None, _too_large(member.size, max_bytes)
            else:
                yield member.name, member.size, (lambda m=member: tar.extractfile(m).read()), ""


def _zip_members(uri: str, max_bytes: int):
    with _open_seekable(uri) as raw, zipfile.ZipFile(raw) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                yield info.filename, 0, None, "link: not extracted"
            elif info.file_size > max_bytes:
                yield info.filename, 0, None, _too_large(info.file_size, max_bytes)
            else:
                yield (info.filename, info.file_size,
                       (lambda i=info: _read_zip_member(archive, i)), "")


def _too_large(size: int, max_bytes: int) -> str:
    return (f"member too large ({size / 1e6:,.3g} MB uncompressed, over the "
            f"{max_bytes / 1e6:g} MB limit of --max-member-mb)")


def _read_zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    # Read at most the declared size (+1 to notice a lie): a zip bomb stops here.
    with archive.open(info) as f:
        data = f.read(info.file_size + 1)
    if len(data) > info.file_size:
        raise OSError("member larger than its declared size")
    return data


def _open_stream(uri: str):
    stream = storage.storage_for(uri).open_read(uri)
    if storage.is_s3(uri):
        return io.BufferedReader(_StreamingBodyRaw(stream), buffer_size=1 << 20)
    return stream


def _open_seekable(uri: str):
    if storage.is_s3(uri):
        return io.BufferedReader(S3RangeFile(uri), buffer_size=1 << 20)
    return open(uri, "rb")


class _StreamingBodyRaw(io.RawIOBase):
    """botocore's StreamingBody as a raw stream (tarfile and BufferedReader want readinto)."""

    def __init__(self, body):
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._body.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._body.close()
        super().close()


class S3RangeFile(io.RawIOBase):
    """A read-only, seekable view of an S3 object through ranged GETs (for zip's random
    access: central directory at the end, members anywhere)."""

    def __init__(self, uri: str):
        self._s3 = storage.storage_for(uri)
        self._uri = uri
        self._size = storage.require(uri).size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        if self._pos >= self._size or not len(buffer):
            return 0
        end = min(self._size, self._pos + len(buffer)) - 1
        data = self._s3.get_range(self._uri, self._pos, end)
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)
