"""Output containers and video codecs: what the output's extension picks, and what may go with what.

A new container or codec is one entry here. Every codec is encoded without B-frames (so each
chunk's packets are in presentation order and take the input's timestamps one for one) and with
a keyframe at the start of every chunk (so chunks join by stream copy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

from ..core.errors import InputError


@dataclass(frozen=True)
class VideoCodec:
    encoder: str  # the ffmpeg encoder
    pix_fmt: str
    options: dict = field(default_factory=dict)  # encoder options; {crf} and {gop} filled in
    tag: str | None = None  # codec tag for MP4/MOV (hvc1: HEVC that Apple players open)
    nvenc: str | None = None  # its NVENC encoder, used on GPU nodes that have it (gpu_codecs)


# NVENC at constant quality like the CPU encoders' crf, with their fixed GOP and no B-frames
NVENC_OPTIONS = {"preset": "p5", "tune": "hq", "rc": "vbr", "cq": "{crf}", "b:v": 0,
                 "g": "{gop}", "bf": 0, "forced-idr": 1, "no-scenecut": 1}


VIDEO_CODECS: dict[str, VideoCodec] = {
    "h264": VideoCodec("libx264", "yuv420p", {"preset": "veryfast", "crf": "{crf}", "g": "{gop}",
                                             "keyint_min": "{gop}", "sc_threshold": 0, "bf": 0},
                        nvenc="h264_nvenc"),
    # info=0: x265 otherwise writes its settings, thread counts included, into the stream's
    # headers, and chunks from workers with different CPU shares could not be joined
    "hevc": VideoCodec("libx265", "yuv420p", {"preset": "veryfast", "crf": "{crf}",
                                             "x265-params": "keyint={gop}:min-keyint={gop}:"
                                             "scenecut=0:bframes=0:info=0:log-level=error"},
                       tag="hvc1", nvenc="hevc_nvenc"),
    "vp9": VideoCodec("libvpx-vp9", "yuv420p", {"crf": "{crf}", "b:v": 0, "g": "{gop}",
                                               "deadline": "good", "cpu-used": 5, "row-mt": 1}),
    "av1": VideoCodec("libsvtav1", "yuv420p", {"crf": "{crf}", "g": "{gop}", "preset": 8},
                      nvenc="av1_nvenc"),
    "prores": VideoCodec("prores_ks", "yuv422p10le", {"profile:v": 3}),  # ProRes 422 HQ
    "ffv1": VideoCodec("ffv1", "yuv444p", {"level": 3, "g": 1}),  # lossless (but for RGB->YUV)
}


@dataclass(frozen=True)
class Container:
    format: str  # ffmpeg / PyAV muxer name
    default_codec: str
    codecs: tuple[str, ...]
    # audio codecs its usual players play; None: any. Others are re-encoded to audio_fallback.
    audio: frozenset[str] | None
    audio_fallback: str | None = None

    @property
    def quicktime(self) -> bool:
        """MP4 and MOV: codec tags and +faststart apply."""
        return self.format in ("mp4", "mov")


_APPLE_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac"})
CONTAINERS: dict[str, Container] = {
    ".mp4": Container("mp4", "h264", ("h264", "hevc", "vp9", "av1"), _APPLE_AUDIO, "aac"),
    ".mov": Container("mov", "h264", ("h264", "hevc", "prores"),
                      _APPLE_AUDIO | {"pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be"}, "aac"),
    ".mkv": Container("matroska", "h264", tuple(VIDEO_CODECS), None),
    ".webm": Container("webm", "vp9", ("vp9", "av1"), frozenset({"opus", "vorbis"}), "opus"),
}
AUDIO_ENCODERS = {"aac": "aac", "opus": "libopus"}
CHUNK_SUFFIX = ".mkv"  # chunks of every codec are kept in Matroska, which holds them all


@dataclass(frozen=True)
class OutputFormat:
    container: Container
    codec_name: str

    @property
    def codec(self) -> VideoCodec:
        return VIDEO_CODECS[self.codec_name]

    def audio_plan(self, codec: str) -> str | None:
        """None to copy an audio stream of ``codec`` as it is, else the codec to re-encode to."""
        allowed = self.container.audio
        return None if allowed is None or codec in allowed else self.container.audio_fallback


def output_format(output: str, codec: str | None = None) -> OutputFormat:
    """The container OUT's extension names and the codec for it; InputError for what we cannot
    write, raised before any work is done."""
    suffix = PurePosixPath(output.rstrip("/")).suffix.lower()
    container = CONTAINERS.get(suffix)
    if container is None:
        raise InputError(f"cannot write {output!r}: the extension must be one of "
                         f"{', '.join(CONTAINERS)}")
    name = codec or container.default_codec
    if name not in VIDEO_CODECS:
        raise InputError(f"unknown codec {name!r}: use one of {', '.join(VIDEO_CODECS)}")
    if name not in container.codecs:
        raise InputError(f"{suffix} cannot hold {name} video; it takes "
                         f"{', '.join(container.codecs)}")
    return OutputFormat(container, name)
