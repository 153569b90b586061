"""One chunk, end to end on a worker: decode -> stylize -> encode -> upload.

Frames stream: a decoder thread reads ahead from ffmpeg, the model runs on batches, and an
encoder thread feeds ffmpeg, so decode and encode overlap the model instead of waiting on it. A
chunk never holds more than a few batches of frames in memory.
"""

from __future__ import annotations

import json
import sys
import queue
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterable, Iterator

from ..core import storage, tempdirs
from ..core.hashing import file_sha256, identity_hash
from ..core.storage import ObjectInfo
from ..models.hub import ModelRef
from .decode import iter_frames
from .encode import EncodeSettings, FrameEncoder
from .gpu_codecs import NO_GPU_CODECS, encoder_for, node_codecs
from .formats import CHUNK_SUFFIX
from .inference import InferenceOptions
from .plan import Chunk
from .probe import Seek, VideoInfo
from .temporal import blender_for, with_motion

# A chunk reports the frames it has written at most this often (and once more at its end). Each
# report is an object the actor stores and the driver fetches: one per batch cost a fast model
# (small frames; a GPU's batches of a few milliseconds) several per cent of its speed on Ray,
# and a progress bar gains nothing from more than a few updates a second.
PROGRESS_SECONDS = 0.25


@dataclass(frozen=True)
class ChunkTask:
    model: ModelRef
    inference: InferenceOptions
    input_uri: str
    input_info: ObjectInfo
    chunk: Chunk
    video: VideoInfo  # the input, without its timeline (``seek`` is all a chunk needs of it)
    seek: Seek | None  # how to land on the chunk's first decoded frame (decode.iter_frames)
    encode: EncodeSettings
    chunk_uri: str  # where the encoded chunk goes; its record sits beside it as .json
    temporal: float = 0.0  # strength of the temporal step; 0 stylizes each frame on its own
    deinterlace: str = "frame"
    hdr: str = "tonemap"
    nvdec: bool = True  # decode on the node's GPU where it can (--no-hardware-codecs: never)

    @property
    def record_uri(self) -> str:
        return record_uri(self.chunk_uri)


@dataclass(frozen=True)
class ChunkRecord:
    """Written after a chunk's upload; a chunk without a matching record is redone."""

    index: int
    frames: int
    size: int
    sha256: str


def record_uri(chunk_uri: str) -> str:
    return chunk_uri.rsplit(".", 1)[0] + ".json"


def read_record(chunk_uri: str) -> ChunkRecord | None:
    data = storage.storage_for(chunk_uri).get_bytes(record_uri(chunk_uri))
    if data is None:
        return None
    try:
        return ChunkRecord(**json.loads(data))
    except (ValueError, TypeError):
        return None  # a damaged record just means the chunk is redone


def held_cpus() -> int:
    """The whole CPUs this Ray actor was given (1 outside Ray or for a fraction)."""
    ray = sys.modules.get("ray")  # an actor has it imported; a process without it is no actor
    if ray is None or not ray.is_initialized() or \
            ray.get_runtime_context().get_actor_id() is None:
        return 1  # outside an actor (a driver, a benchmark): no assignment to read
    return max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))


