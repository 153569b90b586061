"""The video job on Ray: probe, plan, stylize chunks on an actor pool, assemble, resume.

Finished chunks live under a work prefix beside the output (``.framestyle/<job-id>/``); the job
id is a hash of the input's identity, the model's content hash, the output and every setting that
changes the pixels, so re-running the same command finds them again and only does what is
missing, and no other job (another model, another output) ever reuses them. A lease in the work
prefix refuses a second run of the same job while the first is alive. The finished output carries
the id (a container tag, and S3 object metadata), so running a finished job again takes its
output as it is, in a second, unless ``overwrite`` says to redo it.

``run_video_jobs`` runs many videos on one pool of loaded models (``scheduler``); each video is
assembled as soon as its own chunks are in.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from typing import Callable, Literal

from pydantic import Field, PositiveFloat, model_validator

from ..core import storage
from ..core.errors import (JOB_FAULTS, FieldError, FramestyleError, InputError, JobBusyError,
                           as_user_error, first_line)
from ..core.hashing import file_sha256, identity_hash
from ..core.lease import Lease
from ..core.spec import Spec
from ..models import hub
from ..models.hub import ModelRef
from .assemble import assemble_and_store, finished_output
from .chunk_worker import ChunkTask, read_record
from .cluster import (check_shared, connect, joins_a_cluster, local_cpus, only_this_node,
                      worker_pool)
from .colour import output_colour
from .decode import (DEINTERLACE_MODES, decode_window, fields_per_frame, output_size,
                     shown_timeline)
from .encode import EncodeSettings
from .ffmpeg_exe import ffmpeg_exe
from .gpu_codecs import NVENC, NodeCodecs, encoder_for, gpu_node_codecs, node_codecs
from .formats import CHUNK_SUFFIX, VIDEO_CODECS, OutputFormat, output_format
from .inference import InferenceOptions
from .plan import (DEFAULT_CHUNK_SECONDS, DEFAULT_OVERLAP_FRAMES, Chunk, gop_size, plan_chunks,
                   plan_from_json, plan_to_json)
from .probe import Seek, VideoInfo, probe
from .progress import progress_bar
from .scheduler import run_chunks, run_chunks_here, unwrap
from .style_image import resolve_style
from .temporal import DEFAULT_STRENGTH

# Bump when a change alters the pixels a job writes, so old chunks are not reused.
# 3: contrast-preserving temporal step; 4: deviation budget, detail target; 5: HEVC chunks
# without x265's settings in their headers (old ones would not join new ones); 6: the budget
# spent on the whole correction; 7: over the budget, detail restored only to a sharpness share
PIPELINE_VERSION = 7
HDR_MODES = ("tonemap",)  # keeping HDR through the network is a later option
WORK_DIR = ".framestyle"


# A job of at most this many frames, on a machine with no GPU and no cluster to join, runs its
# chunks on threads of this process (``scheduler.run_chunks_here``): a fresh local Ray costs
# about 6 s on 2 cores before the first frame and after the last (its start, the actors'
# processes and imports, its shutdown), a third of a 240-frame 640x360 job (the whole command
# 17.1 s on Ray, 11.2-11.6 s in this process, 2026-11-28). 1,500 frames take over a minute
# here at 360p, several at 1080p, and Ray's start-up is then a tenth or less of it, while its
# actors bring what threads do not: a worker that dies costs its chunk, not the command.
IN_PROCESS_MAX_FRAMES = 1500
# videos assembled at once on the driver's threads: assembly mostly waits on storage (an S3
# output downloads its chunks and uploads the result), so a bulk job of short videos on a GPU
# must not queue its videos behind one thread while the chunks come in faster
ASSEMBLY_THREADS = 4
DEFAULT_MAX_FRAME_MEGAPIXELS = 40  # 8K UHD (7680x4320) is 33.2
DEFAULT_MAX_DURATION = 6 * 3600  # seconds: a feature film and then some


class VideoSettings(Spec):
    """How to stylize videos: what one video and a batch of them share. Constructing it
    validates every field (``FieldError``)."""

    style: str = Field(min_length=1)  # anything ``style_image.resolve_style`` takes
    strength: float = Field(1.0, ge=0, le=1)  # of the stylization, blended with the input
    preserve_color: bool = False  # the stylized luminance with the input's colours
    arch: str | None = None  # for checkpoints whose keys do not say it
    trust_code: bool = False  # allow TorchScript programs
    height: int | None = Field(None, ge=2)
    crf: int = Field(20, ge=0, le=51)
    chunk_seconds: float = Field(DEFAULT_CHUNK_SECONDS, gt=0)
    overlap: int = Field(DEFAULT_OVERLAP_FRAMES, ge=0)
    temporal: float = Field(DEFAULT_STRENGTH, ge=0, lt=1)
    inference: InferenceOptions = InferenceOptions()
    codec: Literal[tuple(VIDEO_CODECS)] | None = None  # None: the output container's default
    deinterlace: Literal[DEINTERLACE_MODES] = "frame"
    hdr: Literal[HDR_MODES] = "tonemap"
    overwrite: bool = False  # redo an output that this very job finished before
    # NVDEC/NVENC on GPU nodes whose driver and ffmpeg have them (gpu_codecs); off: CPU codecs
    hardware_codecs: bool = True
    # where the chunks run: on Ray, or on threads of this process (``runs_in_process``); the
    # output is the same either way, so this is not part of the job's identity
    executor: Literal["auto", "ray", "process"] = "auto"
    # Limits that protect a shared cluster: a video over them is refused before any work
    max_frame_megapixels: PositiveFloat = DEFAULT_MAX_FRAME_MEGAPIXELS  # one frame, as stored
    max_duration: PositiveFloat = DEFAULT_MAX_DURATION  # seconds


class VideoJob(VideoSettings):
    """One video to stylize, and how."""

    input: str = Field(min_length=1)
    output: str = Field(min_length=1)  # a file, or a folder/prefix ending in / (IN-STYLE.mp4)
    preview: str | None = None  # a prefix for before/after stills and an animated preview

    @model_validator(mode="before")
    @classmethod
    def _output_in_folder(cls, data):
        """OUT naming a folder or prefix becomes ``OUT/<input stem>-<style>.mp4``."""
        if isinstance(data, dict) and all(isinstance(data.get(k), str)
                                          for k in ("input", "output", "style")):
            output = data["output"]
            if output.endswith("/") or (not storage.is_s3(output) and os.path.isdir(output)):
                stem = storage.basename(data["input"]).rsplit(".", 1)[0]
                data = {**data, "output": storage.join(
                    output, f"{stem}-{hub.style_slug(data['style'])}.mp4")}
        return data

    @model_validator(mode="after")
    def _output_is_not_the_input(self):
        output_format(self.output, self.codec)  # a container or codec we cannot write
        if storage.contains(self.input, self.output):
            raise FieldError("output", f"{self.output} is the input video: refusing to "
                             "overwrite it")
        return self


DONE, SKIPPED, FAILED = "done", "skipped", "failed"


@dataclass(eq=False)
class _Video:
    """One job on its way through ``run_video_jobs``; ``status`` is set when it ends."""

    job: VideoJob
    model: ModelRef | None = None
    input_info: storage.ObjectInfo | None = None
    job_id: str = ""  # the identity that a finished output carries (``work_prefix``)
    info: VideoInfo | None = None
    timeline: list[int] = field(default_factory=list)
    fmt: OutputFormat | None = None
    settings: EncodeSettings | None = None
    work: str = ""
    tasks: list[ChunkTask] = field(default_factory=list)
    todo: list[ChunkTask] = field(default_factory=list)  # the tasks not finished before
    reused_chunks: set[int] = field(default_factory=set)
    retried: int = 0
    remaining: int = 0  # todo chunks not done yet
    lease: Lease | None = None
    status: str = ""
    error: BaseException | None = None
    output: dict = field(default_factory=dict)  # what assembly (or the finished output) says
    seconds: float = 0.0
    executor: str | None = None  # where its chunks ran: "ray" or "process"


def run_video_job(job: VideoJob, address: str | None = None, progress: bool = True,
                  on_frames: Callable[[int, int], None] = lambda done, total: None) -> dict:
    """Run ``job`` to completion and return its summary (what ``--json`` prints); a failure is
    raised. ``on_frames(done, total)`` follows the frames stylized, as the progress bar does."""
    (video,) = _run([job], address, progress, on_frames=on_frames)
    if video.error is not None:
        raise video.error
    return _summary(video)


def run_video_jobs(jobs: list[VideoJob], address: str | None = None, progress: bool = True,
                   on_end: Callable[[int, dict], None] = lambda index, summary: None
                   ) -> list[dict]:
    """Run ``jobs`` on one pool of stylizer actors; their summaries, in order.

    Videos fail independently: one that cannot be read, stylized or assembled ends with status
    "failed" and its reason, and the others go on. ``on_end(index, summary)`` is called on this
    thread as each video ends (done, skipped as finished before, or failed).
    """
    return [_summary(v) for v in _run(jobs, address, progress,
                                      lambda i, v: on_end(i, _summary(v)))]


def _run(jobs: list[VideoJob], address: str | None, progress: bool,
         on_end: Callable[[int, _Video], None] = lambda index, video: None,
         on_frames: Callable[[int, int], None] = lambda done, total: None) -> list[_Video]:
    started = time.monotonic()
    ffmpeg_exe()  # a FRAMESTYLE_FFMPEG we cannot use is reported before any work
    videos = [_Video(job) for job in jobs]
    index = {id(v): i for i, v in enumerate(videos)}

    def end(video: _Video, status: str, error: BaseException | None = None) -> None:
        video.status, video.error = status, error
        video.seconds = time.monotonic() - started
        if video.lease is not None:
            video.lease.release()  # stop renewing before the prefix goes
        if error is not None and isinstance(fault := as_user_error(error), JOB_FAULTS):
            raise fault  # the store or a disk, not this video: the other videos would fail too
        if status == DONE:
            storage.storage_for(video.work).delete_prefix(video.work)
        on_end(index[id(video)], video)

    models: dict[tuple, ModelRef] = {}
    for video in videos:  # every video checked before any work starts anywhere
        try:
            _prepare(video, models)
        except FramestyleError as e:
            end(video, FAILED, e)
            continue
        if video.output:
            end(video, SKIPPED)
    for video in _live(videos):  # a path some node cannot see: refused before any work
        try:
            check_shared(address, [("IN", video.job.input), ("OUT", video.job.output),
                                   ("--preview", video.job.preview),
                                   ("--style", video.model.source)])
        except InputError as e:
            end(video, FAILED, e)
    with ExitStack() as held:  # the videos' leases, and the assembly thread if any
        for video in _live(videos):  # before Ray starts: a run that must wait is told at once
            try:
                video.lease = held.enter_context(Lease(video.work))
            except JobBusyError as e:
                end(video, FAILED, e)
        live = _live(videos)
        if not live:
            return videos
        here = runs_in_process(jobs[0].executor, address, sum(len(v.timeline) for v in live))
        if here:
            workers = local_cpus() if _device_type() == "cpu" else 1  # one GPU replica
            _choose_encoders(live, node_codecs)  # this machine's GPU, if it has one
        else:
            connect(address)
            workers = worker_pool()[0]
            _choose_encoders(live, gpu_node_codecs)
        for video in live:
            video.executor = "process" if here else "ray"
            _make_tasks(video, workers, shared_process=here)
        total = sum(len(v.timeline) for v in live)
        done = sum(t.chunk.frames for v in live for t in v.tasks
                   if t.chunk.index in v.reused_chunks)
        name = storage.basename(jobs[0].input) if len(jobs) == 1 else f"{len(jobs)} videos"
        bar = progress_bar(total, "frame", name, progress, initial=done)
        counted = [done]  # the bar's own count stays put when it is disabled
        on_frames(done, total)

        def frames_done(n: int) -> None:
            bar.update(n)
            counted[0] += n
            on_frames(counted[0], bar.total)
        by_task = {id(t): v for v in live for t in v.todo}
        assembling: dict = {}  # Future -> video
        # videos are assembled on a thread of their own where this machine is all there is
        # (chunks here, or a one-node Ray), else by a Ray task of their own: either way the
        # driver thread goes on handing chunks to the workers meanwhile
        assembler = held.enter_context(ThreadPoolExecutor(ASSEMBLY_THREADS)) \
            if here or only_this_node() else None

        def collect(timeout: float | None) -> None:
            """End the videos whose assembly has finished (all of them with timeout None)."""
            while assembling:
                ready, _ = wait(list(assembling), timeout=timeout, return_when=FIRST_COMPLETED)
                if not ready:
                    return
                for future in ready:
                    video = assembling.pop(future)
                    try:
                        video.output = future.result()
                    except Exception as e:  # noqa: BLE001 - this video's failure, reported
                        end(video, FAILED, unwrap(e))
                    else:
                        end(video, DONE)

        def assemble(video: _Video) -> None:
            future = (assembler.submit(assemble_and_store, *_assembly_arguments(video))
                      if assembler else _assemble(video).future())
            assembling[future] = video

        def chunk_done(task: ChunkTask, record) -> None:
            video = by_task[id(task)]
            video.remaining -= 1
            if video.remaining == 0 and not video.status:
                assemble(video)
            collect(timeout=0)

        def chunk_failed(task: ChunkTask, error: BaseException, dropped: list) -> None:
            video = by_task[id(task)]
            bar.total -= sum(t.chunk.frames for t in dropped)  # never to be stylized now
            bar.refresh()
            if not video.status:
                end(video, FAILED, error)

        for video in live:
            if video.remaining == 0:
                assemble(video)
        try:
            todo = [t for v in live for t in v.todo]
            callbacks = dict(on_frames=lambda task, n: frames_done(n), on_done=chunk_done,
                             on_failed=chunk_failed, group=lambda task: id(by_task[id(task)]))
            report = (run_chunks_here(todo, workers, **callbacks) if here
                      else run_chunks(todo, **callbacks))
            for task in report.retried:
                by_task[id(task)].retried += 1
            collect(timeout=None)
        finally:
            bar.close()
    return videos


def runs_in_process(executor: str, address: str | None, frames: int) -> bool:
    """Whether the chunks run on threads of this process rather than on Ray (``executor``:
    auto, ray or process). auto: only a job of at most ``IN_PROCESS_MAX_FRAMES`` frames, with
    no cluster to join, no Ray already running in this process (which it would use) and no GPU
    (whose actors hold the hardware codecs' choices and the host's CPU share)."""
    if executor != "auto":
        return executor == "process"
    return (frames <= IN_PROCESS_MAX_FRAMES and not joins_a_cluster(address)
            and _device_type() == "cpu")


def _device_type() -> str:
    """Where a stylizer in this process would run ("cpu", "cuda"); imported late, so that the
    command's --help never loads onnxruntime (nor torch, where a GPU may be there)."""
    from .onnx_stylizer import device_type

    return device_type()


