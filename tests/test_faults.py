"""Faults injected while real jobs run: S3 outages through a fault proxy, a full disk, a huge
photo, secrets in the environment. A fault costs time, never data (docs/reliability.md)."""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import BUCKET
from fault_proxy import FaultProxy
from image_zoo import encoded, photo
from PIL import Image

from framestyle.core import storage

pytestmark = pytest.mark.faults

STYLE = "builtin:7"
SECRET = "fs-planted-secret-7c1e5b2a9d"  # must appear in no output, log or report
PHOTOS = 40


def _client():
    return storage._s3_client()


def _keys(prefix: str) -> dict[str, int]:
    pages = _client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {o["Key"][len(prefix):]: o["Size"] for p in pages for o in p.get("Contents", [])}


def _outputs(prefix: str) -> list[str]:
    return [k for k in _keys(prefix) if k.endswith(".jpg")]


def _start(argv: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "framestyle.jobs.cli", *argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()[1].decode()[-3000:]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_s3_outages_cost_time_never_data(s3_endpoint, capsys, monkeypatch):
    """Jobs talk to S3 through a proxy that breaks the connection while they run.

    1. An outage longer than the retry budget (2 s here): `framestyle image` stops with exit 5
       (not 2: nothing is wrong with the input) and one line, and writes nothing.
    2. An images job, S3 in and out, rides out ~15 s of connection resets, ~15 s of refusals
       and a burst of 503 SlowDown / 500 errors mid-job (default budget) and finishes: every
       image whole, none missing, no multipart upload left half done.
    Credentials planted in the job's environment appear in no output, report, log or Ray log.
    """
    from helpers import run_cli

    for i in range(PHOTOS):
        _client().put_object(Bucket=BUCKET, Key=f"faults/in/p{i:02d}.jpg",
                             Body=encoded(photo(160, 120, 500 + i), "JPEG"))
    proxy = FaultProxy(int(s3_endpoint.rsplit(":", 1)[1]))
    ray_tmp = tempfile.mkdtemp(prefix="fs-ray-", dir="/tmp")  # short: Ray's socket paths
    try:
        # 1: an outage longer than the budget (in this process: `image` needs no Ray)
        with monkeypatch.context() as patch:
            patch.setenv("AWS_ENDPOINT_URL", proxy.url)
            patch.setenv("FRAMESTYLE_S3_RETRY_SECONDS", "2")
            storage._s3_client.cache_clear()
            proxy.set("refuse")
            try:
                code, out, err = run_cli(capsys, "image", f"s3://{BUCKET}/faults/in/p00.jpg",
                                         f"s3://{BUCKET}/faults/single.jpg", "--style", STYLE)
            finally:
                proxy.set("pass")
        storage._s3_client.cache_clear()  # the session's client, to moto directly, again
        assert (code, out) == (5, "")
        assert err.startswith(f"framestyle: error: S3 unavailable: cannot reach "
                              f"s3://{BUCKET}/faults/single.jpg (") and err.count("\n") == 1
        assert err.endswith(" for 2 s; re-run to resume\n")
        assert "single.jpg" not in _keys("faults/")

        # 2: a job through resets, refusals and 5xx answers, on a machine where a killed
        # `ray start` left its address file behind: the job still starts its own local Ray
        (Path(ray_tmp) / "ray").mkdir()
        (Path(ray_tmp) / "ray" / "ray_current_cluster").write_text("127.0.0.1:9\n")
        env = {**os.environ, "AWS_ENDPOINT_URL": proxy.url, "AWS_SECRET_ACCESS_KEY": SECRET,
               "RAY_ADDRESS": "", "RAY_TMPDIR": ray_tmp}
        env.pop("FRAMESTYLE_S3_RETRY_SECONDS", None)  # the default budget
        job = _start(["images", f"s3://{BUCKET}/faults/in/", f"s3://{BUCKET}/faults/out/",
                      "--style", STYLE, "--json", "--executor", "ray"], env)
        _wait_for(lambda: len(_outputs("faults/out/")) >= 2, job)
        assert len(_outputs("faults/out/")) < PHOTOS  # the faults hit a running job
        for mode, seconds in (("reset", 8), ("refuse", 7)):  # a 15 s outage, two ways
            proxy.set(mode)
            time.sleep(seconds)
            assert job.poll() is None
        proxy.set("error", burst=12)
        out, err = job.communicate(timeout=240)
        assert job.returncode == 0, err.decode()[-3000:]
        assert proxy.counts["reset"] > 0 and proxy.counts["error"] == 12
        summary = json.loads(out)
        assert (summary["ok"], summary["failed"], summary["skipped"]) == (PHOTOS, 0, 0)
        outputs = _outputs("faults/out/")
        assert sorted(outputs) == [f"p{i:02d}.jpg" for i in range(PHOTOS)]
        _assert_whole("faults/out/", outputs)
        assert "_failures.jsonl" not in _keys("faults/out/")
        uploads = _client().list_multipart_uploads(Bucket=BUCKET, Prefix="faults/")
        assert not uploads.get("Uploads")  # none left half done

        # the planted secret: nowhere
        texts = {"stdout/stderr": out + err}
        for key in _keys("faults/out/"):
            texts[key] = _client().get_object(Bucket=BUCKET,
                                              Key=f"faults/out/{key}")["Body"].read()
        texts.update({str(p): p.read_bytes() for p in Path(ray_tmp).rglob("*")
                      if p.is_file() and not p.is_symlink()})
        assert len(texts) > 50  # Ray's logs were found
        leaked = [name for name, data in texts.items() if SECRET.encode() in data]
        assert leaked == []
    finally:
        proxy.close()
        storage._s3_client.cache_clear()
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _assert_whole(prefix: str, keys: list[str]) -> None:
    for key in keys:
        data = _client().get_object(Bucket=BUCKET, Key=prefix + key)["Body"].read()
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # a truncated JPEG raises here
            assert img.size == (160, 120)


def test_a_huge_photo_among_small_ones(ray_session, tmp_path):
    """An 81-megapixel JPEG (under Pillow's bomb limit) beside small photos: over the
    configured limit it is one failure line and the small ones finish; with --max-side it is
    decoded at reduced scale (JPEG draft) and stylized like the rest."""
    from framestyle.pipeline.image_job import ImageJob, run_image_job

    source = tmp_path / "in"
    source.mkdir()
    for i in range(3):
        photo(64, 48, 700 + i).save(source / f"small{i}.jpg")
    coarse = Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 90, 3), np.uint8))
    coarse.resize((9000, 9000), Image.NEAREST).save(source / "huge.jpg", quality=80)

    limited = run_image_job(ImageJob(sources=[str(source)], destination=str(tmp_path / "a"),
                                     style=STYLE, max_megapixels=50), progress=False)
    assert (limited["ok"], limited["failed"]) == (3, 1)
    failures = Path(limited["failures"]).read_text().splitlines()
    assert len(failures) == 1 and "huge.jpg" in failures[0]
    assert "9000x9000 is 81 megapixels, over the 50 MP limit (--max-megapixels)" in failures[0]
    assert sorted(p.name for p in (tmp_path / "a").glob("*.jpg")) == [
        "small0.jpg", "small1.jpg", "small2.jpg"]

    shrunk = run_image_job(ImageJob(sources=[str(source)], destination=str(tmp_path / "b"),
                                    style=STYLE, max_megapixels=50, max_side=1200),
                           progress=False)
    assert (shrunk["ok"], shrunk["failed"]) == (4, 0)
    with Image.open(tmp_path / "b" / "huge.jpg") as out:
        assert out.size == (1200, 1200)


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs: a local disk that fills up mid-job (needs root, as on our machines)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def test_a_full_disk_stops_the_job_in_one_line_and_the_rerun_finishes(ray_session, small_disk,
                                                                      tmp_path, capsys):
    from helpers import run_cli

    source = tmp_path / "in"
    source.mkdir()
    for i in range(20):
        photo(160, 120, 800 + i).save(source / f"p{i:02d}.jpg", quality=95)
    out = small_disk / "out"
    code, stdout, err = run_cli(capsys, "images", source, out, "--style", STYLE)
    assert code == 6 and stdout == ""
    lines = err.strip().splitlines()
    assert lines[-1].startswith(f"framestyle: error: no space left writing {out}/p"), err
    assert lines[-1].endswith("; free some space and re-run to resume")
    assert not [line for line in lines if "Traceback" in line]
    done = sorted(p.name for p in out.glob("*.jpg"))
    assert 0 < len(done) < 20
    assert not list(out.glob(".*.partial"))  # nothing half written left behind
    for name in done:
        Image.open(out / name).load()

    subprocess.run(["mount", "-o", "remount,size=4m", str(small_disk)], check=True)
    code, stdout, err = run_cli(capsys, "images", source, out, "--style", STYLE, "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert (summary["skipped"], summary["ok"]) == (len(done), 20 - len(done))
    assert sorted(p.name for p in out.glob("*.jpg")) == [f"p{i:02d}.jpg" for i in range(20)]


def test_a_file_size_limit_is_a_disk_full_error_naming_the_output(tmp_path, capsys):
    """Where no tmpfs can be mounted, a file-size limit (RLIMIT_FSIZE) fills the disk the same
    way: `framestyle image` says so in one line, exit 6, and leaves no partial file."""
    from helpers import run_cli

    photo(320, 240, 900).save(tmp_path / "in.png")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        code, stdout, err = run_cli(capsys, "image", tmp_path / "in.png", tmp_path / "out.png",
                                    "--style", STYLE)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert code == 6
    assert err.strip() == (f"framestyle: error: no space left writing {tmp_path / 'out.png'} "
                           "(File too large); free some space and re-run to resume")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


def test_scratch_folders_of_dead_processes_are_swept(tmp_path):
    from framestyle.core import tempdirs

    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = tmp_path / f"framestyle-chunk-{gone.pid}-abc123"
    live = tmp_path / f"framestyle-chunk-{os.getpid()}-def456"
    other = tmp_path / "framestyle-cache"
    for folder in (stale, live, other):
        (folder / "sub").mkdir(parents=True)
    assert tempdirs.sweep_stale(str(tmp_path)) == [str(stale)]
    assert not stale.exists() and live.exists() and other.exists()


def test_archive_limits_end_an_archive_with_one_failure_line(tmp_path):
    """Past a limit the rest of an archive is not read: one failure line says which limit;
    the members before it are read."""
    import zipfile

    from framestyle.pipeline.image_source import ArchiveLimits, SourceUnit, read_guarded

    archive = tmp_path / "set.zip"
    members = {f"m{i}.png": encoded(photo(16, 16, 950 + i), "PNG") for i in range(5)}
    with zipfile.ZipFile(archive, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    unit = SourceUnit(str(archive), "zip", "set/")

    def read(**limits):
        items = list(read_guarded(unit, limits=ArchiveLimits(**limits)))
        return [i.key for i in items if i.data], [i.failure for i in items if i.failure]

    assert read() == ([f"set/m{i}.png" for i in range(5)], [])
    assert read(max_members=3) == (["set/m0.png", "set/m1.png", "set/m2.png"], [
        "archive more than 3 members (--max-archive-members); the rest were not read"])
    size = len(members["m0.png"])
    read_two, failures = read(max_gigabytes=(2.5 * size) / 1e9)
    assert read_two == ["set/m0.png", "set/m1.png"] and failures[0].startswith(
        "archive members add up to more than") and "(--max-archive-gb)" in failures[0]
    read_none, failures = read(max_member_megabytes=0.0001)
    assert read_none == [] and len(failures) == 5 and all(
        f.startswith("member too large (0.000") and f.endswith(
            " MB uncompressed, over the 0.0001 MB limit of --max-member-mb)") for f in failures)


def test_ctrl_c_ends_the_command_even_when_a_library_swallows_it():
    """Ray's core worker catches exceptions raised in its callbacks, KeyboardInterrupt included:
    the command still ends within seconds, exit 130, with the interrupted line."""
    # "running" is printed inside the try, so the one SIGINT (sent once it is read) always
    # lands where it is swallowed, never between two statements outside it
    script = (
        "import time\n"
        "from framestyle.jobs import cli\n"
        "def spin():\n"
        "    print('running', flush=True)\n"
        "    while True:\n"
        "        time.sleep(0.05)\n"
        "def swallowing_job(argv=None):\n"
        "    while True:\n"
        "        try:\n"
        "            spin()\n"
        "        except KeyboardInterrupt:\n"
        "            pass  # as a callback's try/except would\n"
        "cli.main = swallowing_job\n"
        "cli.command()\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"running\n"
    sent = time.monotonic()
    proc.send_signal(2)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and time.monotonic() - sent < 6
    assert err.decode().strip() == ("framestyle: interrupted; finished work (chunks, images, "
                                    "checkpoints) is kept, re-run to resume")
