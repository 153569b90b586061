"""The image job on Ray Data: read -> decode -> stylize -> encode -> write, streaming.

    source units --read+decode (CPU actors)--> pixels --stylize (model actors)--> pixels
                 --encode+write (CPU actors)--> one object per image, plus a status row

Ray Data streams blocks between the stages with backpressure, so only a bounded window of images
is in memory (or the object store) at any time however large the input; archives are read as
streams (``image_source``). Every row carries a ``status``: an image that fails at any stage
becomes a "failed" row with a reason and flows on to the report instead of stopping the job.
Finished images are skipped on a re-run (``image_sink``). A small local job runs the same stages
in this process instead (``runs_in_process``), where Ray's start-up would outweigh the work.
"""

from __future__ import annotations

import io
import json
import logging
import queue
import sys
import time
import warnings
from collections import defaultdict
from typing import Iterator, Literal

import numpy as np
from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from ..core import storage
from ..core.errors import FieldError, first_line, worker_lost
from ..core.hashing import identity_hash
from ..core.spec import Spec
from ..models.hub import ModelRef
from . import cluster
from .cluster import check_shared, connect, worker_pool
from .image_decode import DEFAULT_MAX_MEGAPIXELS, Animation, ImageError, Metadata, decode_image
from .image_encode import OUTPUT_FORMATS, encode_image, output_format
from .image_sink import Destination, pack_archive, write_failures, write_image
from .image_source import ArchiveLimits, SourceUnit, read_guarded, resolve_sources, source_overlaps
from .inference import IMAGE_CPUS_PER_GPU, InferenceOptions
from .progress import progress_bar
from .style_image import resolve_style
from .temporal import DEFAULT_STRENGTH

OK, FAILED, SKIPPED = "ok", "failed", "skipped"
IMAGES_VERSION = 2  # bump when a change alters what the job writes for the same settings
PREVIEW_IMAGES, PREVIEW_SIDE = 6, 256
STYLIZE_BATCH = 8  # images per actor call; same-size images within it run as one tensor
# Source units per read call, and images per block leaving it (one block feeds one stylizer
# call). Fewer, larger calls keep Ray's per-call work (scheduling, object store, stats) off the
# CPUs the model needs.
READ_BATCH = STYLIZE_BATCH
MAX_BATCH_PIXELS = 8 * 2**20  # per stylizer call; it splits them further to its memory budget
# On a CPU-only cluster each stylizer actor takes most of a CPU, leaving the rest to the
# read/decode and encode/write stages; with whole CPUs for the stylizers those would wait.
STYLIZER_CPU_SHARE = 0.75
IO_CPU_SHARE = 0.25
# A job of plain files adding up to at most this many bytes, with no cluster to join, runs in
# this process (the same stages, on a thread per CPU: ``_rows_in_process``). A fresh local Ray
# costs about 10 s here before the first image and after the last (its start, three actor pools'
# processes and imports, its shutdown), and on one machine its stages are slower than threads
# even past that (blocks through the object store): 320 photos of 640x480 (47 MB), the whole
# command, 16.1-17.1 s in this process against 27.9-29.0 s on Ray (2 cores, 2026-11-28). What
# Ray brings is what threads do not: a decoder that crashes its process costs one block, not the
# command. Bytes, not files, measure the work (pixels, to within the format's compression):
# 128 MiB is a minute or two of the built-in network on 2 cores for JPEG photos (0.2-0.35 bytes
# a pixel: about 40 of 12 MP or 900-1,400 of 640x480) and less for PNGs. Larger jobs, archives
# (their members are unknown until read) and any job joining a cluster run on Ray Data.
IN_PROCESS_MAX_BYTES = 128 * 2**20
# Ray Data restarts a dead actor and retries its calls on it without end by default: an input
# that kills its worker every time would hang the job, and so would a call waiting for an actor
# that a shrunken cluster has no room to restart (ray-project/ray#26991, #41029). So a lost
# worker or node fails the dataset at once, and the job resumes itself: a new dataset, sized to
# the cluster as it is now, over what this run has not reported yet. Resuming goes on while each
# try makes progress; WORKER_LOSS_RESUMES tries in a row without any stop the job (exit 5, a
# re-run skips what is done). Ray 2.60 takes these only as free remote args, which it marks
# deprecated for 2.64 with no named replacement yet; the warning is silenced below, and the Ray
# pin guards the rest.
NO_RAY_RETRIES = {"max_restarts": 0, "max_task_retries": 0}
WORKER_LOSS_RESUMES = 3


