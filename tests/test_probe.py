import os
from fractions import Fraction

import pytest

from framestyle.core.errors import InputError
from framestyle.pipeline.probe import probe


def test_probe_reads_rate_frames_size_and_51_audio(clips):
    info = probe(str(clips["bunny"]))
    assert info.fps == Fraction(25) and info.frames == 50
    assert (info.width, info.height, info.rotation) == (160, 90, 0)
    assert [(a.codec, a.channels, a.sample_rate) for a in info.audio] == [("aac", 6, 48000)]
    assert info.duration == pytest.approx(2.0)


def test_probe_keeps_fractional_rate_exact_and_reads_rotation(clips):
    info = probe(str(clips["rotated"]))
    assert info.fps == Fraction(30000, 1001)
    assert info.frames == 45  # 1.5 s at 29.97 fps
    assert info.rotation == 90
    assert info.display_size == (64, 96)
    assert [(a.channels, a.sample_rate) for a in info.audio] == [(2, 44100)]


@pytest.mark.parametrize("name,message", [
    ("not_video", "not a readable video"),
    ("truncated", "not a readable video"),
    ("truncated_faststart", "truncated"),
])
def test_probe_rejects_bad_files_with_one_line(clips, name, message):
    with pytest.raises(InputError, match=message) as err:
        probe(str(clips[name]))
    assert "\n" not in str(err.value)


def test_ffmpeg_is_the_bundled_build_not_the_one_on_path(monkeypatch, tmp_path):
    """An older ffmpeg on PATH (Debian 12 ships 5.1) must not be picked up."""
    import imageio_ffmpeg

    from framestyle.pipeline import ffmpeg_exe as exe

    fake = _fake_ffmpeg(tmp_path / "ffmpeg", "5.1.4-0+deb12u1")
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    monkeypatch.delenv(exe.FFMPEG_ENV, raising=False)
    exe.ffmpeg_exe.cache_clear()
    try:
        assert exe.ffmpeg_exe() == imageio_ffmpeg.get_ffmpeg_exe()
    finally:
        exe.ffmpeg_exe.cache_clear()


@pytest.mark.parametrize("version,filters,message", [
    ("5.1.4-0+deb12u1", "bwdif zscale tonemap scale", "is ffmpeg 5.1; framestyle needs 6.0"),
    ("7.1", "bwdif scale", "lacks filter zscale, filter tonemap"),
])
def test_framestyle_ffmpeg_is_checked_with_one_line(clips, tmp_path, capsys, monkeypatch,
                                                    version, filters, message):
    from framestyle.pipeline import ffmpeg_exe as exe
    from helpers import run_cli

    fake = _fake_ffmpeg(tmp_path / "bin" / "ffmpeg", version, filters)
    monkeypatch.setenv(exe.FFMPEG_ENV, str(fake))
    exe.ffmpeg_exe.cache_clear()
    try:
        code, out, err = run_cli(capsys, "video", clips["bunny"], tmp_path / "out.mp4",
                                 "--style", "builtin:1")
    finally:
        exe.ffmpeg_exe.cache_clear()
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"framestyle: error: {exe.FFMPEG_ENV}={fake} {message}")
    assert not (tmp_path / "out.mp4").exists()


def test_framestyle_ffmpeg_accepts_a_capable_build(monkeypatch):
    import imageio_ffmpeg

    from framestyle.pipeline import ffmpeg_exe as exe

    monkeypatch.setenv(exe.FFMPEG_ENV, imageio_ffmpeg.get_ffmpeg_exe())
    exe.ffmpeg_exe.cache_clear()
    try:
        assert exe.ffmpeg_exe() == imageio_ffmpeg.get_ffmpeg_exe()
    finally:
        exe.ffmpeg_exe.cache_clear()


def _fake_ffmpeg(path, version: str, filters: str = "scale"):
    """A script that answers -version, -filters and -encoders like an ffmpeg build would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    listing = "\n".join(f" TS {name:<16} V->V       a filter" for name in filters.split())
    path.write_text(f"""#!/bin/sh
case "$2" in
  -version) echo "ffmpeg version {version} Copyright (c) 2000-2023 the FFmpeg developers" ;;
  -filters) printf '%s\\n' "{listing}" ;;
  -encoders) echo " V....D libx264              libx264 H.264" ;;
esac
""")
    path.chmod(0o755)
    return path
