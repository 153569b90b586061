"""framestyle video SRC... DST --style STYLE: stylize one video or many, locally or on a Ray
cluster."""

from __future__ import annotations

import argparse
import os

from ..core import storage
from ..models.hub import HUB_ENV
from ..pipeline.decode import DEINTERLACE_MODES
from ..pipeline.formats import CONTAINERS, VIDEO_CODECS
from ..pipeline.inference import IMAGE_CPUS_PER_GPU, InferenceOptions
from ..pipeline.plan import DEFAULT_CHUNK_SECONDS, DEFAULT_OVERLAP_FRAMES
from ..pipeline.temporal import DEFAULT_STRENGTH
from ..pipeline.image_source import GLOB_CHARS
from ..pipeline.video_batch import VideoBatchJob, run_video_batch
from ..pipeline.video_job import (DEFAULT_MAX_DURATION, DEFAULT_MAX_FRAME_MEGAPIXELS, HDR_MODES,
                                  IN_PROCESS_MAX_FRAMES, VideoJob, run_video_job)

# job fields whose flag is not --field-name
FLAGS = {"input": "SRC", "output": "DST", "sources": "SRC", "destination": "DST"}
EXIT_SOME_FAILED = 3

HELP = ("stylize videos (local paths or s3:// URIs), keeping their audio, frame count and "
        "rotation")
