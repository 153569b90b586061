"""Frames out of a video file, streamed from an ffmpeg process one frame at a time."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from typing import Iterator

import numpy as np

from .errors import InputError
from .ffmpeg_exe import read_error, spawn
from .probe import VideoInfo


def output_size(info: VideoInfo, height: int | None) -> tuple[int, int]:
    """Stored (width, height) of stylized frames for a *displayed* height, both even for yuv420p.

    Frames are decoded without auto-rotation (the output keeps the input's rotation flag), so for
    a 90/270-degree video the displayed height is the stored width.
    """
    w, h = info.width, info.height
    if height is None:
        return w - w % 2, h - h % 2
    sideways = info.rotation % 180 != 0
    shown_h = w if sideways else h
    scale = height / shown_h
    new_w, new_h = round(w * scale / 2) * 2, round(h * scale / 2) * 2
    return max(2, new_w), max(2, new_h)


def iter_frames(path: str, fps: Fraction, start: int, count: int,
                size: tuple[int, int]) -> Iterator[np.ndarray]:
    """Yield ``count`` RGB frames (H, W, 3 uint8) starting at frame index ``start``.

    Seeking is frame-accurate: ffmpeg seeks to the keyframe before, decodes, and drops frames
    earlier than half a frame before ``start``. Raises InputError if the file runs out early.
    """
    import ffmpeg

    width, height = size
    opts = {"noautorotate": None}
    if start > 0:
        opts["ss"] = f"{float((Fraction(start) - Fraction(1, 2)) / fps):.6f}"
    graph = (
        ffmpeg.input(path, **opts)
        .output("pipe:", format="rawvideo", pix_fmt="rgb24", map="0:v:0",
                fps_mode="passthrough", vf=f"scale={width}:{height}:flags=area",
                **{"frames:v": count})
    )
    proc, err = spawn(graph, stdout=subprocess.PIPE, bufsize=0)
    frame_bytes = width * height * 3
    produced = 0
    try:
        while produced < count:
            buf = _read_exact(proc.stdout, frame_bytes)
            if buf is None:
                break
            produced += 1
            yield np.frombuffer(buf, np.uint8).reshape(height, width, 3)
    except GeneratorExit:  # the consumer stopped early: not an input problem
        proc.kill()
        raise
    finally:
        proc.stdout.close()
        returncode = proc.wait()
        message = read_error(err)
        err.close()
    if produced < count:
        detail = f" ({message})" if returncode else ""
        raise InputError(f"truncated or undecodable video: {path} ended at frame "
                         f"{start + produced}, expected {start + count}{detail}")


def _read_exact(pipe, n: int) -> bytes | None:
    chunks, have = [], 0
    while have < n:
        part = pipe.read(n - have)
        if not part:
            return None
        chunks.append(part)
        have += len(part)
    return b"".join(chunks)
