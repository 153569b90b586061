"""Storage over local paths and S3 (moto server over HTTP)."""

from __future__ import annotations

import os
import time
from pathlib import Path

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


def test_the_node_cache_keeps_under_its_cap_evicting_the_least_recently_used(
        bucket, tmp_path, monkeypatch):
    from framestyle.core import node_cache

    monkeypatch.setenv("FRAMESTYLE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FRAMESTYLE_CACHE_BYTES", "2500")
    s3 = storage.S3Storage()
    uris = [f"s3://{bucket}/lru/{i}.bin" for i in range(4)]
    for i, uri in enumerate(uris):
        s3.put_bytes(bytes([i]) * 1000, uri)
    objects = tmp_path / "cache" / "objects"
    a, b = storage.fetch(uris[0]), storage.fetch(uris[1])
    time.sleep(0.01)
    assert storage.fetch(uris[0]) == a  # a hit makes it the most recently used
    c = storage.fetch(uris[2])  # 3000 bytes would not fit: b, least recently used, goes
    assert {Path(a), Path(c)} == set(objects.iterdir()) and not Path(b).exists()
    assert open(c, "rb").read() == bytes([2]) * 1000
    assert node_cache.used_bytes(objects) <= 2500
    # a download killed midway leaves its reservation; nobody holds its lock, so it goes
    (objects / "killed.bin.partial").write_bytes(b"\0" * 1000)
    d = storage.fetch(uris[3])
    assert not (objects / "killed.bin.partial").exists() and Path(d).exists()
    assert node_cache.used_bytes(objects) <= 2500
    monkeypatch.setenv("FRAMESTYLE_CACHE_BYTES", "900")
    s3.put_bytes(b"4" * 1000, uris[3])  # a new version: not in the cache
    with pytest.raises(InputError, match="do not fit in the node cache"):
        storage.fetch(uris[3])
    assert node_cache.parse_bytes("20G") == 20 * 2**30 and node_cache.parse_bytes("1.5MiB") == \
        3 * 2**19


def test_media_urls_read_s3_objects_in_place_with_ranges(bucket):
    import urllib.request

    s3 = storage.S3Storage()
    uri = f"s3://{bucket}/media/clip.mp4"
    s3.put_bytes(bytes(range(256)) * 4, uri)
    url = storage.media_url(uri)
    assert url.startswith("http")
    request = urllib.request.Request(url, headers={"Range": "bytes=10-19"})
    with urllib.request.urlopen(request) as response:  # what ffmpeg does when it seeks
        assert response.status == 206 and response.read() == bytes(range(10, 20))


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
