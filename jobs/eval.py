"""framestyle eval flicker INPUT OUTPUT: how much a stylized video flickers."""

from __future__ import annotations

import argparse

from ..core import storage
from ..core.errors import InputError
from ..models import hub
from ..pipeline.progress import progress_bar

HELP = "measure a stylized video: flicker (warping error) and deviation from per-frame stylization"
EPILOG = """\
flicker reports Lai et al. 2018's warping error E_warp (RGB in [0, 1], lower is steadier), with
the flow computed on INPUT by TV-L1 (not the DIS flow the temporal step uses) and Lai et al.'s
occlusion rule; shot changes are left out and counted. Given --style or --reference, it adds the
deviation: mean absolute difference between OUTPUT and a per-frame stylization of INPUT (a
blurred or frozen video is steady but deviates). The flow is accurate but slow: about 1.6-3.5 s a
frame pair at 360p on two cores. See docs/temporal.md.

examples:
  framestyle eval flicker clip.mp4 clip-styled.mp4 --style builtin:7
  framestyle eval flicker clip.mp4 clip-styled.mp4 --reference clip-per-frame.mp4 --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("metric", choices=["flicker"], help="what to measure")
    parser.add_argument("input", metavar="INPUT", help="the original video (path or s3:// URI)")
    parser.add_argument("output", metavar="OUTPUT", help="its stylized version")
    reference = parser.add_mutually_exclusive_group()
    reference.add_argument("--style", help="stylize INPUT frame by frame with this style to "
                           "measure deviation")
    reference.add_argument("--reference", metavar="VIDEO",
                           help="a per-frame stylization of INPUT to measure deviation against")


def run(args: argparse.Namespace) -> dict:
    from ..pipeline import flicker
    from ..pipeline.decode import iter_frames
    from ..pipeline.probe import probe

    style = hub.resolve(args.style) if args.style else None
    source = _local(args.input)
    result = _local(args.output)
    src_info, out_info = probe(source, name=args.input), probe(result, name=args.output)
    if src_info.frames != out_info.frames:
        raise InputError(f"{args.output} has {out_info.frames} frames, {args.input} has "
                         f"{src_info.frames}: not a stylization of it")
    size = (out_info.width, out_info.height)
    frames = src_info.frames

    def inputs():
        return iter_frames(source, src_info, 0, frames, size)

    def outputs():
        return iter_frames(result, out_info, 0, frames, size)

    meter = flicker.warping_error(_progress(inputs(), frames, args.json), outputs())
    summary = {"input": args.input, "output": args.output, "frames": frames,
               "pairs": len(meter.pair_errors), "cuts_skipped": len(meter.cuts),
               "warping_error": round(meter.warping_error, 6), "deviation": None}
    if style is not None:
        from ..pipeline.stylize import Stylizer

        stylizer = Stylizer(style)
        per_frame = (s for f in inputs() for s in stylizer([f]))
        summary["deviation"] = round(flicker.deviation(outputs(), per_frame), 5)
    elif args.reference:
        reference = _local(args.reference)
        ref_info = probe(reference, name=args.reference)
        summary["deviation"] = round(flicker.deviation(
            outputs(), iter_frames(reference, ref_info, 0, frames, size)), 5)
    return summary


def _local(uri: str) -> str:
    return storage.fetch(uri, storage.require(uri))


def _progress(frames, total: int, quiet: bool):
    return progress_bar(total, "frame", "flicker", enabled=not quiet, iterable=frames)


def summary_line(result: dict) -> str:
    deviation = "" if result["deviation"] is None else f", deviation {result['deviation']:.4f}"
    cuts = f" ({result['cuts_skipped']} shot changes skipped)" if result["cuts_skipped"] else ""
    return (f"{result['output']}: warping error {result['warping_error']:.5f} over "
            f"{result['pairs']} frame pairs{cuts}{deviation}")
