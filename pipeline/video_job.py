"""The video job on Ray: probe, plan, stylize chunks on an actor pool, assemble, resume.

Finished chunks live under a work prefix beside the output (``.framestyle/<job-id>/``); the job
id is a hash of the input's identity and every setting that changes the pixels, so re-running the
same command finds them again and only does what is missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, replace

from . import storage
from .assemble import assemble_and_store
from .colour import output_colour
from .chunk_worker import ChunkRecord, ChunkTask, ChunkWorker, read_record
from .cluster import connect, worker_pool
from .decode import (DEINTERLACE_MODES, decode_window, fields_per_frame, output_size,
                     shown_timeline)
from .encode import EncodeSettings
from .errors import InputError
from .ffmpeg_exe import ffmpeg_exe
from .formats import CHUNK_SUFFIX, output_format
from .plan import (DEFAULT_CHUNK_SECONDS, DEFAULT_OVERLAP_FRAMES, Chunk, gop_size, plan_chunks,
                   plan_from_json, plan_to_json)
from .inference import InferenceOptions
from .probe import Seek, VideoInfo, probe
from .progress import progress_bar
from .styles import StyleRef
from .temporal import DEFAULT_STRENGTH

# Bump when a change alters the pixels a job writes, so old chunks are not reused.
PIPELINE_VERSION = 2
HDR_MODES = ("tonemap",)  # keeping HDR through the network is a later option
WORK_DIR = ".framestyle"


@dataclass(frozen=True)
class VideoJob:
    input: str
    output: str
    style: StyleRef
    height: int | None = None
    crf: int = 20
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS
    overlap: int = DEFAULT_OVERLAP_FRAMES
    temporal: float = DEFAULT_STRENGTH
    inference: InferenceOptions = InferenceOptions()
    codec: str | None = None  # None: the output container's default
    deinterlace: str = "frame"
    hdr: str = "tonemap"


def run_video_job(job: VideoJob, address: str | None = None, progress: bool = True) -> dict:
    """Run ``job`` to completion and return its summary (what ``--json`` prints)."""
    started = time.monotonic()
    if job.height is not None and job.height < 2:
        raise InputError(f"--height must be at least 2, got {job.height}")
    if not 0 <= job.crf <= 51:
        raise InputError(f"--crf must be in 0..51, got {job.crf}")
    if job.inference.max_tile is not None and job.inference.max_tile < 64:
        raise InputError(f"--max-tile must be at least 64, got {job.inference.max_tile}")
    if not 0 <= job.temporal < 1:
        raise InputError(f"--temporal must be in [0, 1), got {job.temporal}")
    if job.deinterlace not in DEINTERLACE_MODES:
        raise InputError(f"--deinterlace must be one of {', '.join(DEINTERLACE_MODES)}")
    if job.hdr not in HDR_MODES:
        raise InputError(f"--hdr must be one of {', '.join(HDR_MODES)}")
    fmt = output_format(job.output, job.codec)
    ffmpeg_exe()  # a FRAMESTYLE_FFMPEG we cannot use is reported before any work
    input_info = storage.require(job.input)
    storage.storage_for(job.output).check_writable(job.output)
    video = probe(storage.fetch(job.input, input_info), name=job.input)
    timeline = shown_timeline(video, job.deinterlace)
    rate = video.fps * fields_per_frame(video, job.deinterlace)

    width, height = output_size(video, job.height)
    settings = EncodeSettings(width=width, height=height, fps=rate, gop=gop_size(rate),
                              crf=job.crf, codec=fmt.codec_name,
                              colour=output_colour(video.colour, job.hdr))
    work = work_prefix(job, input_info)
    connect(address)
    chunks = load_or_make_plan(work, job, len(timeline), rate)
    slim = replace(video, pts=(), keyframes=())  # a task needs only its Seek, not the timeline
    tasks = [ChunkTask(input_uri=job.input, input_info=input_info, chunk=c, video=slim,
                       seek=chunk_seek(video, c, job), encode=settings,
                       chunk_uri=storage.join(work, f"{c.name}{CHUNK_SUFFIX}"),
                       temporal=job.temporal, deinterlace=job.deinterlace, hdr=job.hdr)
             for c in chunks]
    reusable = {t.chunk.index for t in tasks if is_finished(t)}
    todo = [t for t in tasks if t.chunk.index not in reusable]
    if reusable:
        print(f"framestyle: reusing {len(reusable)} of {len(tasks)} finished chunks",
              file=sys.stderr)

    done_frames = sum(t.chunk.frames for t in tasks if t.chunk.index in reusable)
    bar = progress_bar(len(timeline), "frame", storage.basename(job.input), progress,
                       initial=done_frames)
    try:
        _run_chunks(todo, job.style, bar.update, job.inference)
    finally:
        bar.close()
    result = _assemble_remote(job, [t.chunk_uri for t in tasks], input_info, video, timeline,
                              fmt)
    storage.storage_for(work).delete_prefix(work)
    seconds = time.monotonic() - started
    return {
        "input": job.input, "output": job.output,
        "frames_in": video.frames, "frames_out": result["frames"],
        "chunks": len(tasks), "chunks_reused": len(reusable),
        "seconds": round(seconds, 3), "fps": round(len(timeline) / seconds, 3),
        "codec": fmt.codec_name, "audio_streams": result["audio_streams"],
        "audio_reencoded": result["audio_reencoded"],
    }


def chunk_seek(video: VideoInfo, chunk: Chunk, job: VideoJob) -> Seek | None:
    """How to land on the first frame a chunk decodes (its warm-up frames included)."""
    warmup = chunk.warmup if job.temporal > 0 else 0
    first_input, _ = decode_window(video, chunk.start - warmup, job.deinterlace)
    return video.seek_point(first_input)


def work_prefix(job: VideoJob, input_info: storage.ObjectInfo) -> str:
    identity = {
        "input": job.input if storage.is_s3(job.input) else os.path.abspath(job.input),
        "input_version": input_info.version, "input_size": input_info.size,
        "style": job.style.weights, "height": job.height, "crf": job.crf,
        "chunk_seconds": job.chunk_seconds, "overlap": job.overlap, "temporal": job.temporal,
        "dtype": job.inference.dtype, "max_tile": job.inference.max_tile,
        "codec": output_format(job.output, job.codec).codec_name,
        "deinterlace": job.deinterlace, "hdr": job.hdr, "pipeline": PIPELINE_VERSION,
    }
    job_id = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return storage.join(storage.parent(job.output), WORK_DIR, job_id)


def load_or_make_plan(work: str, job: VideoJob, frames: int, rate) -> list[Chunk]:
    """The plan a previous run of this job stored, else a new one sized to this cluster.

    Storing it lets a resumed job reuse chunks even when the cluster has changed size since.
    """
    uri = storage.join(work, "plan.json")
    store = storage.storage_for(uri)
    stored = store.get_bytes(uri)
    chunks = plan_from_json(stored, frames) if stored else None
    if chunks is None:
        workers, _ = worker_pool()
        chunks = plan_chunks(frames, rate, job.chunk_seconds, job.overlap, workers)
        store.put_bytes(plan_to_json(chunks), uri)
    return chunks


def is_finished(task: ChunkTask) -> bool:
    """A chunk counts as done only if its record matches the stored object's size and hash."""
    record = read_record(task.chunk_uri)
    if record is None or record.frames != task.chunk.frames:
        return False
    info = storage.storage_for(task.chunk_uri).stat(task.chunk_uri)
    if info is None or info.size != record.size:
        return False
    if storage.is_s3(task.chunk_uri):
        return info.metadata.get("sha256") == record.sha256
    return storage.file_sha256(task.chunk_uri) == record.sha256


