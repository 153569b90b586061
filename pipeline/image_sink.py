"""Where stylized images go: a prefix that mirrors the source's structure, or one archive.

Every image is written as its own object the moment it is encoded: under DST itself, or, for
an archive destination, under a work prefix beside it (``OUT.tar.parts/``) that is packed into
the archive once everything is done. Writes are atomic (see ``storage``), so an object that
exists is complete: that is what makes a re-run skip finished images, and why a killed run never
leaves half an image behind. The failures of the latest run are listed in ``_failures.jsonl``.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
import zipfile
from dataclasses import dataclass

from ..core import storage, tempdirs
from ..core.errors import InputError
from .image_source import archive_kind

FAILURES_NAME = "_failures.jsonl"
MANIFEST_NAME = "_framestyle.json"  # which job made the images under DST
PARTS_SUFFIX = ".parts"


@dataclass(frozen=True)
class Destination:
    uri: str  # as given: a prefix/folder, or an archive path
    archive: str | None  # "tar" or "zip" when DST is an archive, else None

    @classmethod
    def parse(cls, uri: str) -> "Destination":
        return cls(uri, archive_kind(uri))

    @property
    def root(self) -> str:
        """Where images are written one by one."""
        return self.uri + PARTS_SUFFIX if self.archive else self.uri

    @property
    def failures_uri(self) -> str:
        if self.archive:
            return self.uri + ".failures.jsonl"
        return storage.join(self.uri, FAILURES_NAME)

    def check(self, overwrite: bool) -> None:
        """Refuse before any work: unwritable targets, or an archive that would be replaced."""
        target = self.uri if self.archive else storage.join(self.uri, FAILURES_NAME)
        storage.storage_for(self.uri).check_writable(target)
        if self.archive and not overwrite and storage.storage_for(self.uri).stat(self.uri):
            raise InputError(f"{self.uri} already exists: pass --overwrite to rebuild it")

    def prepare(self, overwrite: bool) -> dict[str, int]:
        """Clear what a new run must not build on, and return the images it may skip: writes
        a killed run left half-done are removed (S3 has none: an upload is all or nothing);
        with ``overwrite`` an archive's parts go and nothing is skipped."""
        if not storage.is_s3(self.root):
            storage.LocalStorage().delete_partials(self.root)
        if overwrite:
            if self.archive:
                storage.storage_for(self.root).delete_prefix(self.root)
            return {}
        return self.written()

    def written(self) -> dict[str, int]:
        """{key: size} of the images under ``root``."""
        sizes = storage.storage_for(self.root).list_sizes(self.root)
        return {k: s for k, s in sizes.items()
                if s > 0 and k not in (FAILURES_NAME, MANIFEST_NAME)}

    def claim(self, settings: dict, identity: str, overwrite: bool) -> None:
        """Record the job writing here (its ``settings`` for people, ``identity`` the hash of
        everything that decides the pixels) before any work, so a later run knows whose the
        outputs are. Without ``overwrite``, refuse a DST holding another job's outputs, or
        outputs no job recorded, with a one-line error naming the difference."""
        uri = storage.join(self.root, MANIFEST_NAME)
        store = storage.storage_for(uri)
        stored = _json_or_none(store.get_bytes(uri))
        if not overwrite:
            if stored is not None and stored.get("identity") != identity:
                old = stored.get("settings", {})
                changed = [f"{k} {old.get(k)!r} -> {v!r}" for k, v in settings.items()
                           if old.get(k) != v] or ["the model's weights"]
                raise InputError(f"{self.uri} holds the outputs of another job "
                                 f"({'; '.join(changed)}): pass --overwrite to redo them, or "
                                 "choose another DST")
            unrecorded = self.written() if stored is None else {}
            if unrecorded:
                raise InputError(f"{self.uri} holds {len(unrecorded)} files that no "
                                 "framestyle job recorded making: pass --overwrite to replace "
                                 "them, or choose another DST")
        record = {"identity": identity, "settings": settings}
        store.put_bytes(json.dumps(record, indent=2, sort_keys=True).encode(), uri)


def write_image(root: str, key: str, data: bytes) -> None:
    storage.storage_for(root).put_bytes(data, storage.join(root, key))


def write_failures(destination: Destination, failures: list[dict]) -> str | None:
    """Replace the failures report with this run's; remove a stale one when all succeeded."""
    target = destination.failures_uri
    store = storage.storage_for(target)
    if not failures:
        store.delete(target)
        return None
    lines = "".join(json.dumps(f, sort_keys=True) + "\n" for f in sorted(
        failures, key=lambda f: f["source"]))
    store.put_bytes(lines.encode(), target)
    return target


def pack_archive(destination: Destination, progress=None) -> int:
    """Pack the written images into the destination archive (sorted keys, so the same inputs
    give the same archive), upload it atomically, then drop the work prefix. Returns members."""
    root = destination.root
    store = storage.storage_for(root)
    keys = sorted(destination.written())
    with tempdirs.scratch("pack") as tmp:
        local = os.path.join(tmp, storage.basename(destination.uri))
        with _archive_writer(destination, local) as add:
            for key in keys:
                add(key, store.get_bytes(storage.join(root, key)))
                if progress:
                    progress()
        storage.storage_for(destination.uri).upload(local, destination.uri)
    store.delete_prefix(root)
    return len(keys)


class _archive_writer:
    """Context manager yielding add(name, bytes) for a tar, tar.gz or zip file."""

    def __init__(self, destination: Destination, path: str):
        self.kind = destination.archive
        self.gzip = destination.uri.lower().endswith((".gz", ".tgz"))
        self.path = path

    def __enter__(self):
        if self.kind == "zip":
            # Images are compressed already: storing them costs no space and saves the CPU.
            self.archive = zipfile.ZipFile(self.path, "w", compression=zipfile.ZIP_STORED)
            return lambda name, data: self.archive.writestr(name, data)
        self.archive = tarfile.open(self.path, "w:gz" if self.gzip else "w")
        now = time.time()

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), now, 0o644
            self.archive.addfile(info, io.BytesIO(data))
        return add

    def __exit__(self, *exc) -> None:
        self.archive.close()


def _json_or_none(data: bytes | None) -> dict | None:
    if data is None:
        return None
    try:
        value = json.loads(data)
    except ValueError:
        return {}  # damaged: belongs to no job we can name
    return value if isinstance(value, dict) else {}
