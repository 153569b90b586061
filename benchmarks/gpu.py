"""GPU throughput: the model alone and the video pipeline end to end, on the machine's GPU.

    python -m benchmarks.gpu [--quick] [--styles builtin:7,image:PICTURE] [--device cuda|cpu]
                             [--cpus-per-gpu node,2] [--no-job]

Run it on a GPU machine whenever one is at hand; the JSON records the device's name, and every
figure comes from that one device.

- model-only: frames/s of the ``Stylizer`` (uint8 frames in and out, as the job runs it) at
  360p, 720p and 1080p in fp32, fp16 and bf16, with channels_last memory and without, eager,
  and ``torch.compile``d in fp16 (one compile per size), batches of 16 frames already in memory,
  after a warm-up. Styles after the first (default: an ``image:`` style, the arbitrary-style
  network, with docs/images/painting-as-style.png as its picture) run at the largest size only.
  Three settings that are not on by default run side by side with the default at the largest
  size in fp16, in every combination, in both memory layouts: every narrow layer widened to 8
  channels (``widen_every_layer``), cuDNN's autotuning (``torch.backends.cudnn.benchmark``,
  which chooses kernels per batch shape: the Stylizer's passes come in few shapes), and the
  norms computed in the activations' layout (``keep_norm_layout``: no NCHW copies of
  channels_last activations).
- profile: the kernels one batch of the default setting spends its time in at the largest
  size (operators on a CPU), the top 12 with their share: where to look next.
- end to end, one actor: the chunk worker's own path (decode with read-ahead, the model, the
  temporal step, encode, store) over a whole 1080p clip in a process pinned to the actor's CPU
  share, with the temporal step on and off, NVDEC/NVENC on (where the node has them) and off.
  No Ray around it, so it runs where Ray is not installed.
- end to end, the job: ``run_video_job`` on the same clip (Ray, chunks, assembly with audio),
  hardware codecs on and off, on a Ray instance that is already up; skipped with ``--no-job``
  or where Ray is not installed (said in the JSON).

The efficiency is end to end over model-only fp16 at 1080p. Targets on one H100: model-only >=
300 frames/s at 1080p fp16 for the built-in network; end to end >= 70% of model-only.
``--device cpu`` runs the same code on small frames (with ``--quick``: one size, one run of
each), to test it without a GPU (tests/test_benchmarks.py); its numbers say nothing about GPUs.

Writes benchmarks/results/gpu.json (or ``--output``) and prints a table.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
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
# model_only's settings that are off by default, measured side by side with the default
SETTINGS = ("every_layer", "cudnn_benchmark", "layout_norm")
PICTURE = Path(__file__).resolve().parent.parent / "docs" / "images" / "painting-as-style.png"
DEFAULT_STYLES = f"builtin:7,image:{PICTURE}"


def model_only(style: str, device: str, size: tuple[int, int], dtype: str, channels_last: bool,
               compiled: bool, frames: int, batch: int, every_layer: bool = False,
               cudnn_benchmark: bool = False, layout_norm: bool = False) -> float | str:
    """Frames a second through the Stylizer, or why this combination cannot run here;
    ``every_layer``: with ``widen_every_layer`` on top of the default widening;
    ``cudnn_benchmark``: with cuDNN's autotuning on; ``layout_norm``: the norms computed in
    the activations' memory layout (``keep_norm_layout``)."""
    import torch

    from framestyle.pipeline.inference import InferenceOptions
    from framestyle.pipeline.style_image import resolve_style
    from framestyle.pipeline.stylize import Stylizer, keep_norm_layout, widen_every_layer

    options = InferenceOptions(engine="torch", dtype=dtype, channels_last=channels_last,
                               compile=compiled)
    torch.backends.cudnn.benchmark = cudnn_benchmark
    try:
        stylizer = Stylizer(resolve_style(style), options, device=torch.device(device))
        if every_layer:
            widen_every_layer(stylizer.model)
            stylizer.model.to(memory_format=torch.channels_last if channels_last
                              else torch.contiguous_format)
        if layout_norm:
            keep_norm_layout(stylizer.model)
        clip = warm_clip(stylizer, size, batch)
        started = time.perf_counter()
        done = 0
        while done < frames:
            stylizer(clip)
            done += batch
        _sync(device)
        return round(done / (time.perf_counter() - started), 1)
    except (RuntimeError, NotImplementedError, TypeError) as e:  # e.g. fp16 convs on a CPU
        return f"unsupported: {str(e).splitlines()[0][:120]}"
    finally:
        torch.backends.cudnn.benchmark = False


