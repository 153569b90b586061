"""What a video is, read with PyAV (no ffprobe needed): size, rotation, colour, audio, and the
timeline of the frames a player shows.

The timeline is the presentation timestamp of every shown frame, read from the demuxed packets
(decoding nothing): packets an edit list hides (a stream-copy trim keeps the frames before the
cut that the first kept frame depends on, flagged "discard") are left out, and the timestamps
keep the stream's own start (video starting after the audio) and gaps (variable frame rate).
Chunks seek and count by this timeline, and the output is written with the same timestamps.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from fractions import Fraction

from .colour import Colour, resolve
from ..core.errors import InputError
from .ffmpeg_exe import ffmpeg_exe, ffmpeg_output

UNINDEXED_SEEK_MARGIN = Fraction(3)  # seconds; covers a transport stream's clock lead
INDEXED_FORMATS = ("mov", "mp4", "matroska", "webm", "avi")
INTERLACED_FIELD_ORDERS = {2: "tff", 3: "bff", 4: "tff", 5: "bff"}  # AVFieldOrder -> parity


@dataclass(frozen=True)
class AudioInfo:
    codec: str
    channels: int
    sample_rate: int


@dataclass(frozen=True)
class VideoInfo:
    width: int  # as stored, before rotation
    height: int
    fps: Fraction  # average rate, exact (e.g. 30000/1001); a variable-rate video's is nominal
    frames: int  # frames a player shows
    rotation: int  # counter-clockwise degrees to display, as ffmpeg's -display_rotation takes it
    codec: str
    duration: float  # seconds from the first frame's start to the last frame's end
    audio: tuple[AudioInfo, ...] = field(default_factory=tuple)
    time_base: Fraction = Fraction(1, 90000)
    pts: tuple[int, ...] = ()  # each shown frame's presentation time in time_base, ascending
    end_pts: int = 0  # when the last frame stops showing
    start_time: Fraction = Fraction(0)  # the file's start in seconds (the output's zero)
    colour: Colour = field(default_factory=lambda: resolve(2, 2, 2, 0, 0, 0))
    interlaced: str | None = None  # "tff" or "bff" when the video is interlaced
    pix_fmt: str = "yuv420p"
    indexed: bool = True  # the container has an index to seek by (see Seek)
    keyframes: tuple[int, ...] = ()  # pts of every keyframe packet, for seeking without one

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as a viewer shows it."""
        if self.rotation % 180:
            return self.height, self.width
        return self.width, self.height

    def seek_point(self, index: int) -> Seek | None:
        """Where ffmpeg must seek to start decoding exactly at frame ``index`` (None for the
        first frame: no seeking at all)."""
        if index == 0:
            return None
        exact = Fraction(self.pts[index - 1] + self.pts[index], 2) * self.time_base
        if self.indexed:
            return Seek(demux=exact, trim=None)
        # the latest keyframe at or before the frame, less a margin for the transport clock
        at = bisect.bisect_right(self.keyframes, self.pts[index]) - 1
        keyframe = self.keyframes[at] * self.time_base if at >= 0 else exact
        demux = keyframe - UNINDEXED_SEEK_MARGIN
        return Seek(demux=demux if demux > self.pts[0] * self.time_base else None, trim=exact)


@dataclass(frozen=True)
class Seek:
    """How to land on one frame. Times are in the stream's own clock (ffmpeg -seek_timestamp).

    Containers with an index (MP4/MOV, Matroska/WebM, AVI) seek straight to ``demux``, half-way
    between the frame and the one before, and ffmpeg's accurate seeking drops what comes before
    it. Containers without one (MPEG-TS, MPEG-PS, raw streams) seek by bisecting the file on a
    clock that runs ahead of the frames' own (TS's PCR leads the PTS by up to a second), then
    read on to the next keyframe: that can land *after* the frame. So there we seek a margin
    before the latest keyframe (or not at all, near the start) and drop frames before ``trim``
    ourselves, on the frames' own timestamps.
    """

    demux: Fraction | None
    trim: Fraction | None


