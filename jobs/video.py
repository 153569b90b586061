"""framestyle video IN OUT --style STYLE: stylize one video, locally or on a Ray cluster."""

from __future__ import annotations

import argparse

from ..models.hub import HUB_ENV
from ..pipeline.decode import DEINTERLACE_MODES
from ..pipeline.formats import CONTAINERS, VIDEO_CODECS
from ..pipeline.inference import InferenceOptions
from ..pipeline.plan import DEFAULT_CHUNK_SECONDS
from ..pipeline.temporal import DEFAULT_STRENGTH
from ..pipeline.video_job import HDR_MODES, VideoJob, run_video_job

FLAGS = {"input": "IN", "output": "OUT"}  # job fields whose flag is not --field-name

HELP = "stylize a video (local path or s3:// URI), keeping its audio, frame count and rotation"
EPILOG = """\
examples:
  framestyle video clip.mp4 out/clip.mp4 --style builtin:7 --height 360
  framestyle video s3://bucket/in/clip.mp4 s3://bucket/out/clip.mp4 --style builtin:3=0.5,12=0.5
  framestyle video clip.mp4 out/ --style builtin:0 --json
  framestyle video tape.mov master.mov --style builtin:7 --codec prores --deinterlace field
  framestyle video phone-hdr.mov out/clip.webm --style builtin:12     # VP9, tone-mapped to SDR

Frames keep the input's timestamps (variable frame rate too) and colours its matrix and range;
the output is colour-tagged. Audio is copied, or re-encoded where OUT's container cannot carry
it (the summary says so).

Re-running the same command resumes: finished chunks under OUT's folder in .framestyle/ are
checked and reused (only by the same input, model, output and settings). A stylizer that dies
costs only its chunk, which is redone elsewhere. OUT must not be IN.

Exit codes: 0 done, 2 bad input (nothing written), 4 this job is already running elsewhere,
1 other failure.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN", help="video file: local path or s3://bucket/key")
    parser.add_argument("output", metavar="OUT",
                        help="output file (its extension picks the container: "
                        f"{', '.join(CONTAINERS)}), or a folder/prefix ending in / to name it "
                        "IN-STYLE.mp4")
    add_style_arguments(parser)
    parser.add_argument("--height", type=int, default=None,
                        help="output height in pixels as displayed (default: the input's)")
    parser.add_argument("--crf", type=int, default=20, help="H.264 quality, 0..51, lower is better "
                        "(default: 20)")
    parser.add_argument("--chunk-seconds", type=float, default=DEFAULT_CHUNK_SECONDS,
                        help=f"seconds of video per work unit (default: {DEFAULT_CHUNK_SECONDS:g})")
    parser.add_argument("--temporal", type=float, default=DEFAULT_STRENGTH, metavar="STRENGTH",
                        help="temporal coherence against flicker, 0 (off: each frame on its own) "
                        f"to <1 (default: {DEFAULT_STRENGTH:g}); see docs/temporal.md")
    add_format_arguments(parser)
    add_inference_arguments(parser)
    parser.add_argument("--address", default=None,
                        help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray instance)")


def run(args: argparse.Namespace) -> dict:
    job = VideoJob(input=args.input, output=args.output, height=args.height, crf=args.crf,
                   chunk_seconds=args.chunk_seconds, temporal=args.temporal,
                   inference=inference_options(args), codec=args.codec,
                   deinterlace=args.deinterlace, hdr=args.hdr, **style_options(args))
    # The progress bar goes to stderr, so it shows with --json too without disturbing stdout.
    return run_video_job(job, address=args.address)


def add_format_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--codec", choices=list(VIDEO_CODECS), default=None,
                        help="video codec (default: by OUT's extension, H.264 for .mp4/.mov/.mkv, "
                        "VP9 for .webm); prores for editing masters (.mov/.mkv), ffv1 for "
                        "lossless archives (.mkv)")
    parser.add_argument("--deinterlace", choices=list(DEINTERLACE_MODES), default="frame",
                        help="for interlaced input: bwdif to one frame per frame (default), one "
                        "frame per field (double rate), or off")
    parser.add_argument("--hdr", choices=list(HDR_MODES), default="tonemap",
                        help="HDR (PQ/HLG) input is tone-mapped to SDR BT.709 before "
                        "stylizing (default: tonemap)")


def add_style_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--style", required=True,
                        help="builtin:N (0..25), a mix such as builtin:3=0.5,12=0.5, a checkpoint "
                        "(path or s3:// URI: .pth/.model from fast_neural_style or "
                        "pytorch-CycleGAN-and-pix2pix, .safetensors), or a model NAME[@VERSION] "
                        f"published under ${HUB_ENV}")
    parser.add_argument("--arch", default=None,
                        help="architecture of a checkpoint whose keys do not say it "
                        "(`framestyle models list` names them)")
    parser.add_argument("--trust-code", action="store_true",
                        help="allow TorchScript checkpoints, which run code when loaded")


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dtype", choices=["auto", "fp32", "fp16", "bf16"], default="auto",
                        help="model precision (default auto: fp16 on GPUs, fp32 on CPUs)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model: faster on long runs, but the first "
                        "batch of each frame size waits for a compile (a minute on CPU)")
    parser.add_argument("--max-tile", type=int, default=None, metavar="PIXELS",
                        help="stylize frames larger than this in overlapping tiles: bounded "
                        "memory for 4K and up, within ~1/255 of one pass but several times "
                        "slower")


def inference_options(args: argparse.Namespace) -> InferenceOptions:
    return InferenceOptions(dtype=args.dtype, compile=args.compile, max_tile=args.max_tile)


def style_options(args: argparse.Namespace) -> dict:
    """The job fields that ``add_style_arguments`` fills."""
    return {"style": args.style, "arch": args.arch, "trust_code": args.trust_code}


def summary_line(result: dict) -> str:
    reused = f", {result['chunks_reused']} reused" if result["chunks_reused"] else ""
    if result["chunks_retried"]:
        reused += f", {result['chunks_retried']} retried after losing a worker"
    notes = "".join(f"; {note}" for note in result["audio_reencoded"])
    return (f"{result['output']}: {result['frames_out']} frames in {result['seconds']:.1f} s "
            f"({result['fps']:.1f} frames/s), {result['chunks']} chunks{reused}, "
            f"{result['audio_streams']} audio stream(s){notes}")
