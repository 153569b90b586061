"""Bad input: one-line error naming the problem, exit code 2, and no output object."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from framestyle.jobs.cli import main
from framestyle.core import storage
from helpers import run_cli


def assert_clean_failure(code, out, err, expected, exit_code=2):
    assert code == exit_code
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("framestyle: error: ") and expected in lines[0]


@pytest.mark.parametrize("clip,expected", [
    ("not_video", "not a readable video"),
    ("truncated", "not a readable video"),
    ("truncated_faststart", "truncated video"),
])
def test_bad_local_files(clips, tmp_path, capsys, clip, expected):
    output = tmp_path / "out.mp4"
    code, out, err = run_cli(capsys, "video", clips[clip], output, "--style", "builtin:1")
    assert_clean_failure(code, out, err, expected)
    assert list(tmp_path.iterdir()) == []


def test_missing_file(tmp_path, capsys):
    code, out, err = run_cli(capsys, "video", tmp_path / "nope.mp4", tmp_path / "out.mp4",
                             "--style", "builtin:1")
    assert_clean_failure(code, out, err, "input not found")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("style", ["monet", "builtin:26", "builtin:4=abc"])
def test_unknown_style(clips, tmp_path, capsys, style):
    code, out, err = run_cli(capsys, "video", clips["bunny"], tmp_path / "out.mp4",
                             "--style", style)
    assert_clean_failure(code, out, err, "style")
    assert list(tmp_path.iterdir()) == []


def test_missing_s3_object(bucket, tmp_path, capsys):
    code, out, err = run_cli(capsys, "video", f"s3://{bucket}/in/absent.mp4",
                             tmp_path / "out.mp4", "--style", "builtin:1")
    assert_clean_failure(code, out, err, "input not found")


def test_input_bucket_that_does_not_exist(s3_endpoint, tmp_path, capsys):
    code, out, err = run_cli(capsys, "video", "s3://no-such-bucket-here/in.mp4",
                             tmp_path / "out.mp4", "--style", "builtin:1")
    assert_clean_failure(code, out, err, "bucket does not exist")
    assert list(tmp_path.iterdir()) == []


def test_output_bucket_that_does_not_exist(s3_endpoint, clips, capsys):
    code, out, err = run_cli(capsys, "video", clips["bunny"], "s3://no-such-bucket-here/out.mp4",
                             "--style", "builtin:1")
    assert_clean_failure(code, out, err, "bucket does not exist")


def test_unreachable_endpoint(s3_endpoint, clips, tmp_path, capsys, monkeypatch):
    """Not bad input: the store may come back. Exit 5 once the retry budget is spent."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on discard
    monkeypatch.setenv("FRAMESTYLE_S3_RETRY_SECONDS", "1")
    storage._s3_client.cache_clear()
    try:
        code, out, err = run_cli(capsys, "video", "s3://any-bucket/in.mp4", tmp_path / "o.mp4",
                                 "--style", "builtin:1")
    finally:
        storage._s3_client.cache_clear()
    assert_clean_failure(code, out, err, "S3 unavailable: cannot read s3://any-bucket/in.mp4",
                         exit_code=5)
    assert list(tmp_path.iterdir()) == []


def test_bad_numbers_are_input_errors(clips, tmp_path, capsys):
    code, out, err = run_cli(capsys, "video", clips["bunny"], tmp_path / "o.mp4",
                             "--style", "builtin:1", "--crf", "99")
    assert_clean_failure(code, out, err, "--crf")


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["video", "only-one-arg"])
    assert exit_info.value.code == 2


# --- nothing the user gave us is overwritten -----------------------------------------------------

def _spellings(path, tmp_path) -> dict[str, str]:
    """Ways to name ``path`` again: as is, with ./ and .. in it, and through a symlink."""
    link = tmp_path / f"link-{path.name}"
    link.symlink_to(path)
    return {"same": str(path), "dots": f"{tmp_path}/./sub/../{path.name}", "symlink": str(link)}


