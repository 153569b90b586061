"""What a video is, read with PyAV (no ffprobe needed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from .errors import InputError


@dataclass(frozen=True)
class AudioInfo:
    codec: str
    channels: int
    sample_rate: int


@dataclass(frozen=True)
class VideoInfo:
    width: int  # as stored, before rotation
    height: int
    fps: Fraction  # exact, e.g. Fraction(30000, 1001)
    frames: int
    rotation: int  # counter-clockwise degrees to display, as ffmpeg's -display_rotation takes it
    codec: str
    duration: float  # seconds, frames / fps
    audio: tuple[AudioInfo, ...] = field(default_factory=tuple)

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as a viewer shows it."""
        if self.rotation % 180:
            return self.height, self.width
        return self.width, self.height


def probe(path: str, name: str | None = None) -> VideoInfo:
    """Probe a local video file. ``name`` is how errors refer to it (e.g. its s3:// URI).

    The frame count comes from demuxing every video packet (headers can be missing or wrong, and a
    truncated file has fewer packets than its header claims), which reads the file once but
    decodes nothing.
    """
    import av

    name = name or path
    try:
        container = av.open(path)
    except (av.error.FFmpegError, OSError) as e:
        raise InputError(f"not a readable video: {name} ({_reason(e)})") from None
    with container:
        if not container.streams.video:
            raise InputError(f"no video stream in {name}")
        stream = container.streams.video[0]
        fps = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not fps:
            raise InputError(f"cannot tell the frame rate of {name}")
        audio = tuple(
            AudioInfo(codec=a.codec_context.name, channels=a.codec_context.channels,
                      sample_rate=a.codec_context.sample_rate)
            for a in container.streams.audio
        )
        rotation = _rotation(container, stream, name)
        declared = stream.frames
        counted = _count_packets(container, stream, name)
    if counted == 0:
        raise InputError(f"no video frames in {name}")
    if declared and counted < declared:
        raise InputError(f"truncated video: {name} has {counted} of {declared} frames")
    fps = Fraction(fps)
    return VideoInfo(width=stream.codec_context.width, height=stream.codec_context.height,
                     fps=fps, frames=counted, rotation=rotation,
                     codec=stream.codec_context.name, duration=float(counted / fps), audio=audio)


def _rotation(container, stream, name: str) -> int:
    import av

    try:
        for frame in container.decode(stream):
            return int(round(frame.rotation)) % 360
    except av.error.FFmpegError as e:
        raise InputError(f"cannot decode {name} ({_reason(e)})") from None
    raise InputError(f"no decodable video frames in {name}")


def _count_packets(container, stream, name: str) -> int:
    import av

    container.seek(0, stream=stream)
    count = 0
    try:
        for packet in container.demux(stream):
            if packet.size:  # the demuxer ends each stream with an empty flush packet
                count += 1
    except av.error.FFmpegError as e:
        raise InputError(f"truncated or corrupt video: {name} ({_reason(e)})") from None
    return count


def _reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e)