def _live(videos: list[_Video]) -> list[_Video]:
    return [v for v in videos if not v.status]


def _summary(video: _Video) -> dict:
    """What a run says about one video (the ``--json`` summary, a manifest entry)."""
    job, info = video.job, video.info
    frames = video.output.get("frames", 0)
    return {
        "input": job.input, "output": job.output, "style": job.style, "status": video.status,
        "error": first_line(video.error) if video.error is not None else None,
        "model_sha256": video.model.sha256 if video.model else None, "job_id": video.job_id,
        "frames_in": info.frames if info else None, "frames_out": frames,
        "chunks": len(video.tasks), "chunks_reused": len(video.reused_chunks),
        "chunks_retried": video.retried, "executor": video.executor,
        "seconds": round(video.seconds, 3),
        "fps": round(frames / video.seconds, 3) if video.status == DONE and video.seconds else 0.0,
        "codec": video.fmt.codec_name if video.fmt else None,
        "audio_streams": video.output.get("audio_streams", 0),
        "audio_reencoded": video.output.get("audio_reencoded", []),
        "preview": video.output.get("preview"),
    }


def _prepare(video: _Video, models: dict) -> None:
    """Everything checked and probed on the driver, before any work prefix is written; an
    output this very job finished before is taken as it is (``video.output`` is set)."""
    job = video.job
    key = (job.style, job.arch, job.trust_code, job.strength, job.preserve_color)
    if key not in models:
        models[key] = resolve_style(job.style, arch=job.arch, trust_code=job.trust_code,
                                    strength=job.strength, preserve_color=job.preserve_color)
    video.model = model = models[key]
    video.fmt = fmt = output_format(job.output, job.codec)
    video.input_info = storage.require(job.input)
    video.job_id = job_identity(job, model, video.input_info)
    video.work = work_prefix(job, model, video.input_info)
    if not job.overwrite:
        finished = finished_output(job.output, video.job_id)
        if finished is not None:
            video.output = finished
            return
    storage.storage_for(job.output).check_writable(job.output)
    video.info = info = probe(storage.media_url(job.input), name=job.input)
    _check_limits(info, job)
    video.timeline = shown_timeline(info, job.deinterlace)
    rate = info.fps * fields_per_frame(info, job.deinterlace)
    width, height = output_size(info, job.height)
    video.settings = EncodeSettings(width=width, height=height, fps=rate, gop=gop_size(rate),
                                    crf=job.crf, codec=fmt.codec_name,
                                    colour=output_colour(info.colour, job.hdr))