def kernel_profile(style: str, device: str, size: tuple[int, int], top: int = 12) -> list[dict]:
    """Where one batch's time goes: the ``top`` kernels (GPU) or operators (CPU) of the default
    Stylizer on a batch at ``size``, by total time, with their share of the batch's."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from framestyle.pipeline.inference import InferenceOptions
    from framestyle.pipeline.style_image import resolve_style
    from framestyle.pipeline.stylize import Stylizer

    on_gpu = device == "cuda"
    stylizer = Stylizer(resolve_style(style), InferenceOptions(engine="torch"),
                        device=torch.device(device))
    clip = warm_clip(stylizer, size, 16 if on_gpu else 2)
    activity = ProfilerActivity.CUDA if on_gpu else ProfilerActivity.CPU
    with profile(activities=[activity]) as prof:
        stylizer(clip)
        _sync(device)
    events = prof.key_averages()
    # self times: an operator's kernels are its children, and counting both would count twice
    key = "self_cpu_time_total" if not on_gpu else next(
        (k for k in ("self_device_time_total", "self_cuda_time_total") if hasattr(events[0], k)))
    total = sum(getattr(e, key) for e in events) or 1
    ranked = sorted(events, key=lambda e: getattr(e, key), reverse=True)[:top]
    return [{"name": e.key[:120], "calls": e.count, "ms": round(getattr(e, key) / 1000, 2),
             "share": round(getattr(e, key) / total, 3)} for e in ranked]


def warm_clip(stylizer, size: tuple[int, int], batch: int) -> list[np.ndarray]:
    """``batch`` random frames of ``size``, run through ``stylizer`` once (cuDNN's kernel
    choice, compilation) and waited for: what every measurement then times."""
    w, h = size
    rng = np.random.default_rng(0)
    clip = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(batch)]
    stylizer(clip)
    _sync(stylizer.device.type)
    return clip


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def model_only_rows(styles: list[str], device: str, sizes: dict, quick: bool,
                    measured=lambda rows: None) -> list[dict]:
    on_gpu = device == "cuda"
    frames = (64 if quick else 320) if on_gpu else 2
    batch = 16 if on_gpu else 2
    largest = list(sizes)[-1]
    plain = dict.fromkeys(SETTINGS, False)
    runs = []  # (style, size label, dtype, channels_last, compiled, settings)
    for label in sizes:
        for dtype in ("fp32", "fp16", "bf16"):
            runs += [(styles[0], label, dtype, cl, False, plain) for cl in (True, False)]
    for style in styles[1:]:
        runs += [(style, largest, dtype, True, False, plain) for dtype in ("fp32", "fp16")]
    # the settings not on by default, side by side at the largest size in fp16: each
    # combination, in both memory layouts
    combinations = [dict(zip(SETTINGS, on)) for on in itertools.product((False, True),
                                                                         repeat=len(SETTINGS))]
    runs += [(styles[0], largest, "fp16", cl, False, combination)
             for combination in combinations[1:] for cl in (True, False)]
    if on_gpu and not quick:  # last: compiling takes longest
        runs += [(styles[0], label, "fp16", True, True, plain) for label in sizes]
        runs += [(styles[0], largest, "fp16", False, True, plain)]
    rows = []
    for style, label, dtype, channels_last, compiled, setting in runs:
        fps = model_only(style, device, sizes[label], dtype, channels_last, compiled, frames,
                         batch, **setting)
        rows.append({"style": _short(style), "resolution": label, "dtype": dtype,
                     "channels_last": channels_last, "compiled": compiled, **setting,
                     "frames_per_second": fps})
        print(f"{_short(style):>24} {label:>8} {dtype} channels_last={channels_last!s:5} "
              f"compiled={compiled!s:5} "
              + " ".join(f"{k}={v!s:5}" for k, v in setting.items()) + f" {fps}", flush=True)
        measured(rows)
    return rows


def _short(style: str) -> str:
    return style if not style.startswith("image:") else "image:" + Path(style[6:]).name


def cpu_shares(text: str, on_gpu: bool) -> list[int]:
    """--cpus-per-gpu's shares; "node" is the share of this machine's CPUs each of its GPUs
    gets, as a video job's actors do by default (``cluster.gpu_share_of_cpus``)."""
    import torch

    gpus = torch.cuda.device_count() if on_gpu else 1
    node = max(1, len(os.sched_getaffinity(0)) // max(1, gpus))
    return [node if part.strip() == "node" else int(part) for part in text.split(",")]


def worker_rows(style: str, clip: str, device: str, cpus: list[int], quick: bool,
                folder: Path) -> list[dict]:
    """One actor's chunk path over the whole clip, in a fresh process pinned to its CPUs."""
    from .host_ceiling import measure_in_fresh_process

    from framestyle.pipeline.probe import probe

    runs = [(0.7, True, cpus[0]), (0.0, True, cpus[0])]
    if not quick:
        runs += [(0.7, False, cpus[0]), (0.0, False, cpus[0])]
        runs += [(0.7, True, n) for n in cpus[1:]]
    frames = probe(clip).frames
    rows = []
    for temporal, hardware, n in runs:
        n = min(n, len(os.sched_getaffinity(0)))
        fps = measure_in_fresh_process(clip, n, temporal, device, str(folder), style, hardware)
        rows.append({"what": "worker", "frames": frames, "temporal": temporal,
                     "hardware_codecs": hardware, "cpus": n, "fps": round(fps, 1)})
        print(f"one actor, {n} CPU(s), temporal {temporal}, hardware codecs "
              f"{'on' if hardware else 'off'}: {fps:.1f} frames/s", flush=True)
    return rows


def job_rows(style: str, clip: str, hardware_modes: tuple[bool, ...], folder: Path) -> list[dict]:
    from framestyle.pipeline.cluster import connect
    from framestyle.pipeline.video_job import VideoJob, run_video_job

    connect(None)
    rows = []
    for hardware in hardware_modes:
        output = folder / f"out-{hardware}.mp4"
        job = VideoJob(input=clip, output=str(output), style=style, hardware_codecs=hardware,
                       overwrite=True)
        started = time.perf_counter()
        summary = run_video_job(job, progress=False)
        seconds = time.perf_counter() - started
        rows.append({"what": "job", "frames": summary["frames_out"], "temporal": job.temporal,
                     "hardware_codecs": hardware, "seconds": round(seconds, 2),
                     "fps": round(summary["frames_out"] / seconds, 1)})
        print(f"video job: {rows[-1]['fps']} frames/s (hardware codecs "
              f"{'on' if hardware else 'off'})", flush=True)
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--styles", default=None,
                        help=f"comma-separated; the first is measured fully (default: "
                             f"{DEFAULT_STYLES} on a GPU, builtin:7 on a CPU)")
    parser.add_argument("--device", choices=["cuda", "cpu"], default=None,
                        help="default: cuda where there is one, else cpu (small frames)")
    parser.add_argument("--quick", action="store_true", help="fewer frames and runs, no compile")
    parser.add_argument("--cpus-per-gpu", default="node,2",
                        help="the actor's CPU shares to run end to end at, the first with "
                             "every setting (default node,2; node: this machine's CPUs per "
                             "GPU, what a video job's actor holds by default)")
    parser.add_argument("--parts", default="model,profile,worker,job",
                        help="which to run, of model, profile (the kernels of one batch at the "
                             "largest size), worker and job (default: all; the job only where "
                             "Ray is installed)")
    parser.add_argument("--model-only-from", metavar="JSON",
                        help="take the model-only rows from an earlier run on this same device "
                             "(a GPU session split in two calls)")
    parser.add_argument("--output", default=str(RESULTS / "gpu.json"))
    args = parser.parse_args(argv)

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    on_gpu = device == "cuda"
    parts = set(args.parts.split(","))
    styles = (args.styles or (DEFAULT_STYLES if on_gpu else "builtin:7")).split(",")
    sizes = SIZES if on_gpu else CPU_SIZES
    if args.quick and not on_gpu:  # a check of the code path: the largest size only
        sizes = dict(list(sizes.items())[-1:])
    largest = list(sizes)[-1]
    have_ray = importlib.util.find_spec("ray") is not None
    result = {
        "benchmark": "gpu", "date": time.strftime("%Y-%m-%d"), "unit": "frames/s",
        "styles": [_short(s) for s in styles], "device": device,
        "device_name": torch.cuda.get_device_name() if on_gpu else platform.processor()
        or platform.machine(), "cpu_cores": len(os.sched_getaffinity(0)),
        "torch": torch.__version__,
        "ray": (__import__("ray").__version__ if have_ray else "not installed: no job run"),
        "end_to_end_resolution": largest, "model_only": [], "profile": [], "end_to_end": [],
        "targets": {"model_only_fp16_1080p": TARGET_MODEL_FPS,
                    "efficiency": TARGET_EFFICIENCY} if on_gpu else None,
    }
    if args.model_only_from:
        earlier = json.loads(Path(args.model_only_from).read_text())
        if earlier["device_name"] != result["device_name"]:
            parser.error(f"{args.model_only_from} was measured on {earlier['device_name']}, "
                         f"not on this {result['device_name']}")
        result["model_only"] = earlier["model_only"]
        result["profile"] = earlier.get("profile", [])
    if "profile" in parts:
        result["profile"] = kernel_profile(styles[0], device, sizes[largest])
        _write(result, args.output)
    if "model" in parts:
        result["model_only"] = model_only_rows(
            styles, device, sizes, args.quick,
            lambda rows: _write({**result, "model_only": rows}, args.output))
    _write(result, args.output)
    with tempfile.TemporaryDirectory(prefix="framestyle-gpu-") as tmp:
        from .host_ceiling import make_clip

        seconds = (2 if on_gpu else 1) if args.quick else 4
        if parts & {"worker", "job"}:
            clip = make_clip(Path(tmp), sizes[largest], seconds, audio=True)
        if "worker" in parts:
            result["end_to_end"] += worker_rows(
                styles[0], clip, device, cpu_shares(args.cpus_per_gpu, on_gpu),
                args.quick, Path(tmp))
            _write(result, args.output)
        if "job" in parts and have_ray:
            # without a GPU both settings run the same CPU codecs: a quick check runs one
            result["end_to_end"] += job_rows(styles[0], clip, (True, False) if on_gpu or not
                                             args.quick else (True,), Path(tmp))
    fp16 = [r["frames_per_second"] for r in result["model_only"]
            if r["style"] == _short(styles[0]) and r["resolution"] == largest
            and r["dtype"] == "fp16" and r["channels_last"] and not r["compiled"]
            and not any(r.get(k) for k in SETTINGS)]
    model_fps = fp16[0] if fp16 and isinstance(fp16[0], float) else None
    for row in result["end_to_end"]:
        row["efficiency"] = round(row["fps"] / model_fps, 3) if model_fps else None
    _write(result, args.output)
    return result


def _write(result: dict, output: str) -> None:
    """Written after each part, so a run cut short keeps what it measured."""
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
