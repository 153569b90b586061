"""Frames out of a video file, streamed from an ffmpeg process one frame at a time."""

from __future__ import annotations

import subprocess
from typing import Iterator

import numpy as np

from .colour import to_rgb_filters
from ..core.errors import InputError
from .ffmpeg_exe import read_error, spawn
from .probe import Seek, VideoInfo


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


DEINTERLACE_MODES = ("frame", "field", "off")  # field: one output frame per field (2x rate)


def deinterlaces(info: VideoInfo, deinterlace: str) -> bool:
    return bool(info.interlaced) and deinterlace != "off"


def fields_per_frame(info: VideoInfo, deinterlace: str) -> int:
    """Output frames per input frame: 2 when an interlaced video is deinterlaced field by field."""
    return 2 if deinterlaces(info, deinterlace) and deinterlace == "field" else 1


def shown_timeline(info: VideoInfo, deinterlace: str = "frame") -> list[int]:
    """The output's frame timestamps (in ``info.time_base``): the input's, or with field-rate
    deinterlacing each frame's and one half-way to the next."""
    times = list(info.pts)
    if fields_per_frame(info, deinterlace) == 2:
        ends = times[1:] + [info.end_pts]
        times = [t for start, end in zip(times, ends) for t in (start, (start + end) // 2)]
    for i in range(1, len(times)):  # muxers need strictly increasing times
        times[i] = max(times[i], times[i - 1] + 1)
    return times


def decode_filters(info: VideoInfo, size: tuple[int, int], deinterlace: str = "frame",
                   hdr: str = "tonemap") -> list[str]:
    """The ffmpeg filters from decoded frames to network-ready RGB24: deinterlace (bwdif, which
    looks one frame back and one ahead), tone-map HDR, then scale with the input's matrix."""
    filters = []
    if deinterlaces(info, deinterlace):
        mode = "send_field" if deinterlace == "field" else "send_frame"
        filters.append(f"bwdif=mode={mode}:parity={info.interlaced}:deint=all")
    return filters + to_rgb_filters(info.colour, *size, hdr=hdr)


def decode_window(info: VideoInfo, start: int, deinterlace: str = "frame") -> tuple[int, int]:
    """(input frame to start decoding at, output frames to drop before ``start``). When
    deinterlacing, decoding starts one input frame early so bwdif sees the same neighbours as
    in an unbroken decode."""
    per_frame = fields_per_frame(info, deinterlace)
    first_input = max(0, start // per_frame - deinterlaces(info, deinterlace))
    return first_input, start - first_input * per_frame


def iter_frames(path: str, info: VideoInfo, start: int, count: int, size: tuple[int, int],
                deinterlace: str = "frame", hdr: str = "tonemap",
                seek: Seek | None = None, name: str | None = None,
                hwaccel: bool = False, threads: int = 0) -> Iterator[np.ndarray]:
    """Yield ``count`` RGB frames (H, W, 3 uint8): output frames ``start``.. of ``path``.

    Frames are located by timestamp, not by index / fps (``VideoInfo.seek_point`` and ``Seek``
    say how), so the first frame is exact at any frame rate, with edit lists, start offsets and
    in containers without an index. ``seek`` is given when the caller has worked it out
    already (chunk tasks carry it instead of the whole timeline). Raises InputError, naming the
    file as ``name`` (default: ``path``), if the file runs out early. ``hwaccel`` decodes on
    the GPU with NVDEC (the same frames; ffmpeg falls back to the CPU for streams it cannot
    take there). ``threads``: the decoder's (0: ffmpeg's choice, from every core).
    """
    import ffmpeg

    width, height = size
    first_input, skip = decode_window(info, start, deinterlace)
    if seek is None and first_input > 0:
        seek = info.seek_point(first_input)
    opts, filters = {"noautorotate": None}, decode_filters(info, size, deinterlace, hdr)
    if hwaccel:
        opts["hwaccel"] = "cuda"
    if threads:
        opts["threads"] = threads
    if seek is not None and seek.demux is not None:
        # an absolute time: ffmpeg's own "file start" differs from the container's for some
        # formats (MPEG-TS: the latest stream start), so a relative -ss would land off by that
        opts.update(seek_timestamp=1, ss=f"{float(seek.demux):.6f}")
    if seek is not None and seek.trim is not None:
        # keep the streams' own timestamps and drop frames before the wanted one ourselves
        opts.update(copyts=None, noaccurate_seek=None)
        filters.insert(0, f"trim=start={float(seek.trim):.6f}")
    graph = (
        ffmpeg.input(path, **opts)
        .output("pipe:", format="rawvideo", pix_fmt="rgb24", map="0:v:0",
                fps_mode="passthrough", vf=",".join(filters), **{"frames:v": skip + count})
    )
    proc, err = spawn(graph, stdout=subprocess.PIPE, bufsize=0)
    frame_bytes = width * height * 3
    produced = 0
    try:
        while produced < skip + count:
            buf = _read_exact(proc.stdout, frame_bytes)
            if buf is None:
                break
            produced += 1
            if produced > skip:
                yield np.frombuffer(buf, np.uint8).reshape(height, width, 3)
    except GeneratorExit:  # the consumer stopped early: not an input problem
        proc.kill()
        raise
    finally:
        proc.stdout.close()
        returncode = proc.wait()
        message = read_error(err)
        err.close()
    if produced == 0 and returncode and hwaccel:
        # NVDEC could not start on this stream (a profile this GPU lacks): the CPU decodes it
        yield from iter_frames(path, info, start, count, size, deinterlace, hdr, seek, name)
        return
    if produced < skip + count:
        detail = f" ({message})" if returncode else ""
        raise InputError(f"truncated or undecodable video: {name or path} ended at frame "
                         f"{start + max(0, produced - skip)}, expected {start + count}{detail}")


def _read_exact(pipe, n: int) -> bytes | None:
    chunks, have = [], 0
    while have < n:
        part = pipe.read(n - have)
        if not part:
            return None
        chunks.append(part)
        have += len(part)
    return b"".join(chunks)