def _choose_encoders(videos: list[_Video], gpu_codecs: Callable[[], NodeCodecs]) -> None:
    """NVENC for the videos that allow hardware codecs, where the GPUs the chunks run on can
    encode their codec (``gpu_codecs``: asked once, of a GPU node of the cluster or of this
    machine); each chunk's own node has the last word."""
    if not any(v.job.hardware_codecs for v in videos):
        return
    gpu = gpu_codecs()
    for video in videos:
        if video.job.hardware_codecs:
            encoder = encoder_for(video.settings.codec, NVENC, gpu)
            video.settings = replace(video.settings, encoder=encoder)


def _check_limits(info: VideoInfo, job: VideoJob) -> None:
    megapixels = info.width * info.height / 1e6
    if megapixels > job.max_frame_megapixels:
        raise InputError(f"{job.input}: {info.width}x{info.height} frames are {megapixels:.3g} "
                         f"megapixels, over the {job.max_frame_megapixels:g} MP limit "
                         "(--max-frame-megapixels)")
    if info.duration > job.max_duration:
        raise InputError(f"{job.input}: {info.duration:,.0f} s long, over the "
                         f"{job.max_duration:,g} s limit (--max-duration)")


def _make_tasks(video: _Video, workers: int, shared_process: bool) -> None:
    """The video's chunk tasks for ``workers`` (threads of this process if
    ``shared_process``, whose stylizers share its memory; else Ray actors)."""
    job, info = video.job, video.info
    inference = job.inference.sharing_process(workers) if shared_process else job.inference
    chunks = load_or_make_plan(video.work, job, len(video.timeline), video.settings.fps, workers)
    slim = replace(info, pts=(), keyframes=())  # a task needs only its Seek, not the timeline
    video.tasks = [ChunkTask(model=video.model, inference=inference, input_uri=job.input,
                             input_info=video.input_info, chunk=c, video=slim,
                             seek=chunk_seek(info, c, job), encode=video.settings,
                             chunk_uri=storage.join(video.work, f"{c.name}{CHUNK_SUFFIX}"),
                             temporal=job.temporal, deinterlace=job.deinterlace, hdr=job.hdr,
                             nvdec=job.hardware_codecs)
                   for c in chunks]
    video.reused_chunks = {t.chunk.index for t in video.tasks if is_finished(t)}
    video.todo = [t for t in video.tasks if t.chunk.index not in video.reused_chunks]
    video.remaining = len(video.todo)
    if video.reused_chunks:
        print(f"framestyle: {storage.basename(job.input)}: reusing {len(video.reused_chunks)} "
              f"of {len(video.tasks)} finished chunks", file=sys.stderr)


