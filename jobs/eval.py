"""framestyle eval flicker INPUT OUTPUT: how much a stylized video flickers."""

from __future__ import annotations

import argparse

from ..core import storage
from ..core.errors import InputError
from .video import add_look_arguments

HELP = "measure a stylized video: flicker (warping error) and deviation from per-frame stylization"
EPILOG = """\
flicker reports Lai et al. 2018's warping error E_warp (RGB in [0, 1], lower is steadier), with
the flow computed on INPUT by TV-L1 (not the DIS flow the temporal step uses) and Lai et al.'s
occlusion rule; shot changes are left out and counted. Given --style or --reference, it adds the
deviation (mean absolute difference between OUTPUT and a per-frame stylization of INPUT: a
blurred or frozen video is steady but deviates) and sharpness_kept (how much of the per-frame
stylization's fine texture OUTPUT kept: a washed-out video scores low). The flow is accurate but
slow, about 2-5 s a frame pair at 360p on one core, so pairs are spread over the Ray cluster
(--address, else a local Ray instance on every core), and --sample N scores every Nth pair and
compares every Nth frame, reporting the warping error with its 95% margin (how far the full
run's value may be: it depends on how much the pairs differ, so no N is right for every clip).
See docs/temporal.md.

examples:
  framestyle eval flicker clip.mp4 clip-styled.mp4 --style builtin:7
  framestyle eval flicker clip.mp4 clip-styled.mp4 --reference clip-per-frame.mp4 --json
  framestyle eval flicker s3://b/long.mp4 s3://b/long-styled.mp4 --sample 10 --address auto
"""


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("metric", choices=["flicker"], help="what to measure")
    parser.add_argument("input", metavar="INPUT", help="the original video (path or s3:// URI)")
    parser.add_argument("output", metavar="OUTPUT", help="its stylized version")
    reference = parser.add_mutually_exclusive_group()
    reference.add_argument("--style", help="stylize INPUT frame by frame with this style to "
                           "measure deviation")
    reference.add_argument("--reference", metavar="VIDEO",
                           help="a per-frame stylization of INPUT to measure deviation against")
    add_look_arguments(parser)  # how OUTPUT was made: --style's reference is made alike
    parser.add_argument("--sample", type=positive, default=1, metavar="N",
                        help="score every Nth frame pair (default 1: all of them)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray "
                        "instance)")


def run(args: argparse.Namespace) -> dict:
    from ..pipeline.flicker_job import FlickerInputs, measure
    from ..pipeline.style_image import resolve_style

    style = resolve_style(args.style, strength=args.strength,
                          preserve_color=args.preserve_color) if args.style else None
    src_info, out_info = _probe(args.input), _probe(args.output)
    if src_info.frames != out_info.frames:
        raise InputError(f"{args.output} has {out_info.frames} frames, {args.input} has "
                         f"{src_info.frames}: not a stylization of it")
    ref_info = _probe(args.reference) if args.reference else None
    if ref_info is not None and ref_info.frames != src_info.frames:
        raise InputError(f"{args.reference} has {ref_info.frames} frames, {args.input} has "
                         f"{src_info.frames}: not a stylization of it")
    inputs = FlickerInputs(input=args.input, input_info=src_info, output=args.output,
                           output_info=out_info, size=(out_info.width, out_info.height),
                           reference=args.reference, reference_info=ref_info, style=style)
    scores = measure(inputs, sample=args.sample, address=args.address, progress=not args.json)
    return {"input": args.input, "output": args.output, "frames": src_info.frames, **scores}


def _probe(uri: str):
    from ..pipeline.probe import probe

    return probe(storage.fetch(uri, storage.require(uri)), name=uri)


def summary_line(result: dict) -> str:
    deviation = "" if result["deviation"] is None else (
        f", deviation {result['deviation']:.4f}, sharpness kept {result['sharpness_kept']:.0%}")
    cuts = f" ({result['cuts_skipped']} shot changes skipped)" if result["cuts_skipped"] else ""
    sampled = f" (every {result['sample']}th pair)" if result["sample"] > 1 else ""
    margin = result.get("warping_error_margin")
    within = f" ± {margin:.5f} (95%)" if margin is not None else ""
    return (f"{result['output']}: warping error {result['warping_error']:.5f}{within} over "
            f"{result['pairs']} frame pairs{sampled}{cuts}{deviation}")
