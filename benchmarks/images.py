"""Image job efficiency and memory: end-to-end images/s vs the model alone, and peak memory as
the input grows.

    python -m benchmarks.images [--images 320] [--size 640x480] [--style builtin:7] [--scale 4]

- model-only: the same images decoded into memory beforehand and pushed through the stylizer on
  the actor layout the job uses (and on threads of one process, a single-threaded replica per
  CPU; the faster counts), timing model calls only (``benchmarks.video_pipeline``).
- end-to-end: ``run_image_job`` from JPEG files on disk to JPEG files on disk (read, decode,
  stylize, encode, write), with its stages on Ray Data on a Ray instance that is already up,
  and on threads of this process (``--executor process``, what a local job of up to
  ``IN_PROCESS_MAX_BYTES`` runs); the fastest of two runs each. Each also over ``--scale``
  times as many (the same photos under new names): a job pays a fixed time (on Ray, Ray Data
  planning the dataset, its actor pools starting, each importing Ray Data and loading the
  model) and then a time per image, and the line through both sizes separates them, as
  ``benchmarks.video_pipeline`` does for videos. The steady-state ratio is what a large
  archive gets.
- memory: the job over 1x, 2x and 4x as many large JPEGs (2400x1800, ~2 MB each, shrunk with
  --max-side 256 so the model is not the bottleneck), sampling the proportional set size (PSS:
  shared object-store pages counted once) of this process and every Ray process it started;
  the peak should stay flat as the input grows, since Ray Data streams.

Writes benchmarks/results/images.json and prints tables. Target on CPU: ratio >= 0.85.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from .video_pipeline import (RESULTS, fastest_run, fixed_and_steady, model_only_in_process,
                             model_only_on_actors)


def write_photos(folder: Path, count: int, width: int, height: int,
                 keep: bool = True) -> list[np.ndarray]:
    """``count`` distinct JPEGs in nested folders; returns their decoded pixels if ``keep`` (for
    model-only, decoded from the written files so both runs see the same pixels)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:height, 0:width]
    pixels = []
    for i in range(count):
        base = np.stack([(xs + 7 * i) % 256, (ys + 3 * i) % 256, (xs + ys) % 256], axis=-1)
        noisy = np.clip(base + rng.integers(-30, 30, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"batch{i % 8}" / f"photo{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(noisy).save(path, quality=90)
        if keep:
            pixels.append(np.asarray(Image.open(path).convert("RGB")))
    return pixels


class PeakMemory:
    """Peak total PSS of this process and all its descendants (the local Ray instance: raylet,
    object store, workers), sampled every 100 ms while the block runs."""

    def __enter__(self):
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        import psutil

        me = psutil.Process()
        while not self._stop.wait(0.1):
            total = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    total += process.memory_full_info().pss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            self.peak = max(self.peak, total)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def peak_mib(self) -> float:
        return self.peak / 2**20


def run_job(source: Path, destination: Path, style: str, max_side: int | None = None,
            executor: str = "auto") -> dict:
    from framestyle.pipeline.image_job import ImageJob, run_image_job

    job = ImageJob(sources=[str(source)], destination=str(destination),
                   style=style, max_side=max_side, executor=executor)
    return run_image_job(job, progress=False)


def linked_copies(originals: list[Path], target: Path, factor: int) -> Path:
    """``factor`` hard links to each photo under new names in ``target``: the input grows
    without new disk or new pixels to decode differently."""
    import os

    for k in range(factor):
        for path in originals:
            link = target / path.parent.name / f"{path.stem}-{k}.jpg"
            link.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, link)
    return target


def memory_scaling(tmp: Path, style: str, base_count: int) -> list[dict]:
    """The same job over 1x, 2x and 4x the images (hard links to one set under new names)."""
    base = tmp / "large"
    write_photos(base, base_count, 2400, 1800, keep=False)
    originals = sorted(base.rglob("*.jpg"))
    rows = []
    for factor in (1, 2, 4):
        source = linked_copies(originals, tmp / f"large-{factor}x", factor)
        input_mib = sum(p.stat().st_size for p in originals) * factor / 2**20
        with PeakMemory() as memory:
            result = run_job(source, tmp / f"large-out-{factor}x", style, max_side=256)
        rows.append({"factor": factor, "images": result["ok"], "input_mib": round(input_mib, 1),
                     "peak_memory_mib": round(memory.peak_mib, 1),
                     "seconds": result["seconds"]})
        print(f"memory: {result['ok']} images, {input_mib:.0f} MiB in, peak "
              f"{memory.peak_mib:.0f} MiB (all processes, PSS)", flush=True)
    return rows


def executor_figures(short: dict, long: dict, model_ips: float) -> dict:
    """One executor's runs over the photos and over ``--scale`` times as many: images/s and
    ratio to the model alone of each, and the fixed seconds and steady rate the two give."""
    fixed, steady = fixed_and_steady(short, long, short["ok"], long["ok"])
    return {"images_per_second": short["images_per_second"], "seconds": short["seconds"],
            "ratio": round(short["images_per_second"] / model_ips, 3),
            "images_per_second_scaled": long["images_per_second"],
            "seconds_scaled": long["seconds"],
            "ratio_scaled": round(long["images_per_second"] / model_ips, 3),
            "fixed_seconds": round(fixed, 2), "steady_images_per_second": round(steady, 3),
            "ratio_steady": round(steady / model_ips, 3)}


def main(argv: list[str] | None = None) -> dict:
    import ray

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=320)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--style", default="builtin:7")
    parser.add_argument("--memory-images", type=int, default=150,
                        help="large images in the 1x memory run (2x and 4x follow)")
    parser.add_argument("--scale", type=int, default=4,
                        help="the larger end-to-end run has this many times the images "
                             "(default 4)")
    args = parser.parse_args(argv)
    if args.scale < 2:
        parser.error("--scale must be at least 2: the larger run separates fixed from "
                     "per-image costs")
    from framestyle.pipeline.image_job import STYLIZE_BATCH

    width, height = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="framestyle-bench-") as tmp:
        tmp = Path(tmp)
        pixels = write_photos(tmp / "photos", args.images, width, height)
        scaled = linked_copies(sorted((tmp / "photos").rglob("*.jpg")), tmp / "scaled",
                               args.scale)

        def end_to_end(source: Path, executor: str) -> dict:  # each run into its own folder
            return fastest_run(lambda k: run_job(
                source, tmp / f"styled-{source.name}-{executor}-{k}", args.style,
                executor=executor))

        # Ray first, so that the memory measured is Ray's and a fresh driver's, not also what
        # the stages in this process kept of theirs
        ray.init(include_dashboard=False, log_to_driver=False)
        try:
            actors_ips = model_only_on_actors(pixels, args.style, STYLIZE_BATCH)
            e2e, e2e_scaled = end_to_end(tmp / "photos", "ray"), end_to_end(scaled, "ray")
            memory = memory_scaling(tmp, args.style, args.memory_images)
            resources = ray.cluster_resources()
        finally:
            ray.shutdown()
        # then the stages in this process (what a local job of up to IN_PROCESS_MAX_BYTES
        # runs), with no Ray up beside them
        here, here_scaled = end_to_end(tmp / "photos", "process"), end_to_end(scaled, "process")
        process_ips = model_only_in_process(pixels, args.style, STYLIZE_BATCH)
    model_ips = max(actors_ips, process_ips)
    on_ray, in_process = (executor_figures(short, long, model_ips)
                          for short, long in ((e2e, e2e_scaled), (here, here_scaled)))
    result = {
        "images": args.images, "size": [width, height], "style": args.style,
        "model_only_images_per_second": round(model_ips, 3),
        "model_only_actors": round(actors_ips, 3), "model_only_one_process": round(process_ips, 3),
        "end_to_end_images_per_second": e2e["images_per_second"],
        "end_to_end_seconds": e2e["seconds"], "ok": e2e["ok"], "failed": e2e["failed"],
        "ratio": on_ray["ratio"], "target_ratio": 0.85,
        "scale": args.scale, "images_scaled": e2e_scaled["ok"],
        "end_to_end_images_per_second_scaled": e2e_scaled["images_per_second"],
        "end_to_end_seconds_scaled": e2e_scaled["seconds"],
        **{k: on_ray[k] for k in ("ratio_scaled", "fixed_seconds", "steady_images_per_second",
                                  "ratio_steady")},
        "in_process": in_process,
        "memory_scaling": memory,
        "cpus": resources.get("CPU"), "gpus": resources.get("GPU", 0),
        "machine": platform.machine(), "date": time.strftime("%Y-%m-%d"),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "images.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'stages on':<11}{'images':>8}{'size':>10}{'model-only img/s':>18}"
          f"{'end-to-end img/s':>18}{'ratio':>8}")
    for where, run in (("Ray", e2e), ("Ray", e2e_scaled), ("process", here),
                       ("process", here_scaled)):
        print(f"{where:<11}{run['ok']:>8}{args.size:>10}{model_ips:>18.2f}"
              f"{run['images_per_second']:>18.2f}{run['images_per_second'] / model_ips:>8.2f}")
    for where, figures in (("Ray", on_ray), ("process", in_process)):
        print(f"steady state on {where} (past the job's fixed {figures['fixed_seconds']:.2f} s): "
              f"{figures['steady_images_per_second']:.2f} img/s, ratio "
              f"{figures['ratio_steady']:.2f}")
    print(f"(model-only: actors {actors_ips:.2f}, one process {process_ips:.2f} img/s; "
          "target ratio >= 0.85)")
    print(f"\n{'images':>8}{'input MiB':>12}{'peak PSS MiB':>14}{'seconds':>9}")
    for row in memory:
        print(f"{row['images']:>8}{row['input_mib']:>12.0f}{row['peak_memory_mib']:>14.0f}"
              f"{row['seconds']:>9.1f}")
    print(f"-> {RESULTS / 'images.json'}")
    return result


if __name__ == "__main__":
    main()
