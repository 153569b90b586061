"""Join encoded chunks into the output with the input's timestamps and its original audio.

The chunks' video packets are copied one for one (no re-encoding) and each is given the
timestamp of the input frame it came from, so a variable frame rate stays variable and a video
that starts after its audio still does. Every stream moves back by the input file's start time
(an MPEG-TS broadcast recording starts at 1.4 s or hours in), as ffmpeg does, so the output
starts at 0 with the streams' offsets unchanged. The input's audio streams are copied packet for
packet with their own timestamps, so sound stays in sync; a stream the output container cannot carry
playably (Vorbis in MP4, AAC in WebM) is re-encoded alone, and the summary says so. Streams are
written interleaved by time, so memory stays small whatever the video's length.
"""

from __future__ import annotations

import heapq
import os
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Iterator

from ..core import storage, tempdirs
from ..core.errors import FramestyleError
from .encode import EncodeSettings, reencode_chunk
from .ffmpeg_exe import run_ffmpeg
from .gpu_codecs import SOFTWARE
from .formats import AUDIO_ENCODERS, CHUNK_SUFFIX, OutputFormat
from .probe import VideoInfo, probe

# Marks on a finished output (container tags; S3 object metadata keys, which are lower case)
JOB_TAG = "framestyle-job"
FRAMES_TAG = "framestyle-frames"


def assemble(chunk_paths: list[str], original: str, info: VideoInfo, timeline: list[int],
             fmt: OutputFormat, out_path: str, workdir: str,
             tags: dict[str, str] | None = None,
             settings: EncodeSettings | None = None) -> tuple[VideoInfo, list[str]]:
    """Write ``out_path`` from the chunks (in order) plus every audio stream of ``original``
    (a path or a URL), with container ``tags``.

    ``timeline`` holds the output frames' timestamps in ``info.time_base``. ``settings`` are
    the chunks' encoding settings, for re-encoding NVENC chunks of a video whose other chunks
    were made on CPUs (``joinable``). Returns the probe of the result (after checking that no
    frame was lost) and a note per re-encoded audio stream or set of chunks.
    """
    import av

    chunk_paths, chunk_note = joinable(chunk_paths, settings, workdir)
    sources = _audio_sources(original, info, fmt, workdir)
    # use_metadata_tags: MP4/MOV keep tags of any name (the job id), as Matroska always does
    options = {"movflags": "+faststart+use_metadata_tags"} if fmt.container.quicktime else {}
    with av.open(out_path, "w", format=fmt.container.format, options=options) as out, \
            av.open(chunk_paths[0]) as first:
        out.metadata.update(tags or {})
        # opaque: copy the codec parameters even where PyAV's libraries lack a decoder (AV1)
        video = out.add_stream_from_template(first.streams.video[0], opaque=True)
        video.time_base = info.time_base
        if fmt.codec.tag and fmt.container.quicktime:
            video.codec_context.codec_tag = fmt.codec.tag
        if info.rotation:
            video.set_display_rotation(info.rotation)
        inputs = [(av.open(path), index) for path, index, _ in sources]
        try:
            feeds = [_video_packets(chunk_paths, timeline, info, video)]
            feeds += [_copied(container.streams.audio[index],
                              out.add_stream_from_template(container.streams.audio[index]),
                              info.start_time)
                      for container, index in inputs]
            for packet in heapq.merge(*feeds, key=_when):
                out.mux(packet)
        finally:
            for container, _ in inputs:
                container.close()
    result = probe(out_path)
    if result.frames != len(timeline):
        raise FramestyleError(f"assembled {result.frames} frames, expected {len(timeline)}")
    return result, [note for _, _, note in sources if note] + ([chunk_note] if chunk_note else [])


def joinable(chunk_paths: list[str], settings: EncodeSettings | None,
             workdir: str) -> tuple[list[str], str | None]:
    """Chunks whose packets join into one stream by copy, and a note if some were re-encoded.

    Chunks of one video share their codec parameters, except where some were encoded with NVENC
    and others on a node without it (gpu_codecs): then the NVENC chunks are re-encoded here with
    the CPU encoder's settings, at the video's quality, a second generation for those frames
    only."""
    found = [_stream_parameters(path) for path in chunk_paths]
    if len({extradata for extradata, _ in found}) <= 1:
        return chunk_paths, None
    hardware = [i for i, (_, encoder) in enumerate(found) if "nvenc" in encoder.lower()]
    if settings is None or not hardware:
        raise FramestyleError("the chunks were encoded with different codec parameters and "
                              "cannot be joined; re-run with --overwrite")
    software = replace(settings, encoder=SOFTWARE)
    joined = list(chunk_paths)
    for i in hardware:
        joined[i] = str(Path(workdir, f"reencoded-{i:05d}{CHUNK_SUFFIX}"))
        reencode_chunk(chunk_paths[i], joined[i], software)
    if len({_stream_parameters(path)[0] for path in joined}) > 1:
        raise FramestyleError("the chunks were encoded with different codec parameters and "
                              "cannot be joined, even after re-encoding the NVENC ones")
    return joined, (f"{len(hardware)} of {len(chunk_paths)} chunks encoded with NVENC were "
                    "re-encoded on the CPU to join the chunks of nodes without NVENC")


