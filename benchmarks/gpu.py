"""GPU throughput: the model alone and the video job end to end, on the machine's GPU.

    python -m benchmarks.gpu [--quick] [--style builtin:7] [--device cuda|cpu]

Run it on a GPU machine whenever one is at hand; the JSON records the device's name, and every
figure comes from that one device.

- model-only: frames/s of the ``Stylizer`` (uint8 frames in and out, as the job runs it) at
  360p, 720p and 1080p in fp32, fp16 and bf16, with channels_last memory and without, eager and
  ``torch.compile``d, batches of 16 frames already in memory, after a warm-up.
- end to end: ``run_video_job`` on a 1080p clip (the bundled bunny sample, upscaled) with the
  temporal step at its default, NVDEC/NVENC on (where the node has them) and off, on a Ray
  instance that is already up; its ratio to model-only fp16 at 1080p is the pipeline's efficiency.

Targets on one H100: model-only >= 300 frames/s at 1080p fp16 for the built-in network; end to end
>= 70% of model-only. ``--device cpu`` runs the same code on small frames (with ``--quick``: one size, one
end-to-end run), to test it without a GPU (tests/test_benchmarks.py); its numbers say nothing
about GPUs.

Writes benchmarks/results/gpu.json (or ``--output``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from . import results_dir

RESULTS = results_dir()
SIZES = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}
CPU_SIZES = {"360p/8": (80, 44), "720p/8": (160, 90), "1080p/8": (240, 136)}  # --device cpu
TARGET_MODEL_FPS, TARGET_EFFICIENCY = 300, 0.70


def model_only(style: str, device: str, size: tuple[int, int], dtype: str, channels_last: bool,
               compiled: bool, frames: int, batch: int) -> float | str:
    """Frames a second through the Stylizer, or why this combination cannot run here."""
    import torch

    from framestyle.models.hub import resolve
    from framestyle.pipeline.inference import InferenceOptions
    from framestyle.pipeline.stylize import Stylizer

    options = InferenceOptions(engine="torch", dtype=dtype, channels_last=channels_last,
                               compile=compiled)
    try:
        stylizer = Stylizer(resolve(style), options, device=torch.device(device))
        w, h = size
        rng = np.random.default_rng(0)
        clip = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(batch)]
        stylizer(clip)  # warm-up: cuDNN autotuning, compilation
        _sync(device)
        started = time.perf_counter()
        done = 0
        while done < frames:
            stylizer(clip)
            done += batch
        _sync(device)
        return round(done / (time.perf_counter() - started), 1)
    except (RuntimeError, NotImplementedError, TypeError) as e:  # e.g. fp16 convs on a CPU
        return f"unsupported: {str(e).splitlines()[0][:120]}"


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def end_to_end(style: str, size: tuple[int, int], seconds: float, hardware: bool,
               folder: Path) -> dict:
    from framestyle.pipeline.video_job import VideoJob, run_video_job

    from .host_ceiling import make_clip

    clip = make_clip(folder, size, seconds, audio=True)
    output = folder / f"out-{hardware}.mp4"
    job = VideoJob(input=clip, output=str(output), style=style, hardware_codecs=hardware,
                   overwrite=True)
    started = time.perf_counter()
    summary = run_video_job(job, progress=False)
    seconds_taken = time.perf_counter() - started
    return {"frames": summary["frames_out"], "seconds": round(seconds_taken, 2),
            "fps": round(summary["frames_out"] / seconds_taken, 1), "hardware_codecs": hardware}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--style", default="builtin:7")
    parser.add_argument("--device", choices=["cuda", "cpu"], default=None,
                        help="default: cuda where there is one, else cpu (small frames)")
    parser.add_argument("--quick", action="store_true", help="fewer frames, no torch.compile")
    parser.add_argument("--output", default=str(RESULTS / "gpu.json"))
    args = parser.parse_args(argv)

    import ray
    import torch

    from framestyle.pipeline.cluster import connect

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    on_gpu = device == "cuda"
    sizes = SIZES if on_gpu else CPU_SIZES
    if args.quick and not on_gpu:  # a check of the code path: the largest size only
        sizes = dict(list(sizes.items())[-1:])
    frames = (64 if args.quick else 320) if on_gpu else 2
    batch = 16 if on_gpu else 2
    compiles = (False,) if args.quick or not on_gpu else (False, True)
    rows = []
    for label, size in sizes.items():
        for dtype in ("fp32", "fp16", "bf16"):
            for channels_last in (True, False):
                for compiled in compiles:
                    fps = model_only(args.style, device, size, dtype, channels_last, compiled,
                                     frames, batch)
                    rows.append({"resolution": label, "dtype": dtype,
                                 "channels_last": channels_last, "compiled": compiled,
                                 "frames_per_second": fps})
                    print(f"{label:>8} {dtype} channels_last={channels_last!s:5} "
                          f"compiled={compiled!s:5} {fps}", flush=True)
    connect(None)
    largest = list(sizes)[-1]
    with tempfile.TemporaryDirectory(prefix="framestyle-gpu-") as tmp:
        seconds = (2 if on_gpu else 1) if args.quick else 10
        # without a GPU both settings run the same CPU codecs: a quick check runs one
        modes = (True, False) if on_gpu or not args.quick else (True,)
        e2e = [end_to_end(args.style, sizes[largest], seconds, hardware, Path(tmp))
               for hardware in modes]
    for row in e2e:
        print(f"end to end {largest}: {row['fps']} frames/s (hardware codecs "
              f"{'on' if row['hardware_codecs'] else 'off'})", flush=True)
    fp16 = [r["frames_per_second"] for r in rows if r["resolution"] == largest
            and r["dtype"] == "fp16" and r["channels_last"] and not r["compiled"]]
    model_fps = fp16[0] if fp16 and isinstance(fp16[0], float) else None
    result = {
        "benchmark": "gpu", "date": time.strftime("%Y-%m-%d"), "unit": "frames/s", "style": args.style, "device": device,
        "device_name": torch.cuda.get_device_name() if on_gpu else platform.processor()
        or platform.machine(), "torch": torch.__version__, "ray": ray.__version__,
        "model_only": rows, "end_to_end": e2e,
        "efficiency_1080p": round(e2e[0]["fps"] / model_fps, 3) if model_fps else None,
        "targets": {"model_only_fp16_1080p": TARGET_MODEL_FPS,
                    "efficiency": TARGET_EFFICIENCY} if on_gpu else None,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
