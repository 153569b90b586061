"""Which ffmpeg binary to run: the one on PATH, else the static build imageio-ffmpeg ships."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from functools import lru_cache

from .errors import FramestyleError


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg(stream, what: str) -> None:
    """Run a finished ffmpeg-python graph to completion; raise with ffmpeg's last words on failure."""
    args = stream.global_args("-nostdin", "-hide_banner", "-loglevel", "error").compile(
        cmd=ffmpeg_exe(), overwrite_output=True)
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        raise FramestyleError(f"ffmpeg failed to {what}: {last_line(done.stderr)}")


def spawn(stream, **popen_kwargs) -> tuple[subprocess.Popen, tempfile.TemporaryFile]:
    """Start an ffmpeg-python graph as a process; its stderr goes to a temp file (no pipe to fill)."""
    err = tempfile.TemporaryFile(mode="w+")
    args = stream.global_args("-nostdin", "-hide_banner", "-loglevel", "error").compile(
        cmd=ffmpeg_exe(), overwrite_output=True)
    return subprocess.Popen(args, stderr=err, **popen_kwargs), err


def read_error(err) -> str:
    err.seek(0)
    return last_line(err.read())


def last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no message"