class ImageSettings(Spec):
    """What ``framestyle image`` and ``framestyle images`` share, validated alike."""

    style: str = Field(min_length=1)  # anything ``style_image.resolve_style`` takes
    strength: float = Field(1.0, ge=0, le=1)  # of the stylization, blended with the input
    preserve_color: bool = False  # the stylized luminance with the input's colours
    arch: str | None = None
    trust_code: bool = False
    max_side: PositiveInt | None = None  # shrink so the longer side is at most this
    # An image over this (after --max-side's reduced-scale JPEG decode) is refused, not read
    max_megapixels: PositiveFloat = DEFAULT_MAX_MEGAPIXELS
    inference: InferenceOptions = InferenceOptions()
    temporal: float = Field(DEFAULT_STRENGTH, ge=0, lt=1)  # for animations, as for videos
    strip_metadata: bool = False  # drop EXIF (GPS included) and XMP instead of keeping them

    def resolve_style(self) -> ModelRef:
        """The model, checked on the driver: a bad checkpoint fails here, before any work."""
        return resolve_style(self.style, arch=self.arch, trust_code=self.trust_code,
                             strength=self.strength, preserve_color=self.preserve_color)


class ImageJob(ImageSettings):
    """Many images: prefixes, folders, globs or archives -> a prefix, folder or archive."""

    sources: list[str] = Field(min_length=1)
    destination: str = Field(min_length=1)
    format: Literal[("same", *OUTPUT_FORMATS)] = "same"  # png, jpg, webp; same: as each input
    overwrite: bool = False
    preview: str | None = None  # PNG path/URI: before/after of a few images of this run
    archive_limits: ArchiveLimits = ArchiveLimits()
    # Where the stages run (not part of the outputs' identity: both give the same bytes).
    # auto: in this process for a small local job (IN_PROCESS_MAX_BYTES), else on Ray Data
    executor: Literal["auto", "ray", "process"] = "auto"

    @model_validator(mode="after")
    def _outputs_do_not_touch_inputs(self):
        destination = Destination.parse(self.destination)
        for src in self.sources:
            if any(source_overlaps(src, d) for d in {destination.uri, destination.root}):
                raise FieldError("destination", f"{self.destination} overlaps the input {src}: "
                                 "outputs would overwrite or mix with the inputs")
        return self


def run_image_job(job: ImageJob, address: str | None = None, progress: bool = True) -> dict:
    started = time.monotonic()
    destination = Destination.parse(job.destination)
    style = job.resolve_style()
    # a path some node cannot see: refused before anything is written
    check_shared(address, [*(("SOURCE", src) for src in job.sources),
                           ("DEST", job.destination), ("--style", style.source)])
    destination.check(job.overwrite)
    units = resolve_sources(job.sources)
    destination.claim(*job_identity(job, style), job.overwrite)
    finished = destination.prepare(job.overwrite)
    todo, skipped, failures = _plan(units, finished, job.format)

    in_process = runs_in_process(job.executor, address, todo)
    if not in_process:
        connect(address)
    counts = {OK: 0, FAILED: len(failures), SKIPPED: skipped}
    # An archive's member count is known only once it has been read through.
    total = len(units) if all(u.kind == "file" for u in units) else None
    samples: list[tuple[str, str]] = []  # (source, key) of a few images done in this run
    reported: set[str] = set()  # keys of the rows counted, so a resumed try counts none twice
    fruitless, resumed = 0, False  # tries in a row that lost a worker and reported nothing
    # closed however the loop ends, so an error line starts a line of its own
    with progress_bar(total, "image", "images", progress, initial=skipped + len(failures)) as bar:
        while todo:
            before = len(reported)
            try:
                rows = (_rows_in_process(job, style, destination, todo) if in_process
                        else _rows(_dataset(job, style, destination, todo)))
                for row in rows:
                    status, key = row["status"], str(row["key"])
                    if key in reported:
                        continue  # reported by a try that then lost a worker
                    if resumed and status == SKIPPED and key not in finished:
                        status = OK  # written by this run just before a worker was lost
                    reported.add(key)
                    counts[status] += 1
                    if status == FAILED:
                        failures.append({"key": key, "source": row["source"],
                                         "reason": row["reason"]})
                    elif status == OK and len(samples) < PREVIEW_IMAGES:
                        samples.append((str(row["source"]), key))
                    bar.update(1)
                    bar.set_postfix(failed=counts[FAILED], skipped=counts[SKIPPED],
                                    refresh=False)
                break
            except Exception as e:
                fruitless = 0 if len(reported) > before else fruitless + 1
                lost = worker_lost(e)
                if lost is None or fruitless >= WORKER_LOSS_RESUMES:
                    raise
                todo, resumed = _not_reported(todo, reported, job.format), True
                bar.write(f"framestyle: a Ray worker was lost ({type(lost).__name__}); resuming "
                          f"the images not done yet on the cluster as it is now", file=sys.stderr)

    failures_uri = write_failures(destination, failures)
    if job.preview and samples:
        _write_preview(job.preview, destination.root, samples)
    if destination.archive:
        pack_archive(destination)
    seconds = time.monotonic() - started
    return {
        "sources": job.sources, "destination": job.destination, "style": job.style,
        "ok": counts[OK], "failed": counts[FAILED], "skipped": counts[SKIPPED],
        "seconds": round(seconds, 3),
        "images_per_second": round(counts[OK] / seconds, 3) if seconds > 0 else 0.0,
        "failures": failures_uri, "preview": job.preview if job.preview and samples else None,
        "executor": "process" if in_process else "ray",
    }