def chunk_seek(video: VideoInfo, chunk: Chunk, job: VideoJob) -> Seek | None:
    """How to land on the first frame a chunk decodes (its warm-up frames included)."""
    first_input, _ = decode_window(video, chunk.decode_start, job.deinterlace)
    return video.seek_point(first_input)


def job_identity(job: VideoJob, model: ModelRef, input_info: storage.ObjectInfo) -> str:
    """The job's id: a hash of everything that decides the output's content (the input's
    identity, the model's, the output, every pixel setting). It names the work prefix
    (``.framestyle/<id>`` beside the output) and is written into the finished output."""
    identity = {
        "input": storage.canonical(job.input), "input_version": input_info.version,
        "input_size": input_info.size, "model": model.identity,
        "output": storage.canonical(job.output), "height": job.height, "crf": job.crf,
        "chunk_seconds": job.chunk_seconds, "overlap": job.overlap, "temporal": job.temporal,
        "dtype": job.inference.dtype, "max_tile": job.inference.max_tile,
        "codec": output_format(job.output, job.codec).codec_name,
        "deinterlace": job.deinterlace, "hdr": job.hdr, "pipeline": PIPELINE_VERSION,
    }
    return identity_hash(identity)


def work_prefix(job: VideoJob, model: ModelRef, input_info: storage.ObjectInfo) -> str:
    """Where the job's chunks live: ``.framestyle/<job id>`` beside the output."""
    return storage.join(storage.parent(job.output), WORK_DIR, job_identity(job, model, input_info))


