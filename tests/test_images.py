"""framestyle images: prefixes and archives in S3 (moto server) on Ray Data, resume, bad inputs."""

from __future__ import annotations

import io
import json
import signal
import tarfile
import zipfile

import numpy as np
import pytest
from conftest import BUCKET
from helpers import kill_cli_when, run_cli
from image_zoo import bad_and_awkward, encoded, photo, tar_bytes
from PIL import Image

from framestyle.core import storage
from framestyle.pipeline.image_job import ImageJob, run_image_job
from framestyle.pipeline.image_source import resolve_sources
from framestyle.models.hub import resolve
from framestyle.pipeline.stylize import Stylizer

STYLE = "builtin:7"
MANIFEST = "_framestyle.json"  # which job made DST's images
SIZES = [(32, 24), (24, 32), (28, 28)]


def put(key: str, data: bytes) -> None:
    storage._s3_client().put_object(Bucket=BUCKET, Key=key, Body=data)


def s3(key: str) -> str:
    return f"s3://{BUCKET}/{key}"


def listing(prefix: str) -> dict[str, dict]:
    pages = storage._s3_client().get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix=prefix)
    return {o["Key"][len(prefix):]: o for p in pages for o in p.get("Contents", [])}


def image_at(uri: str) -> Image.Image:
    return Image.open(io.BytesIO(storage.storage_for(uri).get_bytes(uri)))


@pytest.fixture(scope="module")
def photo_prefix(s3_endpoint):
    """216 small photos over nested prefixes, three sizes, JPEG and PNG."""
    keys = {}
    for i in range(216):
        width, height = SIZES[i % 3]
        fmt, ext = ("PNG", "png") if i % 4 == 0 else ("JPEG", "jpg")
        key = f"{2020 + i % 3}/{'trip' if i % 2 else 'home'}/day{i % 5}/img{i:03d}.{ext}"
        data = encoded(photo(width, height, i), fmt)
        put(f"archive-photos/{key}", data)
        keys[key] = data
    return keys


def test_prefix_of_200_images_keeps_structure(ray_session, photo_prefix, capsys):
    code, out, err = run_cli(capsys, "images", s3("archive-photos/"), s3("archive-styled/"),
                             "--style", STYLE, "--json")
    result = json.loads(out)
    assert code == 0, err
    assert (result["ok"], result["failed"], result["skipped"]) == (216, 0, 0)
    assert result["images_per_second"] > 0 and result["failures"] is None
    written = listing("archive-styled/")
    # same relative keys, and the record of which job made them
    assert set(written) == set(photo_prefix) | {MANIFEST}
    # Every output has its input's size and format, and is really stylized: a PNG output is
    # (losslessly) what the stylizer makes of that input on its own.
    stylizer = Stylizer(resolve(STYLE))
    for key in ("2020/home/day0/img000.png", "2021/trip/day1/img001.jpg"):
        source = Image.open(io.BytesIO(photo_prefix[key]))
        out_img = image_at(s3(f"archive-styled/{key}"))
        assert out_img.size == source.size and out_img.format == source.format
        expected = stylizer([np.asarray(source.convert("RGB"))])[0].astype(int)
        difference = np.abs(np.asarray(out_img.convert("RGB")).astype(int) - expected)
        assert difference.mean() < (1 if key.endswith(".png") else 6)
        assert np.abs(np.asarray(source.convert("RGB")).astype(int) - expected).mean() > 20
    assert "images" in err  # the progress bar


def test_resume_skips_finished_images_and_overwrite_redoes_them(ray_session, photo_prefix,
                                                                 capsys):
    job = ImageJob(sources=[s3("archive-photos/2020/home/")], destination=s3("resume/"),
                   style=STYLE, format="webp", preview=s3("resume-preview.png"))
    first = run_image_job(job, progress=False)
    assert (first["ok"], first["skipped"]) == (36, 0)
    sheet = image_at(first["preview"])  # six before/after rows of thumbnails, labelled
    assert sheet.format == "PNG" and sheet.width >= 2 * 24 and sheet.height >= 6 * 24
    before = listing("resume/")
    assert json.loads(storage.S3Storage().get_bytes(s3(f"resume/{MANIFEST}")))["settings"][
        "format"] == "webp"
    before.pop(MANIFEST)
    assert all(k.endswith(".webp") for k in before) and len(before) == 36
    gone = sorted(before)[:5]
    for key in gone:
        storage._s3_client().delete_object(Bucket=BUCKET, Key=f"resume/{key}")

    second = run_image_job(job, progress=False)
    assert (second["ok"], second["skipped"], second["failed"]) == (5, 31, 0)
    after = listing("resume/")
    assert set(after) == set(before) | {MANIFEST}
    untouched = [k for k in before if k not in gone]
    assert all(after[k]["ETag"] == before[k]["ETag"] and
               after[k]["LastModified"] == before[k]["LastModified"] for k in untouched)

    third = run_image_job(ImageJob(**{**job.__dict__, "overwrite": True}), progress=False)
    assert (third["ok"], third["skipped"]) == (36, 0)


