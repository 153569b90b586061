"""framestyle image IN OUT --style STYLE: stylize one image (local path or s3:// URI)."""

from __future__ import annotations

import argparse

from ..pipeline.image_decode import DEFAULT_MAX_MEGAPIXELS
from ..pipeline.image_file_job import ImageFileJob, run_image_file_job
from ..pipeline.temporal import DEFAULT_STRENGTH
from .video import add_inference_arguments, add_style_arguments, inference_options, style_options

HELP = "stylize one image (local path or s3:// URI): JPEG, PNG, WebP, HEIC, AVIF, TIFF, GIF…"
EPILOG = """OUT's extension sets the format (.jpg, .png, .webp, .heic, .avif, .gif…). EXIF (capture date,
camera, lens, GPS) and XMP are kept, with the orientation reset since the pixels are upright;
--strip-metadata drops them. An animated GIF, WebP or APNG is stylized frame by frame with the
temporal step and keeps its frame durations and loop count. `framestyle images` writes the
same bytes for the same image and options.

exit codes: 0 done, 2 bad input (nothing written; OUT must not be IN), 1 other failure"""
FLAGS = {"input": "IN", "output": "OUT"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN", help="image file: local path or s3://bucket/key")
    parser.add_argument("output", metavar="OUT", help="output image; its extension sets the format")
    add_style_arguments(parser)
    add_image_arguments(parser)
    add_inference_arguments(parser)


def add_image_arguments(parser: argparse.ArgumentParser) -> None:
    """The options `image` and `images` share (ImageSettings)."""
    parser.add_argument("--max-side", type=int, default=None, metavar="PIXELS",
                        help="shrink so the longer side is at most this many pixels "
                        "(default: keep)")
    parser.add_argument("--max-megapixels", type=float, default=DEFAULT_MAX_MEGAPIXELS,
                        metavar="MP", help="refuse an image of more than MP million pixels "
                        "(all frames of an animation together), counted after --max-side's "
                        "reduced-size JPEG decode (default: %(default)g)")
    parser.add_argument("--strip-metadata", action="store_true",
                        help="drop EXIF (GPS included) and XMP, e.g. for sharing (default: keep "
                        "them, orientation reset)")
    parser.add_argument("--temporal", type=float, default=DEFAULT_STRENGTH, metavar="STRENGTH",
                        help="for animations: temporal coherence against flicker, 0 to <1 "
                        f"(default: {DEFAULT_STRENGTH:g})")


def image_options(args: argparse.Namespace) -> dict:
    """The ImageSettings fields the command line fills."""
    return {"max_side": args.max_side, "max_megapixels": args.max_megapixels,
            "strip_metadata": args.strip_metadata,
            "temporal": args.temporal, "inference": inference_options(args),
            **style_options(args)}


def run(args: argparse.Namespace) -> dict:
    return run_image_file_job(ImageFileJob(input=args.input, output=args.output,
                                           **image_options(args)))


def summary_line(result: dict) -> str:
    return (f"{result['output']}: {result['width']}x{result['height']} in "
            f"{result['seconds']:.1f} s")
