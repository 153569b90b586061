"""A lease on a work prefix: one run of a job at a time, and none blocked by a dead one.

The holder writes ``lease.json`` (who, and until when) and renews it on a thread while it runs.
Another run finds it and is refused with ``JobBusyError`` while the lease is live; a lease whose
time ran out (its holder died without releasing, on any machine) or whose holder process is
gone from this very machine is taken over at once. Local leases are created with ``O_EXCL`` and
S3 leases with a conditional put (``If-None-Match``), so two runs starting together cannot both
win; a take-over is checked by reading the lease back.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid

from . import storage
from .errors import JobBusyError

LEASE_FILE = "lease.json"
TTL_ENV = "FRAMESTYLE_LEASE_SECONDS"
DEFAULT_TTL = 120.0


class Lease:
    def __init__(self, prefix: str, ttl: float | None = None):
        self.uri = storage.join(prefix, LEASE_FILE)
        self.ttl = ttl or float(os.environ.get(TTL_ENV, DEFAULT_TTL))
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "Lease":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        current = self._read()
        if current is not None and _live(current):
            raise JobBusyError(
                f"another run of this job is in progress ({current.get('host')} pid "
                f"{current.get('pid')}); it holds {self.uri} for up to "
                f"{max(0, current.get('expires', 0) - time.time()):.0f} s more")
        if not self._write(create=current is None) or self._read_token() != self.token:
            raise JobBusyError(f"another run of this job started at the same moment: {self.uri}")
        self._thread = threading.Thread(target=self._renew, daemon=True, name="framestyle-lease")
        self._thread.start()

    def release(self) -> None:
        """Stop renewing and remove the lease (if it is still ours)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            if self._read_token() == self.token:
                storage.storage_for(self.uri).delete(self.uri)

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            if self._read_token() != self.token:
                return  # taken over after we stalled past the ttl: the other run owns it now
            self._write(create=False)

    def _record(self) -> bytes:
        return json.dumps({"token": self.token, "host": socket.gethostname(), "pid": os.getpid(),
                           "expires": time.time() + self.ttl}).encode()

    def _write(self, create: bool) -> bool:
        """Write our record; with ``create``, only if no lease exists (False if one does)."""
        data = self._record()
        if storage.is_s3(self.uri):
            return storage.storage_for(self.uri).put_bytes(data, self.uri, if_absent=create)
        if not create:
            storage.storage_for(self.uri).put_bytes(data, self.uri)
            return True
        os.makedirs(os.path.dirname(self.uri), exist_ok=True)
        try:
            fd = os.open(self.uri, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return True

    def _read(self) -> dict | None:
        data = storage.storage_for(self.uri).get_bytes(self.uri)
        if data is None:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return {}  # torn or foreign: treated as expired

    def _read_token(self) -> str | None:
        return (self._read() or {}).get("token")


def _live(record: dict) -> bool:
    if record.get("expires", 0) < time.time():
        return False
    if record.get("host") == socket.gethostname():
        try:
            os.kill(int(record.get("pid", 0)), 0)
        except ProcessLookupError:
            return False  # its holder died on this machine: no need to wait out the ttl
        except (PermissionError, ValueError):
            pass
    return True
