"""Bad input: one-line error naming the problem, exit code 2, and no output object."""

from __future__ import annotations

import pytest

from framestyle.jobs.cli import main
from framestyle.pipeline import storage
from helpers import run_cli


def assert_clean_failure(code, out, err, expected):
    assert code == 2
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
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on discard
    storage._s3_client.cache_clear()
    try:
        code, out, err = run_cli(capsys, "video", "s3://any-bucket/in.mp4", tmp_path / "o.mp4",
                                 "--style", "builtin:1")
    finally:
        storage._s3_client.cache_clear()
    assert_clean_failure(code, out, err, "cannot reach S3 endpoint")


def test_bad_numbers_are_input_errors(clips, tmp_path, capsys):
    code, out, err = run_cli(capsys, "video", clips["bunny"], tmp_path / "o.mp4",
                             "--style", "builtin:1", "--crf", "99")
    assert_clean_failure(code, out, err, "--crf")


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["video", "only-one-arg"])
    assert exit_info.value.code == 2