def load_or_make_plan(work: str, job: VideoJob, frames: int, rate, workers: int) -> list[Chunk]:
    """The plan a previous run of this job stored, else a new one for ``workers``.

    Storing it lets a resumed job reuse chunks even when the cluster has changed size since.
    """
    uri = storage.join(work, "plan.json")
    store = storage.storage_for(uri)
    stored = store.get_bytes(uri)
    chunks = plan_from_json(stored, frames) if stored else None
    if chunks is None:
        # warm-up frames only feed the temporal step: the plan is the one place that says so
        overlap = job.overlap if job.temporal > 0 else 0
        chunks = plan_chunks(frames, rate, job.chunk_seconds, overlap, workers)
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
    return file_sha256(task.chunk_uri) == record.sha256


def _assemble(video: _Video):
    """Start assembling ``video`` from its chunks on the cluster; the task's ObjectRef (whose
    ``future()`` the driver waits on, as on a thread's)."""
    import ray

    # assemble_and_store lives in a module that does not import torch: the task's fresh worker
    # process starts in a fraction of the time. It asks for no CPU: it mostly copies packets, and
    # must not wait behind the stylizer actors holding every CPU while other videos still run.
    task = ray.remote(num_cpus=0)(assemble_and_store)
    return task.remote(*_assembly_arguments(video))


def _assembly_arguments(video: _Video) -> tuple:
    job = video.job
    return (job.input, video.input_info, job.output, [t.chunk_uri for t in video.tasks],
            video.info, video.timeline, video.fmt, video.job_id, job.preview, video.settings)
