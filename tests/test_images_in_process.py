"""framestyle images in this process: a small local job skips Ray's start-up and writes what Ray
Data writes, byte for byte, with the same failures and skips."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from image_zoo import bad_and_awkward, encoded, photo, tar_bytes
from PIL import Image

from framestyle.models.hub import resolve
from framestyle.pipeline import image_job
from framestyle.pipeline.image_job import (IN_PROCESS_MAX_BYTES, ImageJob, run_image_job,
                                           runs_in_process)
from framestyle.pipeline.image_source import SourceUnit, resolve_sources
from framestyle.pipeline.stylize import Stylizer

STYLE = "builtin:7"
RECORDS = ("_framestyle.json", "_failures.jsonl")  # the job's own files, not images


def album(folder: Path) -> dict[str, str]:
    """Photos of several sizes, an animated GIF, awkward and broken files; returns the broken
    ones' expected reasons."""
    files, reasons = bad_and_awkward()
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    for i in range(6):
        photo(40 + 8 * i, 30 + 4 * i, 10 + i).save(folder / "ok" / f"p{i}.jpg", quality=90)
    photo(44, 36, 20).save(folder / "ok" / "lossless.png")
    # an archive found in the folder: its members are written under its name
    (folder / "pack.tar").write_bytes(tar_bytes({
        "a.jpg": encoded(photo(36, 28, 30), "JPEG"), "b/c.png": encoded(photo(28, 36, 31), "PNG"),
        "bad.jpg": b"\xff\xd8 nope"}))
    reasons["pack/bad.jpg"] = "not an image"
    frames = [photo(32, 24, seed) for seed in range(4)]
    frames[0].save(folder / "ok" / "anim.gif", save_all=True, append_images=frames[1:],
                   duration=80, loop=0)
    return reasons


def images_in(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and p.name not in RECORDS}


def failures_in(root: Path) -> dict[str, str]:
    lines = (root / "_failures.jsonl").read_text().splitlines()
    return {row["key"]: row["reason"] for row in map(json.loads, lines)}


def test_a_small_job_here_writes_what_ray_data_writes(ray_session, tmp_path):
    source = tmp_path / "in"
    reasons = album(source)
    results = {executor: run_image_job(ImageJob(sources=[str(source)], style=STYLE,
                                                destination=str(tmp_path / executor),
                                                executor=executor), progress=False)
               for executor in ("ray", "process")}
    on_ray, here = results["ray"], results["process"]
    assert (on_ray["executor"], here["executor"]) == ("ray", "process")
    assert (here["ok"], here["failed"], here["skipped"]) == (on_ray["ok"], len(reasons), 0)
    assert here["ok"] == 17
    # the same bytes for every image (one single-threaded replica of the network per thread,
    # as per Ray actor), the same failures with the same reasons
    written = images_in(tmp_path / "process")
    assert written == images_in(tmp_path / "ray") and len(written) == 17
    assert failures_in(tmp_path / "process") == failures_in(tmp_path / "ray")
    for key, fragment in reasons.items():
        assert fragment in failures_in(tmp_path / "process")[key]
    # and they are stylized: a lossless output is what the stylizer makes of its input alone
    before = np.asarray(Image.open(source / "ok" / "lossless.png"))
    expected = Stylizer(resolve(STYLE))([before])[0].astype(int)
    got = np.asarray(Image.open(tmp_path / "process" / "ok" / "lossless.png"))
    assert np.abs(got.astype(int) - expected).max() <= 1
    assert np.abs(before.astype(int) - expected).mean() > 20
    assert Image.open(tmp_path / "process" / "ok" / "anim.gif").n_frames == 4

    # a re-run here skips what is written and redoes only what is missing
    gone = ["ok/p0.jpg", "ok/anim.gif"]
    for key in gone:
        (tmp_path / "process" / key).unlink()
    kept = {p: p.stat().st_mtime_ns for p in (tmp_path / "process").rglob("*.*")
            if p.name not in RECORDS}
    again = run_image_job(ImageJob(sources=[str(source)], style=STYLE, executor="process",
                                   destination=str(tmp_path / "process")), progress=False)
    # (13 plain files, and the archive's 2 members, skipped as it streams)
    assert (again["ok"], again["skipped"], again["failed"]) == (2, 15, len(reasons))
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    assert images_in(tmp_path / "process") == written