@pytest.mark.faults
@pytest.mark.parametrize("executor", ["ray", "process"])
def test_interrupted_run_stops_at_once_and_finishes_only_what_is_missing(ray_session, tmp_path,
                                                                         executor):
    """Ctrl-C (SIGINT to the process group) a real `framestyle images` mid-run, on its own local
    Ray or in its own process: it stops within seconds with exit 130 and one line; the re-run
    completes the rest."""
    source = tmp_path / "in"
    # in process, with no Ray start-up to wait through, small photos would all be done before
    # the signal lands
    size = (320, 240) if executor == "process" else (48, 40)
    for i in range(60):
        (source / f"d{i % 4}").mkdir(parents=True, exist_ok=True)
        photo(*size, i).save(source / f"d{i % 4}" / f"p{i:02d}.png")
    output = tmp_path / "out"
    code, err, seconds = kill_cli_when(lambda: len(list(output.rglob("*.png"))) >= 5,
                                       "images", source, output, "--style", STYLE, "--json",
                                       "--executor", executor, sig=signal.SIGINT)
    assert code == 130 and seconds < 10, (code, seconds, err[-2000:])
    assert err.strip().splitlines()[-1].startswith("framestyle: interrupted; finished work")
    done = {p.relative_to(output) for p in output.rglob("*.png")}
    assert 5 <= len(done) < 60

    result = run_image_job(ImageJob(sources=[str(source)], destination=str(output),
                                    style=STYLE), progress=False)
    assert result["skipped"] >= len(done) and result["ok"] + result["skipped"] == 60
    # Exactly one output per input: no duplicates, and no half-written file left behind.
    files = sorted(p.relative_to(output) for p in output.rglob("*")
                   if p.is_file() and p.name != MANIFEST)
    assert files == sorted(p.relative_to(source) for p in source.rglob("*.png"))


def test_archives_in_and_out(ray_session, tmp_path, capsys):
    """A tar.gz in S3 and a local zip in; a local zip and an S3 tar out, members kept."""
    members = {f"set/{i // 5}/m{i:02d}.png": encoded(photo(24, 20, 100 + i), "PNG")
               for i in range(12)}
    put("archives/set.tar.gz", tar_bytes(members, gzip=True))
    local_zip = tmp_path / "extra.zip"
    with zipfile.ZipFile(local_zip, "w") as z:
        z.writestr("a/one.jpg", encoded(photo(20, 20, 1), "JPEG"))
        z.writestr("two.png", encoded(photo(20, 24, 2), "PNG"))
    put("archives/extra.zip", local_zip.read_bytes())  # read back through ranged GETs

    out_zip = tmp_path / "styled.zip"
    code, out, err = run_cli(capsys, "images", s3("archives/set.tar.gz"),
                             s3("archives/extra.zip"), str(out_zip), "--style", STYLE, "--json")
    assert code == 0, err
    assert json.loads(out)["ok"] == 14
    with zipfile.ZipFile(out_zip) as z:
        names = sorted(z.namelist())
        assert names == sorted([f"set/{k}" for k in members] + ["extra/a/one.jpg",
                                                                  "extra/two.png"])
        assert Image.open(io.BytesIO(z.read("extra/two.png"))).size == (20, 24)
    assert not (tmp_path / "styled.zip.parts").exists()  # work prefix gone once packed

    code, out, err = run_cli(capsys, "images", str(local_zip), s3("packed/out.tar"),
                             "--style", STYLE, "--format", "png")
    assert code == 0, err
    with tarfile.open(fileobj=io.BytesIO(storage.storage_for(s3("x")).get_bytes(
            s3("packed/out.tar")))) as tar:
        assert sorted(tar.getnames()) == ["a/one.png", "two.png"]
    assert not listing("packed/out.tar.parts/")

    # Rebuilding an existing archive needs --overwrite; nothing is touched without it.
    code, _, err = run_cli(capsys, "images", str(local_zip), str(out_zip), "--style", STYLE)
    assert code == 2 and "--overwrite" in err and len(err.strip().splitlines()) == 1


