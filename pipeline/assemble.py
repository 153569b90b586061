"""Join encoded chunks by stream copy and put the original audio back, untouched."""

from __future__ import annotations

from pathlib import Path

from .encode import EncodeSettings
from .errors import FramestyleError
from .ffmpeg_exe import run_ffmpeg
from .probe import VideoInfo, probe


def assemble(chunk_paths: list[str], original: str, info: VideoInfo, settings: EncodeSettings,
             out_path: str) -> VideoInfo:
    """Write ``out_path`` from the chunks (in order) plus every audio stream of ``original``.

    Nothing is re-encoded: the video is the chunks' H.264 stream, the audio is copied packet for
    packet, and the input's rotation flag is set on the output. Returns the probe of the result
    after checking that no frame was lost.
    """
    import ffmpeg

    listing = Path(out_path).with_suffix(".concat.txt")
    listing.write_text("".join(f"file '{_escape(p)}'\n" for p in chunk_paths))
    rotation = {"display_rotation": info.rotation} if info.rotation else {}
    video_in = ffmpeg.input(str(listing), format="concat", safe=0, **rotation)
    streams = [video_in["v:0"]]
    if info.audio:
        streams.append(ffmpeg.input(original)["a"])
    graph = ffmpeg.output(*streams, out_path, c="copy", video_track_timescale=settings.timescale,
                          movflags="+faststart")
    try:
        run_ffmpeg(graph, f"assemble {out_path}")
    finally:
        listing.unlink(missing_ok=True)
    result = probe(out_path)
    if result.frames != info.frames:
        raise FramestyleError(f"assembled {result.frames} frames, expected {info.frames}")
    return result


def _escape(path: str) -> str:
    return str(Path(path).resolve()).replace("'", "'\\''")
