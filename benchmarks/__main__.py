"""Run every benchmark, then summarise them in one table with plots.

    python -m benchmarks all [--quick] [--only NAME ...] [--results DIR]
    python -m benchmarks summary [--results DIR]

``all`` runs each benchmark in a process of its own (one after the other: they share the
machine), writing its JSON under the results folder (benchmarks/results; a ``--quick`` run
writes to benchmarks/results/quick unless --results says otherwise), then ``summary`` writes
README.md there: one row per headline figure, each a ratio measured within one run or an
absolute figure with the device it came from, and PNG plots beside it. A full run also puts the
table into the project's README, between its benchmark markers. A benchmark that fails is listed
as failed, with its last line, and the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from . import RESULTS_ENV, results_dir
from .summary import README_MARKERS, plots, table_rows, write_readme

# name -> arguments of its --quick form (the full form is each benchmark's defaults)
BENCHMARKS: dict[str, list[str]] = {
    "engines": ["--frames", "2", "--threads", "1", "--size", "320x180"],
    "naive_loop": ["--quick"],
    "video_pipeline": ["--clip", "bikes", "--height", "120", "--loops", "2"],
    "peer": ["--quick", "--metric-frames", "20"],
    "temporal": ["--clips", "bikes", "--height", "120", "--frames", "16", "--styles", "7,19",
                 "--crop-styles", "19"],
    "flicker_metric": ["--clips", "bigbuckbunny", "--height", "120", "--frames", "24",
                       "--samples", "4"],
    "host_ceiling": ["--quick"],
    "scale_out": ["--quick", "--nodes", "1", "2"],
    "images": ["--images", "16", "--memory-images", "8", "--scale", "2"],
    "large_photos": ["--sizes", "6000x4000", "--rerun-scale", "0.25", "--no-reference"],
    "bulk": ["--clips", "2"],
    "int8": [],
    "training": ["--steps", "2", "--workers", "1", "--recipes", "distill", "--distill-steps",
                 "4", "--distill-size", "64"],
    "compress": ["--population", "4", "--generations", "1", "--finetune-steps", "2",
                 "--parent-steps", "2", "--temporal-steps", "2", "--size", "64", "--held-out", "2",
                 "--flicker-frames", "6", "--flicker-height", "90"],
    "gpu": ["--quick"],
    "serve": ["--quick"],
}


def run_all(names: list[str], quick: bool, folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    runs = {}
    for name in names:
        argv = [sys.executable, "-m", f"benchmarks.{name}", *(BENCHMARKS[name] if quick else [])]
        print(f"== {name}: {' '.join(argv[1:])}", flush=True)
        started = time.perf_counter()
        done = subprocess.run(argv, env={**os.environ, RESULTS_ENV: str(folder)},
                              stderr=subprocess.PIPE, text=True)
        seconds = round(time.perf_counter() - started, 1)
        last = (done.stderr.strip().splitlines() or [""])[-1]
        runs[name] = {"exit": done.returncode, "seconds": seconds,
                      **({"error": last} if done.returncode else {})}
        print(f"   {name}: {'ok' if done.returncode == 0 else 'FAILED: ' + last} "
              f"({seconds} s)", flush=True)
    (folder / "runs.json").write_text(json.dumps(runs, indent=2) + "\n")
    return runs


def summarise(folder: Path, quick: bool) -> list[list[str]]:
    folder.mkdir(parents=True, exist_ok=True)
    runs_file = folder / "runs.json"
    runs = json.loads(runs_file.read_text()) if runs_file.exists() else {}
    rows = table_rows(folder, runs)
    images = plots(folder)
    write_readme(folder / "README.md", rows, images, quick)
    if not quick and folder.resolve() == (Path(__file__).parent / "results").resolve():
        write_readme(Path(__file__).parent.parent / "README.md", rows, [], quick,
                     between=README_MARKERS, links_to="benchmarks/results/")
    for row in rows:
        print(" | ".join(row))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    every = sub.add_parser("all", help="run every benchmark, then the summary")
    every.add_argument("--quick", action="store_true",
                       help="small inputs: checks that everything runs (minutes, not hours)")
    every.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    every.add_argument("--results", default=None, help="folder for the JSON, table and plots")
    summary = sub.add_parser("summary", help="the table and plots from the JSON already there")
    summary.add_argument("--results", default=None)
    summary.add_argument("--quick", action="store_true", help="(a quick run's folder)")
    args = parser.parse_args(argv)
    default = results_dir() / "quick" if args.quick else results_dir()
    folder = Path(args.results) if args.results else default
    if args.command == "all":
        runs = run_all(args.only, args.quick, folder)
        summarise(folder, args.quick)
        return 1 if any(r["exit"] for r in runs.values()) else 0
    summarise(folder, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