def test_bad_inputs_are_reported_never_fatal(ray_session, capsys):
    files, reasons = bad_and_awkward()
    for name, data in files.items():
        put(f"zoo/{name}", data)
    tar_members = {"inner/good.png": files["ok/gray.png"], "../escape.png": files["ok/gray.png"],
                   "/abs/escape.png": files["ok/gray.png"], "inner/bad.jpg": b"\xff\xd8 nope"}
    put("zoo/pack.tar", tar_bytes(tar_members, links={"inner/link.png": "/etc/passwd"}))
    reasons.update({"pack/inner/bad.jpg": "not an image", "pack/inner/link.png": "link",
                    "../escape.png": "unsafe", "/abs/escape.png": "unsafe"})

    code, out, err = run_cli(capsys, "images", s3("zoo/"), s3("zoo-out/"), "--style", STYLE,
                             "--json")
    result = json.loads(out)
    assert code == 3, err
    assert (result["ok"], result["failed"]) == (8, len(reasons))
    assert result["failures"] == s3("zoo-out/_failures.jsonl")
    lines = [json.loads(line) for line in storage.storage_for(result["failures"]).get_bytes(
        result["failures"]).decode().splitlines()]
    assert {f["key"]: f["reason"] for f in lines}.keys() == reasons.keys()
    for failure in lines:
        assert reasons[failure["key"]] in failure["reason"]
        assert failure["source"].startswith(s3("zoo/"))

    written = listing("zoo-out/")
    assert set(written) == {"_failures.jsonl", MANIFEST, "pack/inner/good.png",
                            *(k for k in files if k.startswith("ok/"))}
    assert not listing("escape") and not listing("abs/")  # nothing outside the destination
    rotated = image_at(s3("zoo-out/ok/rotated.jpg"))
    assert rotated.size == (16, 32)  # EXIF orientation applied: upright
    assert image_at(s3("zoo-out/ok/alpha.png")).mode == "RGBA"  # transparency kept
    assert 40 < np.asarray(image_at(s3("zoo-out/ok/sixteen.png")).convert("L")).mean() < 215


def test_glob_selects_keys(ray_session, photo_prefix, tmp_path):
    result = run_image_job(ImageJob(sources=[s3("archive-photos/2021/*/day1/*.jpg")],
                                    destination=str(tmp_path / "g"), style=STYLE),
                           progress=False)
    expected = {k[len("2021/"):] for k in photo_prefix
                if k.startswith("2021/") and "/day1/" in k and k.endswith(".jpg")}
    assert result["ok"] == len(expected) > 0
    assert {p.relative_to(tmp_path / "g").as_posix()
            for p in (tmp_path / "g").rglob("*.jpg")} == expected
    # A local glob (quoted on the command line, so it is ours to expand), ** across folders:
    # the same keys, relative to the folder before the first wildcard
    units = resolve_sources([f"{tmp_path}/g/**/*.jpg"])
    assert {u.key for u in units} == expected and {u.kind for u in units} == {"file"}


def test_bad_arguments_are_one_line_errors(ray_session, tmp_path, capsys):
    cases = [
        (["images", str(tmp_path / "nope"), str(tmp_path / "o"), "--style", STYLE],
         "input not found"),
        (["images", s3("no-such-prefix/"), s3("o/"), "--style", STYLE], "no files found"),
        (["images", "s3://no-such-bucket-x/p/", s3("o/"), "--style", STYLE], "bucket"),
        (["images", s3("archive-photos/2020/"), s3("o/"), "--style", "builtin:99"],
         "unknown style"),
    ]
    for argv, message in cases:
        code, out, err = run_cli(capsys, *argv)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not listing("o/")


def test_overwrite_rereads_archive_members_already_written(tmp_path):
    """An archive's members whose outputs exist are skipped as it streams, unless --overwrite
    (the read stage alone, as an actor of the job runs it)."""
    from framestyle.pipeline.image_job import ReadAndDecode
    from framestyle.pipeline.image_source import ArchiveLimits

    archive = tmp_path / "set.tar"
    archive.write_bytes(tar_bytes({f"{n}.png": encoded(photo(20, 16, i), "PNG")
                                   for i, n in enumerate("ab")}))
    (unit,) = resolve_sources([str(archive)])
    out = tmp_path / "out"

    def read(skip_written: bool) -> dict[str, str]:
        reader = ReadAndDecode(str(out), "same", None, 100, ArchiveLimits(), skip_written)
        return {str(k): str(s) for batch in reader({"uri": [unit.uri], "kind": [unit.kind],
                                                     "key": [unit.key]})
                for k, s in zip(batch["key"], batch["status"])}

    first = read(True)
    assert sorted(first.values()) == ["ok", "ok"]
    done = next(k for k in first if k.endswith("a.png"))  # written by an earlier run
    (out / done).parent.mkdir(parents=True, exist_ok=True)
    (out / done).write_bytes(encoded(photo(20, 16, 0), "PNG"))
    assert read(True) == {k: "skipped" if k == done else "ok" for k in first}
    assert read(False) == first  # --overwrite