def _stream_parameters(path: str) -> tuple[bytes, str]:
    """A chunk's video codec parameters (extradata) and the encoder its stream names."""
    import av

    with av.open(path) as chunk:
        stream = chunk.streams.video[0]
        encoder = stream.metadata.get("ENCODER") or stream.metadata.get("encoder") or ""
        return bytes(stream.codec_context.extradata or b""), encoder


def _audio_sources(original: str, info: VideoInfo, fmt: OutputFormat,
                   workdir: str) -> list[tuple[str, int, str | None]]:
    """Per audio stream: the file and audio stream index to copy its packets from, and a note
    if it was re-encoded."""
    import ffmpeg

    sources = []
    for i, audio in enumerate(info.audio):
        target = fmt.audio_plan(audio.codec)
        if target is None:
            sources.append((original, i, None))
            continue
        path = str(Path(workdir, f"audio-{i}.mka"))
        options = {"acodec": AUDIO_ENCODERS[target], "b:a": f"{64 * audio.channels}k"}
        if target == "opus":
            options.update(ar=48000, mapping_family=1 if audio.channels > 2 else 0)
        # -copyts keeps the input's audio timestamps, so the A/V offset survives re-encoding
        graph = ffmpeg.input(original).output(path, map=f"0:a:{i}", format="matroska",
                                              **options).global_args("-copyts")
        run_ffmpeg(graph, f"re-encode audio stream {i} ({audio.codec}) to {target}")
        sources.append((path, 0, f"audio stream {i}: {audio.codec} re-encoded to {target} "
                                      f"(.{fmt.container.format} cannot carry {audio.codec})"))
    return sources


def _video_packets(chunk_paths: list[str], timeline: list[int], info: VideoInfo,
                   stream) -> Iterator:
    """Every chunk's video packets in order, each stamped with its input frame's time."""
    import av

    ends = timeline[1:] + [info.end_pts]
    shift = round(info.start_time / info.time_base)
    count = 0
    for path in chunk_paths:
        with av.open(path) as chunk:
            for packet in chunk.demux(chunk.streams.video[0]):
                if not packet.size:
                    continue
                if count >= len(timeline):
                    raise FramestyleError(f"the chunks hold more frames than the input's "
                                          f"{len(timeline)}")
                packet.stream = stream
                packet.time_base = info.time_base
                packet.pts = packet.dts = timeline[count] - shift
                packet.duration = max(1, ends[count] - timeline[count])
                count += 1
                yield packet
    if count != len(timeline):
        raise FramestyleError(f"the chunks hold {count} frames, the input {len(timeline)}")


def _copied(source, target, start_time: Fraction) -> Iterator:
    shift = round(start_time / Fraction(source.time_base))
    for packet in source.container.demux(source):
        if packet.size:
            if packet.pts is not None:
                packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = target
            yield packet


def _when(packet) -> Fraction:
    ts = packet.dts if packet.dts is not None else packet.pts
    return Fraction(ts or 0) * Fraction(packet.time_base)


def assemble_and_store(input_uri: str, input_info, output_uri: str, chunk_uris: list[str],
                       video: VideoInfo, timeline: list[int], fmt: OutputFormat, job_id: str,
                       preview: str | None = None,
                       settings: EncodeSettings | None = None) -> dict:
    """Fetch chunks, join them with the original audio, check the result, then store it marked
    with ``job_id`` (see ``finished_output``); with ``preview``, also store before/after stills
    and an animated preview under that prefix (``report.video_preview``)."""
    original = storage.media_url(input_uri)
    with tempdirs.scratch("assemble") as tmp:
        local_chunks = []
        for i, uri in enumerate(chunk_uris):
            if storage.is_s3(uri):
                path = str(Path(tmp, f"chunk-{i:05d}{CHUNK_SUFFIX}"))
                storage.storage_for(uri).download(uri, path)
                local_chunks.append(path)
            else:
                local_chunks.append(uri)
        out = str(Path(tmp, "output." + storage.basename(output_uri).rsplit(".", 1)[-1]))
        tags = {JOB_TAG: job_id, FRAMES_TAG: str(len(timeline))}
        result, notes = assemble(local_chunks, original, video, timeline, fmt, out, tmp, tags,
                                 settings)
        summary = {"frames": result.frames, "audio_streams": len(result.audio),
                   "audio_reencoded": notes}
        if preview:
            from .report import video_preview

            summary["preview"] = video_preview(original, video, out, result, preview)
        storage.storage_for(output_uri).upload(out, output_uri, metadata=tags)
    return summary


def finished_output(uri: str, job_id: str) -> dict | None:
    """What a finished output of job ``job_id`` at ``uri`` holds ({"frames": N}), or None when
    there is none: no file, another job's, or an older file without the mark. Reads S3 object
    metadata or the container's tags, never the video itself."""
    if storage.is_s3(uri):
        info = storage.storage_for(uri).stat(uri)
        tags = info.metadata if info else {}
    elif os.path.isfile(uri):
        tags = _container_tags(uri)
    else:
        return None
    if tags.get(JOB_TAG) != job_id:
        return None
    return {"frames": int(tags.get(FRAMES_TAG, 0))}


def _container_tags(path: str) -> dict[str, str]:
    import av

    try:
        with av.open(path) as container:
            return {k.lower(): v for k, v in container.metadata.items()}
    except (av.error.FFmpegError, OSError):
        return {}  # not a video we can read: not a finished output either
