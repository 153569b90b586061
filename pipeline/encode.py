"""Frames into an H.264 file through a streaming ffmpeg process.

Every chunk of a video is encoded with identical settings (codec, pixel format, fixed GOP, no
scene-cut keyframes, the same track timescale) so that chunks concatenate by stream copy.
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .errors import FramestyleError
from .ffmpeg_exe import read_error, spawn


@dataclass(frozen=True)
class EncodeSettings:
    width: int
    height: int
    fps: Fraction
    gop: int
    crf: int = 20
    preset: str = "veryfast"

    @property
    def timescale(self) -> int:
        """A track timescale in which every frame lasts a whole number of ticks (>= 10000 ticks/s)."""
        return self.fps.numerator * math.ceil(10000 / self.fps.numerator)


class FrameEncoder:
    """Write RGB frames one at a time; ``close()`` finishes the file and checks ffmpeg's exit."""

    def __init__(self, path: str, settings: EncodeSettings):
        import ffmpeg

        s = settings
        graph = (
            ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{s.width}x{s.height}",
                         framerate=str(s.fps))
            .output(path, vcodec="libx264", preset=s.preset, crf=s.crf, pix_fmt="yuv420p",
                    g=s.gop, keyint_min=s.gop, sc_threshold=0, bf=0,
                    video_track_timescale=s.timescale, fps_mode="passthrough", format="mp4")
        )
        self.path = path
        self.frames = 0
        self._shape = (s.height, s.width, 3)
        self._proc, self._err = spawn(graph, stdin=subprocess.PIPE)

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != self._shape or frame.dtype != np.uint8:
            raise ValueError(f"expected a {self._shape} uint8 frame, got {frame.shape} {frame.dtype}")
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).data)
        except BrokenPipeError:
            self._proc.wait()
            raise FramestyleError(f"ffmpeg encoder died: {read_error(self._err)}") from None
        self.frames += 1

    def close(self) -> None:
        self._proc.stdin.close()
        code = self._proc.wait()
        message = read_error(self._err)
        self._err.close()
        if code != 0:
            raise FramestyleError(f"ffmpeg failed to encode {self.path}: {message}")

    def abort(self) -> None:
        self._proc.kill()
        self._proc.wait()
        self._err.close()

    def __enter__(self) -> "FrameEncoder":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