def _run_chunks(tasks: list[ChunkTask], style: StyleRef, on_frames,
                inference: InferenceOptions = InferenceOptions()) -> list[ChunkRecord]:
    """Process ``tasks`` on a pool of stylizer actors; one driver thread per actor keeps it fed.

    After the first failure no new chunk starts; chunks in flight finish (and are kept for the
    next run), then the error is raised.
    """
    import ray

    if not tasks:
        return []
    workers, options = worker_pool()
    count = min(workers, len(tasks))
    actor_cls = ray.remote(ChunkWorker).options(**options)
    actors = [actor_cls.remote(style, inference) for _ in range(count)]
    pending, done, errors = deque(tasks), [], []
    lock = threading.Lock()

    def feed(actor) -> None:
        while True:
            with lock:
                if errors or not pending:
                    return
                task = pending.popleft()
            try:
                for ref in actor.process.remote(task):
                    item = ray.get(ref)
                    if isinstance(item, ChunkRecord):
                        with lock:
                            done.append(item)
                    else:
                        on_frames(item)
            except Exception as e:  # noqa: BLE001 - re-raised below on the driver thread
                with lock:
                    errors.append(_unwrap(e))
                return

    threads = [threading.Thread(target=feed, args=(a,), daemon=True) for a in actors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a in actors:
        ray.kill(a)
    if errors:
        raise errors[0]
    return done


def _assemble_remote(job: VideoJob, chunk_uris: list[str], input_info, video: VideoInfo,
                     timeline: list[int], fmt) -> dict:
    import ray

    # assemble_and_store lives in a module that does not import torch: the task's fresh worker
    # process starts in a fraction of the time.
    task = ray.remote(num_cpus=1)(assemble_and_store)
    try:
        return ray.get(task.remote(job.input, input_info, job.output, chunk_uris, video, timeline,
                                   fmt))
    except Exception as e:  # noqa: BLE001
        raise _unwrap(e) from None


def _unwrap(error: Exception) -> Exception:
    """The user-facing exception inside a Ray task error, if there is one."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, Exception) else error