@pytest.mark.parametrize("spelling", ["same", "dots", "symlink"])
def test_video_and_image_outputs_that_are_the_input_are_refused(clips, tmp_path, capsys,
                                                                spelling):
    (tmp_path / "sub").mkdir()
    video = tmp_path / "clip.mp4"
    video.write_bytes(clips["bunny"].read_bytes())
    photo = tmp_path / "photo.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(photo)
    before = {p: p.read_bytes() for p in (video, photo)}
    for command, source in (("video", video), ("image", photo)):
        target = _spellings(source, tmp_path)[spelling]
        code, out, err = run_cli(capsys, command, source, target, "--style", "builtin:1")
        assert_clean_failure(code, out, err, "refusing to overwrite")
        flag = {"video": "DST", "image": "OUT"}[command]  # the field, as the CLI names it
        assert err.startswith(f"framestyle: error: {flag}: ")
    assert {p: p.read_bytes() for p in before} == before
    assert not (tmp_path / ".framestyle").exists()


def test_s3_outputs_that_are_the_input_are_refused(clips, bucket, capsys):
    s3 = storage.S3Storage()
    for command, key, data in (("video", "same/clip.mp4", clips["bunny"].read_bytes()),
                               ("image", "same/photo.png", _png_bytes())):
        uri = f"s3://{bucket}/{key}"
        s3.put_bytes(data, uri)
        code, out, err = run_cli(capsys, command, uri, uri, "--style", "builtin:1")
        assert_clean_failure(code, out, err, "refusing to overwrite")
        assert s3.get_bytes(uri) == data
    assert not s3.list_sizes(f"s3://{bucket}/.framestyle/")


@pytest.mark.parametrize("where", ["local", "s3"])
def test_images_destination_inside_a_source_is_refused(bucket, tmp_path, capsys, where):
    root = str(tmp_path) if where == "local" else f"s3://{bucket}/overlap"
    source = storage.join(root, "photos")
    storage.storage_for(source).put_bytes(_png_bytes(), storage.join(source, "a.png"))
    for destination in (storage.join(source, "styled") + "/", source + "/",
                        storage.join(source, "styled.tar"), root + "/"):
        code, out, err = run_cli(capsys, "images", source + "/", destination,
                                 "--style", "builtin:1")
        assert_clean_failure(code, out, err, "overlaps the input")
        assert err.startswith("framestyle: error: DST: ")
    assert storage.storage_for(source).list_sizes(source) == {"a.png": len(_png_bytes())}


def test_image_and_images_validate_alike(tmp_path, capsys):
    photo = tmp_path / "p.png"
    photo.write_bytes(_png_bytes())
    lines = []
    for argv in (["image", photo, tmp_path / "o.png"], ["images", photo, tmp_path / "o/"]):
        code, out, err = run_cli(capsys, *argv, "--style", "builtin:1", "--max-side", "0")
        assert_clean_failure(code, out, err, "--max-side")
        lines.append(err)
    assert lines[0] == lines[1] == ("framestyle: error: --max-side: input should be greater "
                                    "than 0 (got 0)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png"]


def test_bad_checkpoint_fails_before_any_work_prefix(clips, tmp_path, capsys):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, out, err = run_cli(capsys, "video", clips["bunny"], out_dir, "--style", bad)
    assert_clean_failure(code, out, err, "bad.pth")
    assert list(out_dir.iterdir()) == []


def _png_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.faults
@pytest.mark.parametrize("flag,value,expected", [
    ("--max-frame-megapixels", "0.01",
     "160x90 frames are 0.0144 megapixels, over the 0.01 MP limit (--max-frame-megapixels)"),
    ("--max-duration", "1.5", "2 s long, over the 1.5 s limit (--max-duration)"),
])
def test_videos_over_the_limits_are_refused(clips, tmp_path, capsys, flag, value, expected):
    code, out, err = run_cli(capsys, "video", clips["bunny"], tmp_path / "o.mp4",
                             "--style", "builtin:1", flag, value)
    assert_clean_failure(code, out, err, expected)
    assert list(tmp_path.iterdir()) == []
