"""The video job against a separate `ray start` head with token authentication on."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from framestyle.pipeline.probe import probe

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head():
    """A one-CPU head started the way users start one; killed (only it) afterwards.

    Its own short temp dir (Unix socket paths are limited to 107 bytes) keeps it apart from the
    test session's Ray instance.
    """
    temp_dir = tempfile.mkdtemp(prefix="fsray", dir="/tmp")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    head = subprocess.Popen(
        [RAY, "start", "--head", "--block", f"--port={port}", "--num-cpus=1",
         "--include-dashboard=false", f"--temp-dir={temp_dir}"],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert head.poll() is None, head.stderr.read().decode()[-2000:]
            time.sleep(0.5)
    yield address, env
    os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(timeout=5)
    except subprocess.TimeoutExpired:  # `ray start --block` can sit out its whole grace period
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()
    shutil.rmtree(temp_dir, ignore_errors=True)


def test_video_job_runs_on_a_token_auth_cluster(ray_head, clips, tmp_path):
    address, env = ray_head  # no RAY_AUTH_MODE in the client's environment: framestyle sets it
    output = tmp_path / "on-cluster.mp4"
    done = subprocess.run(
        [sys.executable, "-m", "framestyle.jobs.cli", "video", str(clips["bunny"]), str(output),
         "--style", "builtin:4", "--address", address, "--json"],
        env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["frames_out"] == 50 and summary["chunks"] == 1  # one CPU: one chunk
    assert probe(str(output)).frames == 50
