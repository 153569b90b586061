"""Many videos as one job: a folder through `framestyle video`, the same job as a spec file, its
manifest and its report (opened in a real browser), and spec validation."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from framestyle.core.errors import InputError
from framestyle.jobs.cli import main
from framestyle.jobs.spec import parse_spec
from framestyle.models.hub import resolve
from framestyle.pipeline.assemble import finished_output
from framestyle.pipeline.probe import probe
from framestyle.pipeline.stylize import Stylizer
from helpers import run_cli
from media import audio_packets, decoded_frames, frame_errors

STYLE = ["--style", "builtin:4", "--temporal", "0", "--chunk-seconds", "1"]


@pytest.fixture(scope="module")
def library(tmp_path_factory, clips) -> Path:
    """A folder as people have them: videos in subfolders, a broken file, a text file."""
    src = tmp_path_factory.mktemp("library") / "in"
    (src / "trips").mkdir(parents=True)
    shutil.copy(clips["bunny"], src / "bunny.mp4")  # 50 frames, 5.1 audio
    shutil.copy(clips["rotated"], src / "trips" / "phone.mov")  # 45 frames, rotated 90, stereo
    shutil.copy(clips["not_video"], src / "broken.mp4")
    (src / "notes.txt").write_text("not a video: not listed")
    return src


@pytest.fixture(scope="module")
def styled(ray_session, library, tmp_path_factory):
    """`framestyle video FOLDER DST --json` once: (DST, exit code, summary)."""
    dst = tmp_path_factory.mktemp("styled") / "out"
    out = io.StringIO()  # a module fixture has no capsys
    with contextlib.redirect_stdout(out):
        code = main(["video", str(library), str(dst), *STYLE, "--json"])
    return dst, code, json.loads(out.getvalue())


def test_a_folder_is_one_job_and_a_bad_file_fails_alone(styled, library):
    dst, code, summary = styled
    assert code == 3  # some failed
    items = {Path(i["input"]).name: i for i in summary["items"]}
    assert set(items) == {"bunny.mp4", "phone.mov", "broken.mp4"}  # notes.txt is not a video
    assert items["broken.mp4"]["status"] == "failed"
    assert "not a readable video" in items["broken.mp4"]["error"]
    assert items["bunny.mp4"]["status"] == items["phone.mov"]["status"] == "done"
    assert (summary["done"], summary["failed"], summary["frames"]) == (2, 1, 95)

    # outputs mirror the folder, as .mp4, and frame i is input frame i stylized
    bunny, phone = dst / "bunny.mp4", dst / "trips" / "phone.mp4"
    assert items["bunny.mp4"]["output"] == str(bunny) and items["phone.mov"]["output"] == str(phone)
    frames = decoded_frames(library / "bunny.mp4")
    errors = frame_errors(decoded_frames(bunny), Stylizer(resolve("builtin:4"))(frames))
    assert errors.max() < 10, errors  # within H.264's loss (its first frames barely move)
    info = probe(str(phone))
    assert (info.frames, info.rotation, len(info.audio)) == (45, 90, 1)
    assert audio_packets(bunny) == audio_packets(library / "bunny.mp4")

    # each output carries its job's identity; the manifest says what happened, item by item
    assert finished_output(str(bunny), items["bunny.mp4"]["job_id"]) == {"frames": 50}
    assert finished_output(str(bunny), "another job") is None
    manifest = json.loads((dst / "_job.json").read_text())
    assert manifest["totals"] | {"seconds": 0} == {"videos": 3, "done": 2, "skipped": 0,
                                                   "failed": 1, "pending": 0, "frames": 95,
                                                   "seconds": 0}
    assert manifest["spec"]["style"] == "builtin:4" and manifest["spec"]["temporal"] == 0
    by_name = {Path(i["input"]).name: i for i in manifest["items"]}
    assert by_name["bunny.mp4"]["frames_out"] == 50 and by_name["bunny.mp4"]["chunks"] == 2
    assert by_name["broken.mp4"]["error"] == items["broken.mp4"]["error"]
    assert not list(dst.rglob(".framestyle"))  # finished videos leave no work behind


def test_running_it_again_as_a_spec_file_redoes_nothing(styled, library, tmp_path, capsys):
    dst, _, first = styled
    outputs = [dst / "bunny.mp4", dst / "trips" / "phone.mp4"]
    stamps = [p.stat().st_mtime_ns for p in outputs]
    spec = tmp_path / "bulk.yaml"
    spec.write_text(f"""\
# the same job as the command line's, written down
kind: video
inputs: {library}
output: {dst}
style: builtin:4
options:
  temporal: 0
  chunk_seconds: 1
