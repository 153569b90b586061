"""The chunk scheduler: one pool of stylizer actors serves several videos, and a stylizer that
dies costs only its chunk in flight."""

from __future__ import annotations

import os
import signal
import threading
import time

from framestyle.models.hub import resolve
from framestyle.pipeline.stylize import Stylizer
from framestyle.pipeline.video_job import VideoJob, run_video_jobs
from helpers import alive_actors
from media import decoded_frames, ffmpeg, frame_identity


def test_killed_stylizer_costs_one_chunk_and_videos_share_a_pool(ray_session, clips, tmp_path):
    moving = tmp_path / "moving.mp4"  # every frame differs: frame identity is unambiguous
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=128x72:rate=25", "-frames:v", "50",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", moving)
    inputs = {"moving": moving, "rotated": clips["rotated"]}
    jobs = [VideoJob(input=str(path), output=str(tmp_path / "out" / f"{name}.mp4"),
                     style="builtin:4", chunk_seconds=0.3, temporal=0)
            for name, path in inputs.items()]
    results, errors = [], []

    def run() -> None:
        try:
            results.extend(run_video_jobs(jobs, progress=False))
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("out/.framestyle/*/chunk-*.json")) and time.monotonic() < deadline:
        time.sleep(0.05)  # until the pool is warm and one chunk is in
    workers = alive_actors("ChunkWorker")
    assert len(workers) == 2  # one pool for both videos: one actor per CPU
    os.kill(workers[0].pid, signal.SIGKILL)  # mid-chunk: more chunks wait than there are actors
    thread.join(timeout=240)
    assert not errors, errors
    assert sum(r["chunks_retried"] for r in results) == 1
    assert [r["frames_out"] for r in results] == [50, 45]
    stylizer = Stylizer(resolve("builtin:4"))
    for name, path in inputs.items():
        frames = decoded_frames(path)
        best, errors = frame_identity(decoded_frames(tmp_path / "out" / f"{name}.mp4"),
                                      stylizer(frames))
        assert best == list(range(len(frames)))  # every frame is its own input frame, stylized
        assert max(errors) < 10, errors  # within H.264's loss on these tiny busy frames
    assert not list(tmp_path.glob("out/.framestyle/*"))


def test_a_pool_larger_than_what_is_free_still_finishes(ray_session, tmp_path):
    """The pool is sized to the cluster (2 CPUs, 2 actors), but something else holds one CPU (as
    a Serve replica does): the actor that cannot start gets no chunk, and the job finishes on the
    other. (Before, its chunk waited for ever.)"""
    import ray

    @ray.remote(num_cpus=1)
    class Holder:
        def ready(self) -> bool:
            return True

    holder = Holder.remote()
    ray.get(holder.ready.remote())
    moving = tmp_path / "moving.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=96x54:rate=25", "-frames:v", "30",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", moving)
    job = VideoJob(input=str(moving), output=str(tmp_path / "out.mp4"), style="builtin:4",
                   chunk_seconds=0.4, temporal=0)
    results, errors = [], []
    thread = threading.Thread(target=lambda: _collect(job, results, errors), daemon=True)
    thread.start()
    thread.join(timeout=180)
    ray.kill(holder)
    assert not thread.is_alive(), "the job waited for an actor that could not start"
    assert errors == [] and results[0]["status"] == "done"
    output = decoded_frames(tmp_path / "out.mp4")
    expected = Stylizer(resolve("builtin:4"))(decoded_frames(moving))
    assert frame_identity(output, expected)[0] == list(range(30))  # every frame in its place


def _collect(job, results, errors) -> None:
    try:
        results.extend(run_video_jobs([job], progress=False))
    except Exception as e:  # noqa: BLE001 - reported by the test's assertion
        errors.append(e)


def _node(cpus: float, gpus: float = 0, alive: bool = True) -> dict:
    """A node as ``ray.nodes()`` describes it (the keys the pool reads)."""
    return {"Alive": alive, "Resources": {"CPU": cpus, **({"GPU": gpus} if gpus else {})}}


def test_gpu_actors_take_their_gpus_share_of_the_node_unless_told(ray_session, monkeypatch):
    """A GPU actor's host side (decode, flow, encode) runs on as many threads as it holds CPUs:
    by default each takes its GPU's share of its node, the smallest share where GPU nodes
    differ (so every GPU gets an actor); a share asked for starts only the actors each node's
    CPUs can give it."""
    import ray

    from framestyle.jobs.cli import build_parser
    from framestyle.pipeline import cluster

    # the real cluster first: its nodes are described with the keys the pool reads, and a
    # cluster without GPUs gets one single-threaded actor per CPU whatever the share
    nodes = ray.nodes()
    assert nodes and all("Alive" in n and "CPU" in n["Resources"] for n in nodes)
    cpus = int(ray.cluster_resources()["CPU"])
    assert cluster.worker_pool() == cluster.worker_pool(8) == (cpus, {"num_cpus": 1})

    cloud = [_node(4, 1), _node(48, 4), _node(16), _node(2, 1, alive=False)]
    monkeypatch.setattr(ray, "nodes", lambda: cloud)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 68.0, "GPU": 5.0})
    assert cluster.gpu_share_of_cpus(cluster.gpu_nodes(cloud)) == 4.0
    assert cluster.worker_pool() == (5, {"num_gpus": 1, "num_cpus": 4.0})
    assert cluster.worker_pool(2) == (5, {"num_gpus": 1, "num_cpus": 2})
    # 16 a GPU: the 4-CPU node can give none, the 48-CPU node three of its four GPUs
    assert cluster.worker_pool(16) == (3, {"num_gpus": 1, "num_cpus": 16})
    # more GPUs than CPUs on a node: one CPU each all the same
    assert cluster.gpu_share_of_cpus(cluster.gpu_nodes([_node(2, 8)])) == 1.0

    # the default reaches the pool from the command line and from a spec as None
    args = build_parser().parse_args(["video", "in.mp4", "out.mp4", "--style", "builtin:1"])
    assert args.cpus_per_gpu is None
    assert VideoJob(input="in.mp4", output="out.mp4", style="builtin:1").inference.cpus_per_gpu \
        is None