def test_auto_runs_only_small_local_jobs_of_files_here(ray_session, monkeypatch, tmp_path):
    """Small is measured in bytes, which the listing gives for nothing: a few large photos are
    as much work as many small ones."""
    third = IN_PROCESS_MAX_BYTES // 3
    files = [SourceUnit(f"/photos/{i}.jpg", "file", f"{i}.jpg", third) for i in range(4)]
    many_small = [SourceUnit(f"/photos/{i}.jpg", "file", f"{i}.jpg", 100_000)
                  for i in range(IN_PROCESS_MAX_BYTES // 100_000)]
    archive = [SourceUnit("/photos/set.tar", "tar", "set/", 1000)]
    # this test process runs the session's Ray: a job here uses it, as a job joining a cluster
    assert not runs_in_process("auto", None, files[:3])
    monkeypatch.setattr(image_job.cluster, "joins_a_cluster", lambda address: bool(address))
    assert runs_in_process("auto", None, files[:3])
    assert runs_in_process("auto", None, many_small)  # over a thousand photos of 100 kB
    assert not runs_in_process("auto", None, files)  # too many bytes
    assert not runs_in_process("auto", None, many_small + files[:1])
    assert not runs_in_process("auto", None, archive)  # its members are unknown until read
    assert not runs_in_process("auto", "ray://head:10001", files[:3])
    assert runs_in_process("process", "ray://head:10001", files)
    assert not runs_in_process("ray", None, files[:3])

    # the sizes come from the listing, whichever way the files are named
    folder = tmp_path / "holiday"
    (folder / "day2").mkdir(parents=True)
    for i, path in enumerate([folder / "a.png", folder / "day2" / "b.png"]):
        photo(64 + 32 * i, 48, i).save(path)
    sizes = {str(p): p.stat().st_size for p in folder.rglob("*.png")}
    assert len(set(sizes.values())) == 2
    for source in (str(folder), str(folder / "**" / "*.png")):
        assert {u.uri: u.size for u in resolve_sources([source])} == sizes
    single = str(folder / "a.png")
    assert [(u.key, u.size) for u in resolve_sources([single])] == [("a.png", sizes[single])]
    # several sources: keys under a folder each, sizes kept
    both = resolve_sources([str(folder), single])
    assert [(u.key, u.size) for u in both] == [
        ("holiday/a.png", sizes[single]),
        ("holiday/day2/b.png", sizes[str(folder / "day2" / "b.png")]), ("a.png", sizes[single])]


def test_the_command_on_a_few_photos_starts_no_ray(tmp_path):
    """As a user runs it: a fresh process, no cluster named. Its Ray temp dir stays empty."""
    source = tmp_path / "in"
    source.mkdir()
    for i in range(3):
        photo(64, 48, i).save(source / f"p{i}.png")
    ray_tmp = tmp_path / "ray"
    done = subprocess.run([sys.executable, "-m", "framestyle.jobs.cli", "images", str(source),
                           str(tmp_path / "out"), "--style", STYLE, "--json"],
                          env={**os.environ, "RAY_ADDRESS": "", "RAY_TMPDIR": str(ray_tmp)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert (result["executor"], result["ok"], result["failed"]) == ("process", 3, 0)
    assert not ray_tmp.exists() or not any(ray_tmp.iterdir())
    stylizer = Stylizer(resolve(STYLE))
    for i in range(3):
        before = np.asarray(Image.open(source / f"p{i}.png"))
        after = np.asarray(Image.open(tmp_path / "out" / f"p{i}.png")).astype(int)
        assert np.abs(after - stylizer([before])[0]).max() <= 1