""")
    code, out, err = run_cli(capsys, "run", spec, "--json")
    assert code == 3, err  # the broken file still fails, and says so
    (job,) = json.loads(out)["jobs"]
    items = {Path(i["input"]).name: i for i in job["summary"]["items"]}
    assert items["bunny.mp4"]["status"] == items["phone.mov"]["status"] == "skipped"
    assert [p.stat().st_mtime_ns for p in outputs] == stamps  # not rewritten
    # what the first run recorded is kept: frames, preview
    before = {Path(i["input"]).name: i for i in first["items"]}
    assert items["bunny.mp4"]["frames_out"] == 50
    assert items["bunny.mp4"]["preview"] == before["bunny.mp4"]["preview"]


def test_report_opens_in_a_browser_with_every_image(styled):
    from playwright.sync_api import sync_playwright

    dst, _, summary = styled
    for item in summary["items"]:
        if item["status"] == "done":
            assert 0 <= item["preview"]["flicker"] < 0.1
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        problems = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
        page.goto((dst / "_report.html").as_uri())
        page.wait_for_load_state("load")
        images = page.eval_on_selector_all(
            "img", "els => els.map(e => [e.getAttribute('src'), e.complete, e.naturalWidth])")
        text = page.inner_text("body")
        browser.close()
    assert problems == []
    assert len(images) == 4  # stills and an animation per finished video
    assert all(complete and width > 0 for _, complete, width in images), images
    assert "broken.mp4" in text and "not a readable video" in text
    assert "1 failed" in text and "bunny.mp4 (50 frames)" in text


# --- spec files --------------------------------------------------------------------------------

GOOD = """\
jobs:
  - kind: video
    inputs: s3://bucket/clips/
    output: s3://bucket/styled/
    style: builtin:7
    options: {height: 360, temporal: 0.5}
  - kind: images
    inputs: [photos/, 'more/**/*.jpg']
    output: styled-photos/
    style: builtin:3
    options: {format: webp, max_side: 1024}
  - kind: train
    recipe: distill
    inputs: photos/
    name: slim
    options: {teacher: "builtin:7", steps: 20, width: 0.5}
"""


def test_a_spec_of_every_kind_validates_and_has_a_stable_identity(tmp_path):
    spec = parse_spec(GOOD, "bulk.yaml", str(tmp_path))
    assert [j.kind for j in spec.jobs] == ["video", "images", "train"]
    video, images, (settings, options) = (j.job for j in spec.jobs)
    assert video.sources == ["s3://bucket/clips/"] and video.height == 360
    assert images.sources == [f"{tmp_path}/photos/", f"{tmp_path}/more/**/*.jpg"]
    assert settings.steps == 20 and options == {"teacher": "builtin:7", "width": 0.5}
    # the same jobs written another way are the same submission; a changed setting is not
    reordered = GOOD.replace("options: {height: 360, temporal: 0.5}",
                             "options:\n      temporal: 0.5\n      height: 360")
    assert parse_spec(reordered, "x.yaml", str(tmp_path)).submission_id == spec.submission_id
    changed = GOOD.replace("height: 360", "height: 480")
    assert parse_spec(changed, "x.yaml", str(tmp_path)).submission_id != spec.submission_id


@pytest.mark.parametrize("text, message", [
    (GOOD.replace("height: 360", "height: 1"),
     "bulk.yaml:6: jobs[0].options.height: input should be greater than or equal to 2"),
    (GOOD.replace("max_side: 1024", "max_sid: 1024"),
     "bulk.yaml:11: jobs[1].options.max_sid: unknown field"),
    (GOOD.replace("    style: builtin:3\n", "    style: builtin:3\n    colour: red\n"),
     "bulk.yaml:11: jobs[1].colour: unknown field"),
    (GOOD.replace("kind: images", "kind: image"),
     "bulk.yaml:7: jobs[1].kind: must be one of video, images, train"),
    (GOOD.replace("width: 0.5", "widht: 0.5"), "jobs[2].options.widht: unknown field"),
    (GOOD.replace("    style: builtin:7\n", ""), "bulk.yaml:2: jobs[0].style: field required"),
    (GOOD.replace("output: styled-photos/", "output: styled: photos/"),
     "bulk.yaml:9: not valid YAML (mapping values are not allowed here)"),
])
def test_a_bad_spec_names_the_field_and_its_line(text, message, tmp_path):
    with pytest.raises(InputError) as error:
        parse_spec(text, "bulk.yaml", str(tmp_path))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_run_refuses_a_bad_spec_in_one_line_before_any_work(tmp_path, capsys):
    spec = tmp_path / "bad.yaml"
    spec.write_text("kind: video\ninputs: in/\noutput: out/\nstyle: builtin:1\nspeed: 11\n")
    code, out, err = run_cli(capsys, "run", spec)
    assert code == 2 and out == ""
    assert err.strip() == f"framestyle: error: {spec}:5: speed: unknown field (a video job " \
                          "takes inputs, kind, options, output, style)"
    assert not (tmp_path / "out").exists()


def test_many_videos_into_one_file_is_refused_before_any_work(library, tmp_path, capsys):
    out = tmp_path / "all.mp4"
    code, _, err = run_cli(capsys, "video", library / "bunny.mp4", library / "trips", out,
                           "--style", "builtin:1")
    assert code == 2
    assert err.strip() == f"framestyle: error: DST: {out} is a file name: many videos go to a " \
                          "folder or prefix (end it with /)"
    assert not out.exists()
