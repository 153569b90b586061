"""Local paths and ``s3://`` URIs behind one small interface.

Writes are atomic: a local file is written beside its target and renamed into place; an S3 object
only becomes visible when its (multipart) upload completes, and a failed upload is aborted, so a
reader never sees a partial object. S3 access goes through boto3 and so honours the standard AWS
environment (``AWS_ENDPOINT_URL``, the credentials chain, ``AWS_REGION``), which covers MinIO and
other S3-compatible stores. Transient S3 errors are retried with exponential backoff by botocore,
and outages longer than that by ``S3Storage._call`` for up to ``retry_seconds()``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from . import node_cache
from .errors import InputError, UnavailableError, disk_full, first_line
from .hashing import identity_hash

S3_SCHEME = "s3://"
PARTIAL_SUFFIX = ".partial"  # a local write in progress (or killed): never a finished file
PRESIGNED_SECONDS = 12 * 3600  # a media URL outlives the longest chunk or assembly
RETRY_ENV, DEFAULT_RETRY_SECONDS = "FRAMESTYLE_S3_RETRY_SECONDS", 300
NOTICE_AFTER_SECONDS = 10
MAX_RETRY_WAIT = 3.0  # seconds between two tries of an operation during an outage
# S3 error codes that mean "not now" rather than "no": throttling and server-side trouble.
TRANSIENT_CODES = ("SlowDown", "Throttling", "ThrottlingException", "RequestTimeout",
                   "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable", "503", "500")


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    version: str  # ETag for S3, mtime_ns for local files: changes whenever the content does
    metadata: dict = field(default_factory=dict)


def is_s3(uri: str) -> bool:
    return str(uri).startswith(S3_SCHEME)


def split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len(S3_SCHEME):].partition("/")
    if not bucket:
        raise InputError(f"not an S3 URI (no bucket): {uri}")
    return bucket, key


def join(base: str, *parts: str) -> str:
    if is_s3(base):
        return "/".join([base.rstrip("/"), *parts])
    return str(Path(base, *parts))


def parent(uri: str) -> str:
    if is_s3(uri):
        return uri.rstrip("/").rsplit("/", 1)[0]
    return str(Path(uri).resolve().parent)


def basename(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


def canonical(uri: str) -> str:
    """One spelling per object: a local path absolute with ``.``, ``..`` and symlinks resolved
    (also for paths that do not exist yet); an S3 URI as given, since S3 keys are literal."""
    return uri if is_s3(uri) else os.path.realpath(uri)


def contains(prefix: str, uri: str) -> bool:
    """Whether ``uri`` is ``prefix`` or lies under it (a folder, or an S3 prefix taken as one),
    however either is spelled; hard links to one file count as the same file."""
    if is_s3(prefix) != is_s3(uri):
        return False
    p, u = canonical(prefix).rstrip("/"), canonical(uri).rstrip("/")
    if u == p or u.startswith(p + "/"):
        return True
    return not is_s3(u) and os.path.isfile(p) and os.path.isfile(u) and os.path.samefile(p, u)


def overlaps(a: str, b: str) -> bool:
    """Whether one of two files or prefixes lies inside (or is) the other."""
    return contains(a, b) or contains(b, a)


class LocalStorage:
    def stat(self, uri: str) -> ObjectInfo | None:
        try:
            st = os.stat(uri)
        except FileNotFoundError:
            return None
        if not os.path.isfile(uri):
            raise InputError(f"not a file: {uri}")
        return ObjectInfo(size=st.st_size, version=str(st.st_mtime_ns))

    def download(self, uri: str, local_path: str) -> None:
        shutil.copyfile(uri, local_path)

    def upload(self, local_path: str, uri: str, metadata: dict | None = None) -> None:
        self._write(uri, lambda tmp: shutil.copyfile(local_path, tmp))

    def put_bytes(self, data: bytes, uri: str) -> None:
        self._write(uri, lambda tmp: Path(tmp).write_bytes(data))

    def _write(self, uri: str, write) -> None:
        """``write(tmp)`` beside the target, then rename into place: readers see the old file
        or the whole new one. A full disk is a one-line ``DiskFullError`` naming the target,
        and leaves nothing behind."""
        target = Path(uri)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}{PARTIAL_SUFFIX}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write(tmp)
            os.replace(tmp, target)
        except OSError as e:
            if full := disk_full(e, str(target)):
                raise full from None
            raise
        finally:
            tmp.unlink(missing_ok=True)

    def get_bytes(self, uri: str) -> bytes | None:
        try:
            return Path(uri).read_bytes()
        except FileNotFoundError:
            return None

    def open_read(self, uri: str):
        return open(uri, "rb")

    def delete(self, uri: str) -> None:
        Path(uri).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(prefix, ignore_errors=True)
        with contextlib.suppress(OSError):  # drop the parent too once nothing else is in it
            Path(prefix).parent.rmdir()

    def list_files(self, prefix: str) -> Iterator[str]:
        """Paths of the files under folder ``prefix``, relative to it, with / separators."""
        yield from self.list_sizes(prefix)

    def list_sizes(self, prefix: str) -> dict[str, int]:
        """{relative path: size} of the (finished) files under folder ``prefix``."""
        root = Path(prefix)
        return {path.relative_to(root).as_posix(): path.stat().st_size
                for path in sorted(root.rglob("*"))
                if path.is_file() and not path.name.endswith(PARTIAL_SUFFIX)}

    def delete_partials(self, prefix: str) -> int:
        """Remove writes left half-done by a killed process under ``prefix``; how many."""
        stale = [p for p in Path(prefix).rglob(f".*{PARTIAL_SUFFIX}") if p.is_file()]
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)

    def check_writable(self, uri: str) -> None:
        folder = Path(uri).resolve().parent
        while not folder.exists():
            folder = folder.parent
        if not os.access(folder, os.W_OK):
            raise InputError(f"cannot write to {folder}")


class S3Storage:
    def __init__(self) -> None:
        self.client = _s3_client()

    def _call(self, what: str, uri: str, fn, *args, **kwargs):
        """Run one S3 operation (``fn``: a boto3 call, or several that must succeed together,
        like a multipart upload or a GET and reading its body), turning the errors users cause
        into one-line ``InputError``s and riding out outages.

        botocore retries each request a few times; an outage longer than that (a restarting
        endpoint, a network blip) is retried here, the whole operation again, with backoff,
        for up to ``retry_seconds()``. A failed multipart upload is aborted by boto3 before
        that, so no partial object is ever visible. Past the budget the job stops with
        ``UnavailableError`` (exit 5): nothing is wrong with the input and a re-run resumes.
        """
        import botocore.exceptions as bce

        budget, started = retry_seconds(), time.monotonic()
        delay, notified = 0.5, False
        while True:
            try:
                return fn(*args, **kwargs)
            except bce.ClientError as e:
                code = e.response.get("Error", {}).get("Code", "")
                if code in ("NoSuchBucket",):
                    raise InputError(f"bucket does not exist: {uri}") from None
                if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                    raise InputError(f"access denied to {uri} ({code})") from None
                if not is_transient(e):
                    raise
                fault = f"{code or 'error'} from the S3 endpoint"
            except bce.NoCredentialsError:
                raise InputError(f"no AWS credentials found to {what} {uri}") from None
            except Exception as e:  # noqa: BLE001 - sorted by is_transient
                if not is_transient(e):
                    raise
                fault = first_line(e)[:200]
            waited = time.monotonic() - started
            if waited >= NOTICE_AFTER_SECONDS and not notified:
                notified = True  # one line, so a waiting job does not look hung
                print(f"framestyle: S3 not answering for {waited:.0f} s ({fault}); retrying "
                      f"for up to {budget:g} s", file=sys.stderr, flush=True)
            if waited >= budget:
                raise UnavailableError(f"S3 unavailable: cannot {what} {uri} ({fault}) for "
                                       f"{budget:g} s; re-run to resume") from None
            time.sleep(min(delay, budget - waited))
            delay = min(delay * 2, MAX_RETRY_WAIT)

    def stat(self, uri: str) -> ObjectInfo | None:
        import botocore.exceptions as bce

        bucket, key = split_s3(uri)
        try:
            head = self._call("read", uri, self.client.head_object, Bucket=bucket, Key=key)
        except bce.ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                # head_object cannot tell a missing key from a missing bucket: ask the bucket.
                self.check_bucket(uri)
                return None
            raise
        return ObjectInfo(size=head["ContentLength"], version=head["ETag"].strip('"'),
                          metadata=head.get("Metadata", {}))

    def check_bucket(self, uri: str) -> None:
        import botocore.exceptions as bce

        bucket, _ = split_s3(uri)
        try:
            self._call("reach", uri, self.client.head_bucket, Bucket=bucket)
        except bce.ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket", "NotFound"):
                raise InputError(f"bucket does not exist: s3://{bucket}") from None
            raise

    check_writable = check_bucket

    def download(self, uri: str, local_path: str) -> None:
        bucket, key = split_s3(uri)
        self._call("read", uri, self.client.download_file, bucket, key, local_path,
                   Config=_transfer_config())

    def upload(self, local_path: str, uri: str, metadata: dict | None = None) -> None:
        bucket, key = split_s3(uri)
        extra = {"Metadata": metadata} if metadata else None
        self._call("write", uri, self.client.upload_file, local_path, bucket, key,
                   ExtraArgs=extra, Config=_transfer_config())

    def put_bytes(self, data: bytes, uri: str, if_absent: bool = False) -> bool:
        """Write ``data``; with ``if_absent`` only if no object exists (a conditional put):
        False when one did."""
        import botocore.exceptions as bce

        bucket, key = split_s3(uri)
        condition = {"IfNoneMatch": "*"} if if_absent else {}
        try:
            self._call("write", uri, self.client.put_object, Bucket=bucket, Key=key, Body=data,
                       **condition)
        except bce.ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("PreconditionFailed",
                                                           "ConditionalRequestConflict"):
                return False
            raise
        return True

    def get_bytes(self, uri: str) -> bytes | None:
        bucket, key = split_s3(uri)
        try:
            return self._call("read", uri, lambda: self.client.get_object(
                Bucket=bucket, Key=key)["Body"].read())
        except self.client.exceptions.NoSuchKey:
            return None

    def open_read(self, uri: str):
        """A file-like stream of the object's bytes (one GET, read front to back)."""
        bucket, key = split_s3(uri)
        return self._call("read", uri, self.client.get_object, Bucket=bucket, Key=key)["Body"]

    def delete(self, uri: str) -> None:
        bucket, key = split_s3(uri)
        self._call("delete", uri, self.client.delete_object, Bucket=bucket, Key=key)

    def get_range(self, uri: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` inclusive of the object."""
        bucket, key = split_s3(uri)
        return self._call("read", uri, lambda: self.client.get_object(
            Bucket=bucket, Key=key, Range=f"bytes={start}-{end}")["Body"].read())

    def list_files(self, prefix: str) -> Iterator[str]:
        """Keys under ``prefix``, relative to it."""
        yield from self.list_sizes(prefix)

    def list_sizes(self, prefix: str) -> dict[str, int]:
        """{key relative to ``prefix``: size} of the objects under ``prefix``."""
        bucket, key = split_s3(prefix.rstrip("/") + "/")
        paginator = self.client.get_paginator("list_objects_v2")
        pages = self._call("list", prefix, lambda: list(paginator.paginate(Bucket=bucket,
                                                                            Prefix=key)))
        return {obj["Key"][len(key):]: obj["Size"]
                for page in pages for obj in page.get("Contents", [])}

    def delete_prefix(self, prefix: str) -> None:
        bucket, key = split_s3(prefix.rstrip("/") + "/")
        paginator = self.client.get_paginator("list_objects_v2")
        pages = self._call("list", prefix, lambda: list(paginator.paginate(Bucket=bucket,
                                                                            Prefix=key)))
        for page in pages:
            objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if objects:
                self._call("delete", prefix, self.client.delete_objects, Bucket=bucket,
                           Delete={"Objects": objects})


def retry_seconds() -> float:
    """How long an S3 operation keeps retrying through an outage (``FRAMESTYLE_S3_RETRY_SECONDS``,
    default 300 s): long enough for a restarting endpoint, short enough that a job whose store
    is gone says so."""
    return float(os.environ.get(RETRY_ENV) or DEFAULT_RETRY_SECONDS)


def is_transient(error: BaseException) -> bool:
    """Whether an S3 failure may go away by itself: the endpoint unreachable, a connection
    reset or timed out, a 5xx, throttling. botocore's own retries have run already."""
    import botocore.exceptions as bce
    from boto3.exceptions import S3UploadFailedError

    if isinstance(error, bce.ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        code = error.response.get("Error", {}).get("Code", "")
        return status >= 500 or code in TRANSIENT_CODES
    if isinstance(error, S3UploadFailedError):  # wraps the part upload's error as text only
        return any(code in str(error) for code in TRANSIENT_CODES) or any(
            text in str(error) for text in ("Connection", "connect", "timed out", "reset"))
    return isinstance(error, (bce.EndpointConnectionError, bce.ConnectionError,
                              bce.HTTPClientError, bce.ResponseStreamingError,
                              bce.IncompleteReadError, ConnectionError, TimeoutError))


@lru_cache(maxsize=1)
def _s3_client():
    import boto3
    from botocore.config import Config

    # "standard" retry mode: exponential backoff with jitter on throttling and transient errors.
    # Few attempts here: a longer outage is ridden out by S3Storage._call, whose waits are
    # capped at a few seconds, so a job notices soon that the endpoint is back.
    config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5,
                    read_timeout=60)
    return boto3.session.Session().client("s3", config=config)


def _transfer_config():
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=16 * 2**20, multipart_chunksize=16 * 2**20,
                          max_concurrency=4)


def storage_for(uri: str) -> LocalStorage | S3Storage:
    return S3Storage() if is_s3(uri) else LocalStorage()


def require(uri: str) -> ObjectInfo:
    """Stat an input that must exist, with a one-line error when it does not."""
    info = storage_for(uri).stat(uri)
    if info is None:
        raise InputError(f"input not found: {uri}")
    return info


def fetch(uri: str, info: ObjectInfo | None = None) -> str:
    """A local path holding ``uri``'s content: the path itself, or a download in the node's
    cache (``node_cache``: shared by the node's processes, size-capped, least recently used
    files evicted). The cache key includes the object's version (ETag), so a changed object is
    fetched anew."""
    if not is_s3(uri):
        return uri
    info = info or require(uri)
    name = identity_hash({"uri": uri, "version": info.version}, 24) + Path(basename(uri)).suffix
    return node_cache.cached(name, info.size, lambda path: storage_for(uri).download(uri, path))


def media_url(uri: str) -> str:
    """Where ffmpeg and PyAV read a video from in place: a local path as it is, an S3 object
    through a presigned HTTP(S) URL. They seek with range requests, so a chunk reads only the
    part of the file it decodes and nothing is copied to the node's disk."""
    if not is_s3(uri):
        return uri
    bucket, key = split_s3(uri)
    s3 = S3Storage()
    return s3._call("read", uri, s3.client.generate_presigned_url, "get_object",
                         Params={"Bucket": bucket, "Key": key}, ExpiresIn=PRESIGNED_SECONDS)
