"""Which ffmpeg binary to run, and running it.

The default is the static build imageio-ffmpeg ships, never whatever ``ffmpeg`` is on PATH: a
server's distribution ffmpeg is often old (Debian 12 ships 5.1) and lacks options and filters
we use, and the bundled one is a known version with every codec and filter the pipeline names.
``FRAMESTYLE_FFMPEG`` picks another binary (a build with NVENC, say); its version and the
filters and encoders we rely on are checked once, with a one-line error naming what is missing.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from functools import lru_cache

from ..core.errors import FramestyleError, InputError

FFMPEG_ENV = "FRAMESTYLE_FFMPEG"
MIN_VERSION = (6, 0)  # -display_rotation (used by our test fixtures) and current filter options
REQUIRED_FILTERS = ("scale", "bwdif", "zscale", "tonemap")
REQUIRED_ENCODERS = ("libx264",)


class FfmpegSetupError(InputError):
    """FRAMESTYLE_FFMPEG names a binary we cannot use: fixed by the user's setup, so exit 2."""


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    chosen = os.environ.get(FFMPEG_ENV)
    if not chosen:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    check_ffmpeg(chosen)
    return chosen


def check_ffmpeg(exe: str) -> None:
    """Raise FfmpegSetupError unless ``exe`` is an ffmpeg with what the pipeline uses."""
    where = f"{FFMPEG_ENV}={exe}"
    try:
        version = ffmpeg_output(exe, "-version")
    except OSError as e:
        raise FfmpegSetupError(f"{where} cannot be run ({e.strerror or e})") from None
    found = re.search(r"ffmpeg version n?(\d+)\.(\d+)", version)
    if not found:
        raise FfmpegSetupError(f"{where} is not an ffmpeg we can read the version of")
    have = (int(found.group(1)), int(found.group(2)))
    if have < MIN_VERSION:
        raise FfmpegSetupError(
            f"{where} is ffmpeg {have[0]}.{have[1]}; framestyle needs {MIN_VERSION[0]}.{MIN_VERSION[1]}"
            f" or newer (unset {FFMPEG_ENV} to use the bundled build)")
    filters, encoders = ffmpeg_output(exe, "-filters"), ffmpeg_output(exe, "-encoders")
    missing = [f"filter {n}" for n in REQUIRED_FILTERS if not re.search(rf"\s{n}\s", filters)]
    missing += [f"encoder {n}" for n in REQUIRED_ENCODERS if not re.search(rf"\s{n}\s", encoders)]
    if missing:
        raise FfmpegSetupError(f"{where} lacks {', '.join(missing)} "
                               f"(unset {FFMPEG_ENV} to use the bundled build)")


def ffmpeg_output(exe: str, *args: str) -> str:
    """What ``exe -hide_banner ARGS`` prints (stdout and stderr), whatever its exit status."""
    done = subprocess.run([exe, "-hide_banner", *args], capture_output=True, text=True,
                          timeout=30)
    return done.stdout + done.stderr


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