def runs_in_process(executor: str, address: str | None, units: list[SourceUnit]) -> bool:
    """Whether the job's stages run in this process rather than on Ray (``executor``: auto,
    ray or process). auto: only a job of plain files of at most ``IN_PROCESS_MAX_BYTES`` in all,
    with no cluster to join and no Ray already running in this process (which it would use)."""
    if executor != "auto":
        return executor == "process"
    return (not cluster.joins_a_cluster(address) and all(u.kind == "file" for u in units)
            and sum(u.size for u in units) <= IN_PROCESS_MAX_BYTES)


def _not_reported(units: list[SourceUnit], reported: set[str], fmt: str) -> list[SourceUnit]:
    """The units a resumed try still reads: an archive again (its members written already are
    skipped as it streams), a plain file unless its row was reported."""
    return [u for u in units if u.kind != "file" or (
        u.key not in reported and output_format(u.key, fmt)[1] not in reported)]


def job_identity(job: ImageJob, style: ModelRef) -> tuple[dict, str]:
    """The settings that decide an output's pixels and bytes (readable), and their hash (which
    includes the model's content hash)."""
    settings = {"style": job.style, "model_sha256": style.sha256, "format": job.format,
                "max_side": job.max_side, "dtype": job.inference.dtype,
                "max_tile": job.inference.max_tile, "temporal": job.temporal,
                "strip_metadata": job.strip_metadata, "pipeline": IMAGES_VERSION}
    return settings, identity_hash({**settings, "model": style.identity})


def _write_preview(uri: str, root: str, samples: list[tuple[str, str]]) -> None:
    """Before/after thumbnails of ``samples`` as one PNG. Sources are read again; archive
    members are not objects of their own, find nothing and are left out."""
    from .preview import contact_sheet

    pairs, labels = [], []
    for source, key in samples:
        before = storage.storage_for(source).get_bytes(source)
        after = storage.storage_for(root).get_bytes(storage.join(root, key))
        if before and after:
            pairs.append((decode_image(before, PREVIEW_SIDE).rgb,
                          decode_image(after, PREVIEW_SIDE).rgb))
            labels.append(key)
    if pairs:
        buffer = io.BytesIO()
        contact_sheet(pairs, labels).save(buffer, format="PNG")
        storage.storage_for(uri).put_bytes(buffer.getvalue(), uri)


