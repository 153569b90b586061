"""Resume identity and the job lease: finished chunks are reused only by the job that made them
(same input, model content, output and settings), and one job runs once at a time."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from framestyle.core import storage
from framestyle.core.errors import JobBusyError
from framestyle.core.lease import Lease
from framestyle.models.hub import resolve
from framestyle.models.transformer_net import TransformerNet
from framestyle.pipeline.stylize import Stylizer
from framestyle.pipeline.video_job import VideoJob, run_video_job, work_prefix
from helpers import kill_cli_when, run_cli, seeded
from media import decoded_frames, frame_errors


def checkpoint(tmp_path: Path, name: str, seed: int) -> Path:
    path = tmp_path / f"{name}.pth"
    torch.save(seeded(TransformerNet(width=0.25), seed=seed).state_dict(), path)
    return path


def job_work(job: VideoJob) -> Path:
    return Path(work_prefix(job, resolve(job.style), storage.require(job.input)))


def test_chunks_of_another_model_are_never_reused(ray_session, clips, tmp_path, capsys):
    """Kill a job styled with checkpoint A after two chunks; the same command with checkpoint B
    reuses nothing; A again reuses A's chunks, and every frame is A's."""
    a, b = checkpoint(tmp_path, "a", 1), checkpoint(tmp_path, "b", 2)
    output = tmp_path / "out" / "bunny.mp4"
    command = ["video", clips["bunny"], output, "--chunk-seconds", "0.3", "--temporal", "0"]
    job_a = VideoJob(input=str(clips["bunny"]), output=str(output), style=str(a),
                     chunk_seconds=0.3, temporal=0)
    work_a = job_work(job_a)
    kill_cli_when(lambda: len(list(work_a.glob("chunk-*.json"))) >= 2, *command, "--style", a)
    assert len(list(work_a.glob("chunk-*.json"))) >= 2 and not output.exists()
    assert (work_a / "lease.json").exists()  # left by the killed run; its holder is gone

    # B, as a user runs it; stderr is only our progress bar
    code, out, err = run_cli(capsys, *command, "--style", b, "--json")
    assert code == 0, err[-2000:]
    assert json.loads(out)["chunks_reused"] == 0
    for line in err.replace("\r", "\n").splitlines():
        assert not line.strip() or line.startswith("bunny2s.mp4:"), err[-2000:]
    # (a chunk the killed run's workers were uploading may have landed since: count now)
    finished = len(list(work_a.glob("chunk-*.json")))
    assert 2 <= finished < 7  # 7 chunks in all: B neither took nor removed A's

    result = run_video_job(job_a, progress=False)  # A again: takes over the dead run's lease
    assert result["chunks_reused"] == finished and result["frames_out"] == 50
    assert not work_a.exists()

    inputs = decoded_frames(clips["bunny"])
    by_a, by_b = (Stylizer(resolve(str(p)))(inputs) for p in (a, b))
    errors = frame_errors(decoded_frames(output), by_a)
    assert errors.max() < 0.25 * frame_errors(by_a, by_b).min(), errors  # every frame A's


def test_a_second_run_of_a_running_job_is_refused(ray_session, clips, tmp_path, capsys):
    output = tmp_path / "out.mp4"
    job = VideoJob(input=str(clips["bunny"]), output=str(output), style="builtin:1")
    with Lease(str(job_work(job))):  # the first run, alive (this process holds its lease)
        code, out, err = run_cli(capsys, "video", clips["bunny"], output, "--style", "builtin:1")
    assert code == JobBusyError.exit_code == 4
    assert out == "" and len(err.strip().splitlines()) == 1
    assert "another run of this job is in progress" in err
    assert not output.exists()


def test_lease_expires_and_refuses_elsewhere(tmp_path, bucket):
    for prefix in (str(tmp_path / "work"), f"s3://{bucket}/lease-test/work"):
        first = Lease(prefix, ttl=60)
        first.acquire()
        with pytest.raises(JobBusyError):
            Lease(prefix).acquire()
        first.release()
        assert storage.storage_for(prefix).get_bytes(storage.join(prefix, "lease.json")) is None
        # a holder on another machine: live until its time runs out, then taken over
        record = {"token": "x", "host": "elsewhere", "pid": 1, "expires": time.time() + 60}
        uri = storage.join(prefix, "lease.json")
        storage.storage_for(uri).put_bytes(json.dumps(record).encode(), uri)
        with pytest.raises(JobBusyError, match="elsewhere"):
            Lease(prefix).acquire()
        record["expires"] = time.time() - 1
        storage.storage_for(uri).put_bytes(json.dumps(record).encode(), uri)
        with Lease(prefix) as taken:
            assert json.loads(storage.storage_for(uri).get_bytes(uri))["token"] == taken.token