class ChunkWorker:
    """Processes chunks one after another, keeping the model of the last chunk loaded: a pool
    of these serves the chunks of many videos. Used as a Ray actor (``scheduler``)."""

    def __init__(self, batch_size: int | None = None, threads: int | None = None):
        """``threads``: the network's own (onnxruntime's), for workers that share a process
        (``scheduler.run_chunks_here``); by default an actor's, which Ray sets to its CPUs."""
        import cv2

        # as many threads as the actor holds CPUs (one per CPU actor; a GPU actor's host share,
        # --cpus-per-gpu): OpenCV's default pool, one per core, would oversubscribe the node
        cpus = held_cpus()
        cv2.setNumThreads(cpus)
        self._batch_size, self._threads = batch_size, threads
        # ffmpeg's decoder and encoder too (left to themselves each takes every core of the
        # node, x264 1.5 threads a core, so a node of N one-CPU actors ran N x 1.5N threads),
        # and the threads the flow is computed on
        self._cpus = threads or cpus
        self._loaded: tuple[str, object] | None = None  # (model key, Stylizer)

    def ready(self) -> bool:
        """Answers once the actor runs: the scheduler gives a restarted actor work only then."""
        return True

    def stylizer_for(self, task: ChunkTask):
        """The task's model, loaded once and kept while the following chunks use it too."""
        from .onnx_stylizer import make_stylizer

        key = identity_hash({"model": task.model.identity, "run": task.inference.model_dump()})
        if self._loaded is None or self._loaded[0] != key:
            self._loaded = None  # free the previous model before loading the next
            self._loaded = (key, make_stylizer(task.model, task.inference,
                                                  threads=self._threads))
        return self._loaded[1]

    def blender_for(self, strength: float, device, pixels: int):
        """The temporal blend for frames of ``pixels`` pixels from a model on ``device``: on a
        GPU it runs on the GPU, since on the actor's CPUs it capped the actor
        (``temporal_torch``)."""
        return blender_for(strength, device, pixels)

    def process(self, task: ChunkTask) -> Iterator[int | ChunkRecord]:
        """Yield the number of frames written since the last count (every ``PROGRESS_SECONDS``
        at most, and at the end), then the chunk's record.

        Decoding starts ``chunk.warmup`` frames early (the plan has them only with the temporal
        step on, ``load_or_make_plan``): those frames are stylized and blended only to bring the
        temporal state to where the previous chunk left it, so the seam does not show; they are
        not written.
        """
        chunk = task.chunk
        stylizer = self.stylizer_for(task)
        on_gpu = stylizer.device.type == "cuda"
        batch_size = self._batch_size or (16 if on_gpu else 4)
        # NVDEC where this node has it; NVENC where the video was meant for it and this node
        # has it too (else the CPU encoder; assembly joins the two, gpu_codecs)
        codecs = node_codecs() if on_gpu else NO_GPU_CODECS
        settings = replace(task.encode, threads=self._cpus,
                           encoder=encoder_for(task.encode.codec, task.encode.encoder, codecs))
        source = storage.media_url(task.input_uri)  # read in place, never copied whole
        frames = iter_frames(source, task.video, chunk.decode_start, chunk.decode_frames,
                             (settings.width, settings.height), task.deinterlace, task.hdr,
                             seek=task.seek, name=task.input_uri,
                             hwaccel=task.nvdec and codecs.nvdec, threads=self._cpus)
        pixels = settings.width * settings.height
        blend = self.blender_for(task.temporal, stylizer.device, pixels) \
            if task.temporal > 0 else None
        # Flow needs only input frames: computing it on the read-ahead thread overlaps the model,
        # on as many threads as the actor holds CPUs. A blend on a GPU takes the flow at the size
        # it was computed at and scales it there.
        paired = with_motion(frames, full_size=blend.full_size_motion, workers=self._cpus) \
            if blend is not None else ((f, None) for f in frames)
        with tempdirs.scratch("chunk") as tmp:
            local = str(Path(tmp, f"{chunk.name}{CHUNK_SUFFIX}"))
            with FrameEncoder(local, settings) as encoder:
                writer = _BackgroundWriter(encoder.write)
                seen = unreported = 0
                reported_at = time.monotonic()
                try:
                    for batch in _batched(_read_ahead(paired, 2 * batch_size), batch_size):
                        stylized = stylizer([frame for frame, _ in batch])
                        if blend is not None:
                            stylized = [blend(s, m) for s, (_, m) in zip(stylized, batch)]
                        keep = stylized[max(0, chunk.warmup - seen):]
                        seen += len(batch)
                        writer.put_all(keep)
                        unreported += len(keep)
                        if unreported and time.monotonic() - reported_at >= PROGRESS_SECONDS:
                            yield unreported
                            unreported, reported_at = 0, time.monotonic()
                    if unreported:
                        yield unreported
                finally:
                    writer.finish()
            record = ChunkRecord(index=chunk.index, frames=encoder.frames,
                                 size=Path(local).stat().st_size, sha256=file_sha256(local))
            if record.frames != chunk.frames:
                raise RuntimeError(f"{chunk.name}: encoded {record.frames} of {chunk.frames} frames")
            target = storage.storage_for(task.chunk_uri)
            target.upload(local, task.chunk_uri, metadata={"sha256": record.sha256})
            target.put_bytes(json.dumps(asdict(record)).encode(), task.record_uri)
        yield record


def _batched(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


_DONE = object()


def _read_ahead(items: Iterator, depth: int) -> Iterator:
    """Iterate ``items`` on a thread, up to ``depth`` items ahead; re-raise its error here."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def pump() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as e:  # handed to the consumer, raised there
            q.put(e)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()
        if hasattr(items, "close"):
            items.close()


class _BackgroundWriter:
    """Calls ``write`` for each item on a thread so encoding overlaps the next batch."""

    def __init__(self, write, depth: int = 32):
        self._write = write
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._q.get()) is not _DONE:
            if self._error is None:
                try:
                    self._write(item)
                except BaseException as e:
                    self._error = e

    def put_all(self, items: Iterable) -> None:
        for item in items:
            if self._error is not None:
                raise self._error
            self._q.put(item)

    def finish(self) -> None:
        self._q.put(_DONE)
        self._thread.join()
        if self._error is not None:
            raise self._error
