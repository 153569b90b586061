"""Storage over local paths and S3 (moto server over HTTP)."""

from __future__ import annotations

import os

import pytest

from framestyle.core import storage
from framestyle.core.errors import InputError


def test_local_upload_is_atomic_and_leaves_no_temp_files(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 1000)
    target = tmp_path / "deep" / "dir" / "file.bin"
    storage.LocalStorage().upload(str(src), str(target))
    assert target.read_bytes() == b"x" * 1000
    assert os.listdir(target.parent) == ["file.bin"]


def test_s3_multipart_round_trip_with_metadata(bucket, tmp_path):
    s3 = storage.S3Storage()
    data = os.urandom(17 * 2**20)  # above the 16 MiB multipart threshold
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    uri = f"s3://{bucket}/blobs/big.bin"
    s3.upload(str(src), uri, metadata={"sha256": "abc"})
    info = s3.stat(uri)
    assert info.size == len(data) and info.metadata == {"sha256": "abc"}
    assert "-" in info.version  # a multipart ETag
    back = tmp_path / "back.bin"
    s3.download(uri, str(back))
    assert back.read_bytes() == data
    s3.delete_prefix(f"s3://{bucket}/blobs/")
    assert s3.stat(uri) is None


def test_fetch_caches_s3_objects_by_version(bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("FRAMESTYLE_CACHE", str(tmp_path / "cache"))
    s3 = storage.S3Storage()
    uri = f"s3://{bucket}/cache/clip.mp4"
    s3.put_bytes(b"first", uri)
    first = storage.fetch(uri)
    assert open(first, "rb").read() == b"first" and storage.fetch(uri) == first
    s3.put_bytes(b"second version", uri)
    second = storage.fetch(uri)
    assert second != first and open(second, "rb").read() == b"second version"


def test_local_paths_are_not_copied(tmp_path):
    path = tmp_path / "a.mp4"
    path.write_bytes(b"1")
    assert storage.fetch(str(path)) == str(path)


def test_require_names_what_is_missing(bucket):
    with pytest.raises(InputError, match="input not found: s3://"):
        storage.require(f"s3://{bucket}/missing.mp4")


def test_join_and_parent():
    assert storage.join("s3://b/out/", "x", "y.mp4") == "s3://b/out/x/y.mp4"
    assert storage.parent("s3://b/out/v.mp4") == "s3://b/out"
    assert storage.basename("s3://b/out/v.mp4") == "v.mp4"
