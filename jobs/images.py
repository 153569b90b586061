"""framestyle images SRC... DST --style STYLE: stylize a prefix, folder, glob or archives of
images on Ray Data, keeping their relative paths."""

from __future__ import annotations

import argparse

from ..pipeline.image_encode import OUTPUT_FORMATS
from ..pipeline.image_job import IN_PROCESS_MAX_BYTES, ImageJob, run_image_job
from ..pipeline.image_source import ArchiveLimits
from .image import add_image_arguments, image_options
from .video import add_inference_arguments, add_style_arguments

FLAGS = {"sources": "SRC", "destination": "DST",
         "max_members": "--max-archive-members",
         "max_gigabytes": "--max-archive-gb",
         "max_member_megabytes": "--max-member-mb"}
HELP = "stylize many images: a prefix, folder, glob, or .tar/.tar.gz/.zip archives"
EXIT_SOME_FAILED = 3
EPILOG = f"""\
examples:
  framestyle images s3://bucket/photos/ s3://bucket/styled/ --style builtin:7
  framestyle images 'photos/**/*.jpg' out/ --style builtin:3 --format webp --max-side 1024
  framestyle images iphone/ shared/ --style builtin:5 --format jpg --strip-metadata   # HEIC in
  framestyle images s3://bucket/a.tar s3://bucket/b.zip s3://bucket/styled.tar.gz --style NAME

Outputs keep their paths relative to SRC (with several SRCs, each under a folder named after
it; archive members under the archive's name when found in a prefix). A DST ending in .tar,
.tar.gz, .tgz or .zip is written as one archive at the end.

Formats: JPEG, PNG, WebP, HEIC/HEIF, AVIF, TIFF, GIF, BMP… in; --format same (each keeps its
own), png, jpg, webp, heic or avif out. Animated GIF, WebP and APNG are stylized frame by frame
with the temporal step, keeping frame durations and loop count. EXIF (capture date, camera, lens,
GPS) and XMP are kept with the orientation reset; --strip-metadata drops them.

Re-running the same job skips images already written (writes are atomic, so a present output is
a complete one). DST records which job made its images (DST/_framestyle.json: style, model hash,
format and every pixel setting); a run with other settings stops with one line naming the
difference (exit 2) instead of mixing two jobs' images; --overwrite redoes them.
Images that cannot be processed (corrupt, empty, not an image, over Pillow's pixel limit,
unsafe archive paths) are listed with their reason in DST/_failures.jsonl (OUT.tar.failures.jsonl
for an archive) and never stop the job.

DST must not overlap a SRC (the same file, one inside the other): that is refused before any work.

exit codes: 0 all images done, {EXIT_SOME_FAILED} some images failed (see _failures.jsonl),
2 bad input or usage (nothing written), 1 other failure
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sources", nargs="+", metavar="SRC",
                        help="s3://bucket/prefix/ or folder (recursive), a glob (quote it), or "
                        ".tar/.tar.gz/.zip archives, local or in S3")
    parser.add_argument("destination", metavar="DST",
                        help="output prefix or folder, or an archive path (.tar, .tar.gz, .zip)")
    add_style_arguments(parser)
    parser.add_argument("--format", choices=["same", *OUTPUT_FORMATS], default="same",
                        help="output format (default: same as each input; formats Pillow "
                        "cannot write become PNG)")
    add_image_arguments(parser)
    limits = ArchiveLimits()
    parser.add_argument("--max-archive-members", type=int, default=limits.max_members,
                        metavar="N", help="read at most N files of one archive; past it, one "
                        "failure line (default: %(default)s)")
    parser.add_argument("--max-archive-gb", type=float, default=limits.max_gigabytes,
                        metavar="GB", help="read at most GB gigabytes (10^9 bytes, "
                        "uncompressed) of one archive (default: %(default)g)")
    parser.add_argument("--max-member-mb", type=float, default=limits.max_member_megabytes,
                        metavar="MB", help="refuse an archive member over MB megabytes (10^6 "
                        "bytes) uncompressed (default: %(default)g)")
    parser.add_argument("--preview", metavar="PNG", default=None,
                        help="also write a before/after sheet of a few images stylized in this "
                        "run (local path or s3:// URI)")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo images whose output exists (default: skip them)")
    add_inference_arguments(parser)
    parser.add_argument("--executor", choices=["auto", "ray", "process"], default="auto",
                        help="where the stages run: auto (default) runs a job of image files "
                        f"adding up to at most {IN_PROCESS_MAX_BYTES // 2**20} MiB with no "
                        "cluster to join in this process, where it is faster than a local "
                        "Ray, and anything else (archives too) on Ray Data; ray or process "
                        "force one")
    parser.add_argument("--address", default=None,
                        help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray instance)")


def run(args: argparse.Namespace) -> dict:
    job = ImageJob(sources=args.sources, destination=args.destination, format=args.format,
                   overwrite=args.overwrite, preview=args.preview, executor=args.executor,
                   archive_limits=ArchiveLimits(max_members=args.max_archive_members,
                                                max_gigabytes=args.max_archive_gb,
                                                max_member_megabytes=args.max_member_mb),
                   **image_options(args))
    return run_image_job(job, address=args.address)


# job files (jobs/spec.py): spec key -> ImageJob field; options hold the other fields
SPEC_KEYS = {"inputs": "sources", "output": "destination", "style": "style"}


def spec_job(fields: dict) -> ImageJob:
    return ImageJob(**fields)


def run_spec_job(job: ImageJob, address: str | None, progress: bool) -> dict:
    return run_image_job(job, address, progress)


def exit_code(result: dict) -> int:
    return EXIT_SOME_FAILED if result["failed"] else 0


def summary_line(result: dict) -> str:
    line = (f"{result['destination']}: {result['ok']} stylized, {result['skipped']} skipped, "
            f"{result['failed']} failed in {result['seconds']:.1f} s "
            f"({result['images_per_second']:.2f} images/s)")
    if result["failures"]:
        line += f"; failures listed in {result['failures']}"
    if result["preview"]:
        line += f"; preview {result['preview']}"
    return line