def _plan(units: list[SourceUnit], finished: dict[str, int], fmt: str
          ) -> tuple[list[SourceUnit], int, list[dict]]:
    """Units still to read, plain files skipped as finished, and output-name collisions."""
    todo, skipped, failures, claimed = [], 0, [], {}
    for unit in units:
        if unit.kind != "file":
            todo.append(unit)
            continue
        key = output_format(unit.key, fmt)[1]
        if key in claimed:
            failures.append({"key": unit.key, "source": unit.uri,
                             "reason": f"output {key} would overwrite the output of "
                                       f"{claimed[key]}"})
        elif key in finished:
            skipped += 1
        else:
            todo.append(unit)
        claimed.setdefault(key, unit.uri)
    return todo, skipped, failures


def _dataset(job: ImageJob, style: ModelRef, destination: Destination, units: list[SourceUnit]):
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False  # ours counts images, not blocks
    # A stage's own exception (our one-line errors: storage unavailable, disk full) reaches the
    # driver as itself, not as a UserCodeException that carries it as text only.
    context.raise_original_map_exception = True
    # Without --verbose, a failing stage is reported by the job itself, in one line.
    logging.getLogger("ray.data").setLevel(logging.WARNING if cluster.VERBOSE else logging.CRITICAL)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
    actors, actor_resources = worker_pool(job.inference.cpus_per_gpu or IMAGE_CPUS_PER_GPU)
    if "num_gpus" not in actor_resources:
        actor_resources = {"num_cpus": STYLIZER_CPU_SHARE}
    # The CPU stages run in small actor pools, not tasks: with every CPU held by a stylizer,
    # Ray keeps no idle worker around for tasks, so each task started (and imported into) a
    # fresh Python process, which cost 15-20% of the CPU the model needed (measured).
    io_pool = {"compute": ActorPoolStrategy(min_size=1, max_size=actors), "num_cpus": IO_CPU_SHARE,
               **NO_RAY_RETRIES}
    blocks = -(-len(units) // READ_BATCH)
    if all(u.kind == "file" for u in units):
        actors = min(actors, blocks)  # a small job: no stylizer that would never get work
    # Ray Data warns when a pool may get fewer input blocks than it has actors; an archive
    # yields many blocks from one, which it cannot know, and a small job merely idles an actor.
    warnings.filterwarnings("ignore", message="The minimum number of concurrent actors",
                            category=UserWarning)
    warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
    return (
        ray.data.from_items([u.to_row() for u in units], override_num_blocks=blocks)
        .map_batches(ReadAndDecode, batch_size=READ_BATCH, **io_pool,
                     fn_constructor_kwargs=_read_arguments(job, destination))
        .map_batches(StylizeImages, batch_size=STYLIZE_BATCH,
                     compute=ActorPoolStrategy(size=actors), **NO_RAY_RETRIES,
                     fn_constructor_kwargs=_stylize_arguments(job, style), **actor_resources)
        .map_batches(EncodeAndWrite, batch_size=STYLIZE_BATCH, **io_pool,
                     fn_constructor_kwargs=_write_arguments(job, destination))
    )


def _rows(dataset) -> Iterator[dict]:
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        yield from _status_rows(batch)


def _rows_in_process(job: ImageJob, style: ModelRef, destination: Destination,
                     units: list[SourceUnit]) -> Iterator[dict]:
    """The dataset's stages run here: the same classes, so the same bytes, status rows and
    skips as on Ray. One unit per task, on a thread per CPU, each task with a single-threaded
    replica of the network, as Ray's actors have (onnxruntime, Pillow's codecs and the writes
    release the GIL): on 2 cores, 40 photos of 640x480 took 6.7 s instead of 7.6 s with the
    arbitrary-style network and 7.5 s instead of 8.9 s with the built-in one, against one
    replica on 2 threads. A network on PyTorch (a GPU, TorchScript) runs in one thread, with
    PyTorch's threads. Memory holds one unit's images per thread."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from .onnx_stylizer import device_type

    on_cpu = device_type() == "cpu"
    threads = max(1, min(len(units), cluster.local_cpus())) if on_cpu else 1
    options = job.inference
    if on_cpu:  # the replicas share this machine's memory
        options = options.sharing_process(threads)
    arguments = {**_stylize_arguments(job, style), "options": options, "threads": 1}
    read = ReadAndDecode(**_read_arguments(job, destination))
    write = EncodeAndWrite(**_write_arguments(job, destination))
    first = StylizeImages(**arguments)
    if first.stylizer.engine != "onnxruntime":
        threads = 1
    idle = queue.SimpleQueue()  # replicas not in use; one is made per thread that finds none
    idle.put(first)

    def process(unit: SourceUnit) -> list[dict]:
        try:
            stylize = idle.get_nowait()
        except queue.Empty:
            stylize = StylizeImages(**arguments)
        try:
            return [row for block in read(_columns([unit.to_row()]))
                    for row in _status_rows(write(stylize(block)))]
        finally:
            idle.put(stylize)

    pool = ThreadPoolExecutor(threads)
    try:
        for done in as_completed([pool.submit(process, unit) for unit in units]):
            yield from done.result()
    finally:  # an error (a full disk) or a closed generator: no further unit starts
        pool.shutdown(cancel_futures=True)


def _status_rows(batch: dict) -> Iterator[dict]:
    for i in range(len(batch["key"])):
        yield {k: batch[k][i] for k in ("key", "source", "status", "reason")}


def _read_arguments(job: ImageJob, destination: Destination) -> dict:
    return {"root": destination.root, "fmt": job.format, "max_side": job.max_side,
            "max_megapixels": job.max_megapixels, "archive_limits": job.archive_limits,
            "skip_written": not job.overwrite}


def _stylize_arguments(job: ImageJob, style: ModelRef) -> dict:
    return {"style": style, "options": job.inference, "temporal": job.temporal}


def _write_arguments(job: ImageJob, destination: Destination) -> dict:
    return {"root": destination.root, "strip_metadata": job.strip_metadata}


# --- the stages (run in Ray workers) ------------------------------------------------------------

class ReadAndDecode:
    """Source units in; decoded images out, READ_BATCH at a time, as each unit streams."""

    def __init__(self, root: str, fmt: str, max_side: int | None, max_megapixels: float,
                 archive_limits: ArchiveLimits, skip_written: bool):
        self.root, self.fmt, self.max_side = root, fmt, max_side
        self.skip_written = skip_written
        self.max_megapixels, self.archive_limits = max_megapixels, archive_limits

    def __call__(self, batch: dict) -> Iterator[dict]:
        rows: list[dict] = []
        for unit in _units(batch):
            for item in read_guarded(unit, self._finished_in(unit), self.archive_limits):
                rows.append(_decoded_row(item, self.fmt, self.max_side, self.max_megapixels))
                if len(rows) == READ_BATCH:
                    yield _columns(rows)
                    rows = []
        if rows:
            yield _columns(rows)

    def _finished_in(self, unit: SourceUnit):
        """For an archive: is a member's output written already? (one listing per archive)"""
        if unit.kind == "file" or not self.skip_written:
            return lambda key: False  # plain files were checked on the driver
        under = storage.join(self.root, unit.key) if unit.key else self.root
        done = {unit.key + k for k in storage.storage_for(self.root).list_sizes(under)}
        return lambda key: output_format(key, self.fmt)[1] in done


def _units(batch: dict) -> Iterator[SourceUnit]:
    for uri, kind, key in zip(batch["uri"], batch["kind"], batch["key"]):
        yield SourceUnit(str(uri), str(kind), str(key))


def _decoded_row(item, fmt: str, max_side: int | None, max_megapixels: float) -> dict:
    """One image as a row: every frame's pixels (and alpha) back to back, with what the encoder
    needs to write it again (frame durations and loop of an animation, EXIF, XMP)."""
    out_fmt, key = output_format(item.key, fmt)
    row = {"key": key, "source": item.source, "format": out_fmt, "status": OK, "reason": "",
           "pixels": b"", "alpha": b"", "height": 0, "width": 0, "frames": 0,
           "durations": "", "loop": -1, "exif": b"", "xmp": b""}
    if item.failure:
        return {**row, "key": item.key, "status": FAILED, "reason": item.failure}
    if item.skipped:
        return {**row, "status": SKIPPED}
    try:
        image = decode_image(item.data, max_side, max_megapixels)
    except ImageError as e:
        return {**row, "key": item.key, "status": FAILED, "reason": str(e)}
    h, w = image.rgb.shape[:2]
    animation = image.animation
    return {**row, "pixels": b"".join(f.tobytes() for f in image.frames), "height": h,
            "width": w, "frames": len(image.frames),
            "alpha": b"" if image.alphas is None else b"".join(a.tobytes() for a in image.alphas),
            "durations": json.dumps(animation.durations) if animation else "",
            "loop": -1 if animation is None or animation.loop is None else animation.loop,
            "exif": image.metadata.exif, "xmp": image.metadata.xmp}


def _frames(batch: dict, i: int, column: str = "pixels") -> list[np.ndarray]:
    """Row ``i``'s frames (or alpha planes, with ``column="alpha"``) as arrays."""
    h, w, n = int(batch["height"][i]), int(batch["width"][i]), int(batch["frames"][i])
    shape = (n, h, w, 3) if column == "pixels" else (n, h, w)
    return list(np.frombuffer(batch[column][i], np.uint8).reshape(shape))


def _columns(rows: list[dict]) -> dict:
    columns = {}
    for name in rows[0]:
        values = [r[name] for r in rows]
        if isinstance(values[0], (bytes, str)):
            array = np.empty(len(values), dtype=object)
            array[:] = values
        else:
            array = np.asarray(values, dtype=np.int64)
        columns[name] = array
    return columns


class StylizeImages:
    """The actor-pool stage: one model per actor; still images of one size run as one batch,
    an animation's frames in order with the temporal step."""

    def __init__(self, style: ModelRef, options: InferenceOptions, temporal: float,
                 threads: int | None = None):
        from .onnx_stylizer import make_stylizer

        self.stylizer = make_stylizer(style, options, threads=threads)
        self.temporal = temporal

    def __call__(self, batch: dict) -> dict:
        from .temporal import stylize_frames

        by_size = defaultdict(list)
        pixels, status, reason = (batch[k].copy() for k in ("pixels", "status", "reason"))
        for i, state in enumerate(batch["status"]):
            if state == OK and batch["frames"][i] > 1:
                try:
                    frames = stylize_frames(self.stylizer, _frames(batch, i), self.temporal)
                    pixels[i] = b"".join(f.tobytes() for f in frames)
                except (RuntimeError, MemoryError) as e:
                    status[i], reason[i] = FAILED, f"stylize failed ({first_line(e)})"
            elif state == OK:
                by_size[(int(batch["height"][i]), int(batch["width"][i]))].append(i)
        for (h, w), indices in by_size.items():
            step = max(1, MAX_BATCH_PIXELS // (h * w))
            for start in range(0, len(indices), step):
                group = indices[start:start + step]
                frames = [np.frombuffer(batch["pixels"][i], np.uint8).reshape(h, w, 3)
                          for i in group]
                try:
                    outs = self.stylizer(frames)
                except (RuntimeError, MemoryError) as e:  # e.g. out of memory on a huge image
                    for i in group:
                        status[i], reason[i] = FAILED, f"stylize failed ({first_line(e)})"
                    continue
                for i, out in zip(group, outs):
                    pixels[i] = out.tobytes()
        return {**batch, "pixels": pixels, "status": status, "reason": reason}


class EncodeAndWrite:
    """Stylized pixels in; one written object per image out, and a status row."""

    def __init__(self, root: str, strip_metadata: bool):
        self.root, self.strip_metadata = root, strip_metadata

    def __call__(self, batch: dict) -> dict:
        status, reason = batch["status"].copy(), batch["reason"].copy()
        for i in range(len(status)):
            if status[i] != OK:
                continue
            durations = str(batch["durations"][i])
            loop = int(batch["loop"][i])
            animation = (Animation(tuple(json.loads(durations)), None if loop < 0 else loop)
                         if durations else None)
            metadata = None if self.strip_metadata else Metadata(bytes(batch["exif"][i]),
                                                                 bytes(batch["xmp"][i]))
            try:
                data = encode_image(_frames(batch, i), str(batch["format"][i]),
                                    _frames(batch, i, "alpha") if batch["alpha"][i] else None,
                                    animation, metadata)
                write_image(self.root, str(batch["key"][i]), data)
            # (a full disk is LocalStorage's DiskFullError, not an OSError: it stops the job)
            except (OSError, ValueError) as e:
                status[i], reason[i] = FAILED, f"cannot write output ({first_line(e)})"
        return {"key": batch["key"], "source": batch["source"], "status": status,
                "reason": reason}
