"""Many videos as one job: SRC... (files, folders, prefixes, globs; local or S3) -> DST.

Each input becomes a ``VideoJob`` writing ``DST/<its path relative to SRC>`` with the container
the codec wants (``.mp4`` unless the codec needs another), and all of them run on one pool of
loaded models (``video_job.run_video_jobs``), so small videos do not each pay start-up and the
chunks of different videos fill the pool together. Videos fail independently. As each one
ends, ``DST/_job.json`` (``manifest``) and ``DST/_report.html`` (``report``) are rewritten; the
report's images go to ``DST/_report/``. Running the same job again skips the outputs it finished
(they carry the job's identity) and resumes the others from their finished chunks.
"""

from __future__ import annotations

import os
import time
from pathlib import PurePosixPath

from pydantic import Field, model_validator

from ..core import storage
from ..core.errors import FieldError, FramestyleError, InputError
from .formats import output_format
from .image_source import resolve_sources, source_overlaps
from .manifest import MANIFEST_NAME, Manifest
from .report import write_report
from .video_job import FAILED, VideoJob, VideoSettings, run_video_jobs

REPORT_NAME = "_report.html"
PREVIEWS = "_report"
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mts", ".m2ts",
                            ".ts", ".mpg", ".mpeg", ".mxf", ".flv", ".wmv", ".3gp", ".ogv"})


class VideoBatchJob(VideoSettings):
    """Videos from ``sources`` into the folder or prefix ``destination``."""

    sources: list[str] = Field(min_length=1)
    destination: str = Field(min_length=1)
    report: bool = True  # previews and _report.html beside the manifest

    @model_validator(mode="after")
    def _outputs_do_not_touch_inputs(self):
        if (PurePosixPath(self.destination.rstrip("/")).suffix.lower() in VIDEO_SUFFIXES
                and not self.destination.endswith("/") and not os.path.isdir(self.destination)):
            raise FieldError("destination", f"{self.destination} is a file name: many videos go "
                             "to a folder or prefix (end it with /)")
        for src in self.sources:
            if source_overlaps(src, self.destination):
                raise FieldError("destination", f"{self.destination} overlaps the input {src}: "
                                 "outputs would overwrite or mix with the inputs")
        return self

    def videos(self) -> tuple[list[VideoJob], list[dict]]:
        """One VideoJob per input video, and the inputs refused before any work (as manifest
        items). Inside folders, prefixes and globs only files with a video extension count;
        a file named on its own is taken whatever its name."""
        named = set(self.sources)
        settings = self.model_dump(include=set(VideoSettings.model_fields))
        suffix = output_suffix(self.codec)
        jobs, refused, claimed = [], [], {}
        for unit in resolve_sources(self.sources):
            rel = PurePosixPath(unit.key.rstrip("/"))
            if unit.uri not in named and (rel.suffix.lower() not in VIDEO_SUFFIXES
                                          or any(p.startswith((".", "_")) for p in rel.parts)):
                continue  # not a video, or our own work folders and reports
            key = str(rel.with_suffix(suffix))
            output = storage.join(self.destination, key)
            if unit.kind != "file":
                refused.append(_refused(unit.uri, output, "an archive: videos are read as files"))
            elif key in claimed:
                refused.append(_refused(unit.uri, output,
                                        f"its output {key} is also the output of {claimed[key]}"))
            else:
                claimed[key] = unit.uri
                preview = (storage.join(self.destination, PREVIEWS, key.replace("/", "__"))
                           if self.report else None)
                jobs.append(VideoJob(input=unit.uri, output=output, preview=preview, **settings))
        if not jobs and not refused:
            raise InputError(f"no videos found at {', '.join(self.sources)}")
        return jobs, refused


def output_suffix(codec: str | None) -> str:
    """``.mp4``, or the first container that can hold ``codec``."""
    for suffix in (".mp4", ".mov", ".mkv", ".webm"):
        try:
            output_format("out" + suffix, codec)
            return suffix
        except FramestyleError:
            continue
    raise FieldError("codec", f"no container holds {codec}")


def _refused(uri: str, output: str, reason: str) -> dict:
    return {"input": uri, "output": output, "status": FAILED, "error": reason}


def run_video_batch(job: VideoBatchJob, address: str | None = None,
                    progress: bool = True) -> dict:
    """Run every video of ``job``; the job's summary with one item per input."""
    started = time.monotonic()
    storage.storage_for(job.destination).check_writable(
        storage.join(job.destination, MANIFEST_NAME))
    videos, refused = job.videos()
    manifest = Manifest(storage.join(job.destination, MANIFEST_NAME), job.model_dump(mode="json"),
                        [{"input": v.input, "output": v.output} for v in videos] + refused)
    report_uri = storage.join(job.destination, REPORT_NAME)

    def publish(data: dict) -> dict:
        """The report from what the manifest now says (written just before)."""
        if job.report:
            write_report(report_uri, data, PREVIEWS)
        return data

    publish(manifest.write())
    summaries = run_video_jobs(videos, address, progress,
                               on_end=lambda index, summary: publish(manifest.update(summary)))
    # once more: chunks retried are known only at the end
    final = publish(manifest.update(*summaries))
    totals = final["totals"]
    return {
        "sources": job.sources, "destination": job.destination, "style": job.style,
        **{k: totals[k] for k in ("videos", "done", "skipped", "failed", "frames")},
        "seconds": round(time.monotonic() - started, 3),
        "manifest": manifest.uri, "report": report_uri if job.report else None,
        "items": final["items"],
    }
