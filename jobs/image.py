"""framestyle image IN OUT --style STYLE: stylize one image (local path or s3:// URI)."""

from __future__ import annotations

import argparse

from ..pipeline.image_file_job import ImageFileJob, run_image_file_job
from .video import add_inference_arguments, add_style_arguments, inference_options, style_options

HELP = "stylize one image (local path or s3:// URI)"
EPILOG = "exit codes: 0 done, 2 bad input (nothing written; OUT must not be IN), 1 other failure"
FLAGS = {"input": "IN", "output": "OUT"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN", help="image file: local path or s3://bucket/key")
    parser.add_argument("output", metavar="OUT", help="output image; its extension sets the format")
    add_style_arguments(parser)
    add_max_side_argument(parser)
    add_inference_arguments(parser)


def add_max_side_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-side", type=int, default=None, metavar="PIXELS",
                        help="shrink so the longer side is at most this many pixels "
                        "(default: keep)")


def run(args: argparse.Namespace) -> dict:
    job = ImageFileJob(input=args.input, output=args.output, max_side=args.max_side,
                       inference=inference_options(args), **style_options(args))
    return run_image_file_job(job)


def summary_line(result: dict) -> str:
    return (f"{result['output']}: {result['width']}x{result['height']} in "
            f"{result['seconds']:.1f} s")
