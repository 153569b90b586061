"""Frames into one chunk of the output's video stream, through a streaming ffmpeg process.

Every chunk of a video is encoded with identical settings (codec, pixel format, colour, fixed
GOP, no B-frames) so that the chunks' packets join into one stream by copy. The chunk's own
timestamps do not matter: assembly gives every packet the input frame's timestamp.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .colour import Colour, SDR_BT709, from_rgb_filters, tag_filter
from ..core.errors import FramestyleError
from .ffmpeg_exe import read_error, run_ffmpeg, spawn
from .formats import NVENC_OPTIONS, VIDEO_CODECS
from .gpu_codecs import NVENC, SOFTWARE


@dataclass(frozen=True)
class EncodeSettings:
    width: int
    height: int
    fps: Fraction  # nominal: only guides the encoder's rate control
    gop: int
    crf: int = 20
    codec: str = "h264"
    colour: Colour = SDR_BT709
    encoder: str = SOFTWARE  # or NVENC: the codec's NVENC encoder (gpu_codecs)
    threads: int = 0  # the encoder's; 0: ffmpeg's own choice, from every core of the machine

    def ffmpeg_options(self) -> dict:
        codec = VIDEO_CODECS[self.codec]
        hardware = self.encoder == NVENC
        template = NVENC_OPTIONS if hardware else codec.options
        options = {k: v.format(crf=self.crf, gop=self.gop) if isinstance(v, str) else v
                   for k, v in template.items()}
        if self.threads:
            options["threads"] = self.threads
        return {"vcodec": codec.nvenc if hardware else codec.encoder, **options,
                "vf": ",".join(from_rgb_filters(self.colour, codec.pix_fmt))}


class FrameEncoder:
    """Write RGB frames one at a time; ``close()`` finishes the file and checks ffmpeg's exit."""

    def __init__(self, path: str, settings: EncodeSettings):
        import ffmpeg

        s = settings
        graph = (
            ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{s.width}x{s.height}",
                         framerate=str(s.fps))
            .output(path, fps_mode="passthrough", format="matroska", **s.ffmpeg_options())
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


def reencode_chunk(source: str, target: str, settings: EncodeSettings) -> None:
    """Encode the frames of the chunk ``source`` again into ``target`` with ``settings``; they
    are in the codec's pixel format already, so only the encoder changes, and the frames are
    tagged with the video's colours as the chunks encoded from RGB are."""
    import ffmpeg

    options = settings.ffmpeg_options()
    options.update(vf=tag_filter(settings.colour), pix_fmt=VIDEO_CODECS[settings.codec].pix_fmt)
    graph = ffmpeg.input(source).output(target, fps_mode="passthrough", format="matroska",
                                        **options)
    run_ffmpeg(graph, f"re-encode the chunk {source}")
