"""Join encoded chunks by stream copy and put the original audio back, untouched."""

from __future__ import annotations

import tempfile
from pathlib import Path

from . import storage
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


def assemble_and_store(input_uri: str, input_info, output_uri: str, chunk_uris: list[str],
                       video: VideoInfo, settings: EncodeSettings) -> dict:
    """Fetch chunks, join them with the original audio, check the result, then store it."""
    original = storage.fetch(input_uri, input_info)
    with tempfile.TemporaryDirectory(prefix="framestyle-assemble-") as tmp:
        local_chunks = []
        for i, uri in enumerate(chunk_uris):
            if storage.is_s3(uri):
                path = str(Path(tmp, f"chunk-{i:05d}.mp4"))
                storage.storage_for(uri).download(uri, path)
                local_chunks.append(path)
            else:
                local_chunks.append(uri)
        out = str(Path(tmp, "output" + (Path(storage.basename(output_uri)).suffix or ".mp4")))
        result = assemble(local_chunks, original, video, settings, out)
        storage.storage_for(output_uri).upload(out, output_uri)
    return {"frames": result.frames, "audio_streams": len(result.audio)}