def probe(path: str, name: str | None = None) -> VideoInfo:
    """Probe a video file, or a URL ffmpeg reads (``storage.media_url``). ``name`` is how
    errors refer to it (e.g. its s3:// URI).

    The frame count comes from demuxing every video packet (headers can be missing or wrong, and a
    truncated file has fewer packets than its header claims), which reads the file once but
    decodes nothing beyond the first frame.
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
            AudioInfo(codec=a.codec_context.codec.canonical_name, channels=a.codec_context.channels,
                      sample_rate=a.codec_context.sample_rate)
            for a in container.streams.audio
        )
        first = _first_frame(container, stream, name)
        declared = stream.frames
        timeline = _timeline(container, stream, name)
        start_time = Fraction(container.start_time or 0, av.time_base)
        indexed = any(f in INDEXED_FORMATS for f in container.format.name.split(","))
    packets, pts, end_pts, keyframes = timeline
    if not pts:
        raise InputError(f"no video frames in {name}")
    if declared and packets < declared:
        raise InputError(f"truncated video: {name} has {packets} of {declared} frames")
    cc = stream.codec_context
    time_base = Fraction(stream.time_base)
    fmt = cc.format
    colour = resolve(cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range, cc.width,
                     cc.height, yuv=fmt is None or not fmt.is_rgb)
    interlaced = INTERLACED_FIELD_ORDERS.get(cc.field_order)
    if interlaced is None and first is not None and first.interlaced_frame:
        interlaced = "tff"
    rotation = first.rotation if first is not None else _rotation_from_ffmpeg(path)
    return VideoInfo(width=cc.width, height=cc.height, fps=Fraction(fps), frames=len(pts),
                     rotation=int(round(rotation)) % 360, codec=cc.codec.canonical_name,
                     duration=float((end_pts - pts[0]) * time_base), audio=audio,
                     time_base=time_base, pts=tuple(pts), end_pts=end_pts,
                     start_time=start_time, colour=colour, interlaced=interlaced,
                     pix_fmt=fmt.name if fmt else "yuv420p", indexed=indexed,
                     keyframes=() if indexed else tuple(sorted(keyframes)))


def _first_frame(container, stream, name: str):
    """The first decoded frame, or None when PyAV's own libraries have no decoder for the
    codec (AV1: the ffmpeg binary we decode with has one)."""
    import av

    try:
        for frame in container.decode(stream):
            return frame
    except av.codec.codec.UnknownCodecError:
        return None
    except av.error.FFmpegError as e:
        raise InputError(f"cannot decode {name} ({_reason(e)})") from None
    raise InputError(f"no decodable video frames in {name}")


def _timeline(container, stream, name: str) -> tuple[int, list[int], int, list[int]]:
    """(packets demuxed, sorted pts of the frames shown, end of the last frame, keyframe pts)."""
    import av

    container.seek(0, stream=stream)
    packets, shown, end, keyframes = 0, [], 0, []
    missing_pts = False
    try:
        for packet in container.demux(stream):
            if not packet.size:  # the demuxer ends each stream with an empty flush packet
                continue
            packets += 1
            if packet.is_keyframe and packet.pts is not None:
                keyframes.append(packet.pts)
            if packet.is_discard:  # hidden by an edit list: decoded only as a reference
                continue
            if packet.pts is None:
                missing_pts = True
                continue
            shown.append(packet.pts)
            end = max(end, packet.pts + (packet.duration or 0))
    except av.error.FFmpegError as e:
        raise InputError(f"truncated or corrupt video: {name} ({_reason(e)})") from None
    if missing_pts or not shown:  # raw streams and some old containers: ask the decoder
        shown = _decoded_pts(container, stream, name)
        end = 0
    shown.sort()
    if shown and end <= shown[-1]:
        # no packet durations: the last frame lasts as long as the one before it, or 1/fps
        step = shown[-1] - shown[-2] if len(shown) > 1 else \
            round(1 / (Fraction(stream.average_rate or 25) * Fraction(stream.time_base)))
        end = shown[-1] + max(1, step)
    return packets, shown, end, keyframes


def _rotation_from_ffmpeg(path: str) -> float:
    """The display matrix's rotation as ``ffmpeg -i`` reports it, the way PyAV does."""
    found = re.search(r"Display Matrix: rotation of (-?[\d.]+) degrees",
                      ffmpeg_output(ffmpeg_exe(), "-i", path))
    return float(found.group(1)) if found else 0.0


def _decoded_pts(container, stream, name: str) -> list[int]:
    import av

    container.seek(0, stream=stream)
    step = 1 / (Fraction(stream.average_rate or 25) * Fraction(stream.time_base))
    pts = []
    try:
        for i, frame in enumerate(container.decode(stream)):
            pts.append(frame.pts if frame.pts is not None else round(i * step))
    except av.error.FFmpegError as e:
        raise InputError(f"truncated or corrupt video: {name} ({_reason(e)})") from None
    return pts


def _reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e)