EPILOG = """\
examples:
  framestyle video clip.mp4 out/clip.mp4 --style builtin:7 --height 360
  framestyle video s3://bucket/in/ s3://bucket/out/ --style builtin:7        # every video in it
  framestyle video a.mp4 b.mov 'trips/**/*.mp4' styled/ --style candy      # several, one pool
  framestyle video s3://bucket/in/clip.mp4 s3://bucket/out/clip.mp4 --style builtin:3=0.5,12=0.5
  framestyle video clip.mp4 out/ --style builtin:0 --json
  framestyle video tape.mov master.mov --style builtin:7 --codec prores --deinterlace field
  framestyle video phone-hdr.mov out/clip.webm --style builtin:12     # VP9, tone-mapped to SDR

Frames keep the input's timestamps (variable frame rate too) and colours its matrix and range;
the output is colour-tagged. Audio is copied, or re-encoded where OUT's container cannot carry
it (the summary says so).

One SRC file: DST is the output file, or a folder/prefix ending in / to name it SRC-STYLE.mp4.
Several SRCs, a folder, a prefix or a glob: DST is a folder/prefix and each video goes to
DST/<its path relative to its SRC> as .mp4 (with several SRCs, under a folder named after each
folder/prefix/glob). All videos share one pool of loaded models; each fails on its own (listed
with its reason) while the others finish. DST/_job.json records every video as it ends (status,
output, frames, seconds, chunks reused, error) and DST/_report.html shows them (before/after
stills, an animated preview, a flicker figure; open it in a browser).

Re-running the same command resumes: an output this job finished is skipped at once (it carries
the job's identity; --overwrite redoes it), and finished chunks under the output's folder in
.framestyle/ are checked and reused (only by the same input, model, output and settings). On
Ray, a stylizer that dies costs only its chunk, which is redone elsewhere; a short job run in
this process (--executor) ends with it, and its next run reuses the chunks stored before. DST
must not be (or hold) a SRC.

Exit codes: 0 done, 2 bad input (nothing written), 3 some videos failed (see DST/_job.json),
4 this job is already running elsewhere, 1 other failure.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sources", nargs="+", metavar="SRC",
                        help="video file, folder, s3://bucket/prefix/ or glob (quote it); "
                        "several allowed")
    parser.add_argument("destination", metavar="DST",
                        help="for one SRC file, the output file (its extension picks the "
                        f"container: {', '.join(CONTAINERS)}) or a folder/prefix ending in /; "
                        "else the output folder/prefix")
    add_style_arguments(parser)
    parser.add_argument("--height", type=int, default=None,
                        help="output height in pixels as displayed (default: the input's)")
    parser.add_argument("--crf", type=int, default=20, help="H.264 quality, 0..51, lower is better "
                        "(default: 20)")
    parser.add_argument("--chunk-seconds", type=float, default=DEFAULT_CHUNK_SECONDS,
                        help="seconds of video per work unit (default: "
                        f"{DEFAULT_CHUNK_SECONDS:g}); a crash loses at most one unit per worker, "
                        f"and each unit after the first stylizes {DEFAULT_OVERLAP_FRAMES} extra "
                        "frames with --temporal on; a short video is split into one unit per "
                        "worker whatever this says")
    parser.add_argument("--temporal", type=float, default=DEFAULT_STRENGTH, metavar="STRENGTH",
                        help="temporal coherence against flicker, 0 (off: each frame on its own) "
                        f"to <1 (default: {DEFAULT_STRENGTH:g}); see docs/temporal.md")
    add_format_arguments(parser)
    add_inference_arguments(parser)
    parser.add_argument("--overwrite", action="store_true",
                        help="redo outputs this job finished before (default: skip them)")
    parser.add_argument("--max-frame-megapixels", type=float,
                        default=DEFAULT_MAX_FRAME_MEGAPIXELS, metavar="MP",
                        help="refuse a video whose frames have more than MP million pixels "
                        "(default: %(default)g; 8K is 33.2)")
    parser.add_argument("--max-duration", type=float, default=DEFAULT_MAX_DURATION,
                        metavar="SECONDS", help="refuse a video longer than SECONDS "
                        "(default: %(default)g, six hours)")
    parser.add_argument("--no-report", dest="report", action="store_false",
                        help="many videos: no previews and no DST/_report.html")
    parser.add_argument("--address", default=None,
                        help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray instance)")
    parser.add_argument("--executor", choices=["auto", "ray", "process"], default="auto",
                        help="where the chunks run: auto (default) runs a job of at most "
                        f"{IN_PROCESS_MAX_FRAMES} frames in all, on a machine with no GPU and "
                        "no cluster to join, on threads of this process, since a local Ray's "
                        "start-up is a third of such a job; anything else on Ray; ray or process "
                        "force one (the output is the same; --json says which ran)")


def run(args: argparse.Namespace) -> dict:
    settings = dict(height=args.height, crf=args.crf, chunk_seconds=args.chunk_seconds,
                    temporal=args.temporal, inference=inference_options(args), codec=args.codec,
                    deinterlace=args.deinterlace, hdr=args.hdr, overwrite=args.overwrite,
                    hardware_codecs=args.hardware_codecs, executor=args.executor,
                    max_frame_megapixels=args.max_frame_megapixels,
                    max_duration=args.max_duration, **style_options(args))
    # The progress bar goes to stderr, so it shows with --json too without disturbing stdout.
    if len(args.sources) == 1 and is_one_file(args.sources[0]):
        job = VideoJob(input=args.sources[0], output=args.destination, **settings)
        return run_video_job(job, address=args.address)
    batch = VideoBatchJob(sources=args.sources, destination=args.destination,
                          report=args.report, **settings)
    return run_video_batch(batch, address=args.address)


# job files (jobs/spec.py): spec key -> VideoBatchJob field; options hold the other fields
SPEC_KEYS = {"inputs": "sources", "output": "destination", "style": "style"}


def spec_job(fields: dict) -> VideoBatchJob:
    return VideoBatchJob(**fields)


def run_spec_job(job: VideoBatchJob, address: str | None, progress: bool) -> dict:
    return run_video_batch(job, address, progress)


def is_one_file(src: str) -> bool:
    """Whether SRC names one file (or nothing at all: that error is the single job's to give)
    rather than a folder, prefix or glob."""
    if GLOB_CHARS.search(src) or src.endswith("/"):
        return False
    if storage.is_s3(src):
        return storage.storage_for(src).stat(src) is not None or not storage.storage_for(
            src).list_sizes(src)
    return not os.path.isdir(src)


def exit_code(result: dict) -> int:
    return EXIT_SOME_FAILED if result.get("failed") else 0


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
    parser.add_argument("--no-hardware-codecs", dest="hardware_codecs", action="store_false",
                        help="decode and encode on CPUs even on GPU nodes whose driver and "
                        "ffmpeg have NVDEC/NVENC (by default those are used, chosen per node "
                        "and logged)")


def add_style_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--style", required=True,
                        help="builtin:N (0..25), a mix such as builtin:3=0.5,12=0.5, a checkpoint "
                        "(path or s3:// URI: .pth/.model from fast_neural_style or "
                        "pytorch-CycleGAN-and-pix2pix, .safetensors), a model NAME[@VERSION] "
                        f"published under ${HUB_ENV}, or any picture as the style: "
                        "image:PATH_OR_URI (mix them: image:a.jpg=0.5,image:b.jpg=0.5)")
    add_look_arguments(parser)
    parser.add_argument("--arch", default=None,
                        help="architecture of a checkpoint whose keys do not say it "
                        "(`framestyle models list` names them)")
    parser.add_argument("--trust-code", action="store_true",
                        help="allow TorchScript checkpoints, which run code when loaded")


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=["auto", "torch", "onnxruntime"], default="auto",
                        help="what runs the network (default auto: onnxruntime on CPUs, where "
                        "it is several times faster, exported once per node; PyTorch on GPUs "
                        "and with --compile or TorchScript checkpoints)")
    parser.add_argument("--dtype", choices=["auto", "fp32", "fp16", "bf16"], default="auto",
                        help="model precision (default auto: fp16 on GPUs, fp32 on CPUs)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model: faster on long runs, but the first "
                        "batch of each frame size waits for a compile (a minute on CPU)")
    parser.add_argument("--max-tile", type=int, default=None, metavar="SIDE",
                        help="stylize frames wider or taller than SIDE pixels in overlapping "
                        "tiles of at most SIDE x SIDE pixels: within ~1/255 of one pass but "
                        "several times slower (default: tile only what does not fit the "
                        "worker's memory budget)")
    parser.add_argument("--cpus-per-gpu", type=float, default=None, metavar="N",
                        help="CPUs each GPU stylizer holds for decoding, optical flow and "
                        "encoding, so that the host keeps its GPU busy (default: for videos, "
                        "each GPU's share of its node's CPUs, 4 on a node of 4 CPUs and one "
                        f"GPU; for images {IMAGE_CPUS_PER_GPU:g}, the rest going to their "
                        "decoding and encoding; see benchmarks.host_ceiling; no effect "
                        "without GPUs)")


def inference_options(args: argparse.Namespace) -> InferenceOptions:
    return InferenceOptions(engine=args.engine, dtype=args.dtype, compile=args.compile,
                            max_tile=args.max_tile, cpus_per_gpu=args.cpus_per_gpu)


def add_look_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--strength", type=unit_interval, default=1.0, metavar="S",
                        help="how much of the style: S x stylized + (1 - S) x the input, "
                        "before the temporal step (0..1, default 1)")
    parser.add_argument("--preserve-color", action="store_true",
                        help="keep the input's colours: the stylized luminance with the "
                        "input's chroma (Gatys et al. 2016)")


def unit_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}")
    return value


def style_options(args: argparse.Namespace) -> dict:
    """The job fields that ``add_style_arguments`` fills."""
    return {"style": args.style, "arch": args.arch, "trust_code": args.trust_code,
            "strength": args.strength, "preserve_color": args.preserve_color}


def summary_line(result: dict) -> str:
    if "items" in result:
        line = (f"{result['destination']}: {result['done']} videos stylized, {result['skipped']} "
                f"skipped as finished, {result['failed']} failed ({result['frames']} frames) in "
                f"{result['seconds']:.1f} s; manifest {result['manifest']}")
        return line + (f", report {result['report']}" if result["report"] else "")
    reused = f", {result['chunks_reused']} reused" if result["chunks_reused"] else ""
    if result["chunks_retried"]:
        reused += f", {result['chunks_retried']} retried after losing a worker"
    notes = "".join(f"; {note}" for note in result["audio_reencoded"])
    return (f"{result['output']}: {result['frames_out']} frames in {result['seconds']:.1f} s "
            f"({result['fps']:.1f} frames/s), {result['chunks']} chunks{reused}, "
            f"{result['audio_streams']} audio stream(s){notes}")
