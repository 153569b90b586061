"""The video job end to end on the shared Ray instance: local files, S3 via moto, resume."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from framestyle.core import storage
from framestyle.models.hub import resolve
from framestyle.pipeline import video_job
from framestyle.pipeline.probe import probe
from framestyle.pipeline.video_job import VideoJob, run_video_job, work_prefix
from helpers import run_cli
from media import audio_packets

SUMMARY_KEYS = {"input", "output", "style", "model_sha256", "frames_in", "frames_out", "chunks",
                "chunks_reused", "chunks_retried", "seconds", "fps", "codec", "audio_streams",
                "audio_reencoded", "status", "error", "job_id", "preview", "executor"}


def job_work(job: VideoJob) -> Path:
    return Path(work_prefix(job, resolve(job.style), storage.require(job.input)))


def assert_same_video(out_path, in_path):
    src, dst = probe(str(in_path)), probe(str(out_path))
    assert dst.frames == src.frames
    assert dst.fps == src.fps
    assert abs(dst.duration - src.duration) <= 1 / float(src.fps)
    assert dst.rotation == src.rotation
    assert dst.audio == src.audio  # codec, channels, sample rate, stream count
    return dst


def test_local_fractional_rate_rotated_video_with_json(ray_session, clips, tmp_path, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, out, err = run_cli(capsys, "video", clips["rotated"], out_dir, "--style", "builtin:2",
                             "--chunk-seconds", "0.5", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert set(summary) == SUMMARY_KEYS
    output = out_dir / "ntsc_rot90-builtin-2.mp4"  # a folder OUT names the file
    assert summary["output"] == str(output)
    assert summary["frames_in"] == summary["frames_out"] == 45
    assert summary["chunks"] == 2 and summary["chunks_reused"] == 0  # 3 x 15 frames -> 22 + 23
    assert summary["audio_streams"] == 1
    info = assert_same_video(output, clips["rotated"])
    assert info.rotation == 90 and (info.width, info.height) == (96, 64)
    assert audio_packets(output) == audio_packets(clips["rotated"])
    assert os.listdir(out_dir) == [output.name]  # no work folder or temp file left behind


def test_s3_in_and_out_keeps_51_audio_and_shows_progress(ray_session, clips, bucket, tmp_path,
                                                         capsys):
    s3 = storage.S3Storage()
    src = f"s3://{bucket}/in/bunny.mp4"
    dst = f"s3://{bucket}/out/bunny-styled.mp4"
    s3.upload(str(clips["bunny"]), src)
    code, out, err = run_cli(capsys, "video", src, dst, "--style", "builtin:3=0.5,12=0.5",
                             "--chunk-seconds", "1", "--height", "72")
    assert code == 0, err
    assert "50/50" in err and "frame/s" in err  # the progress bar
    assert "50 frames" in out
    local = tmp_path / "result.mp4"
    s3.download(dst, str(local))
    info = assert_same_video(local, clips["bunny"])
    assert (info.width, info.height) == (128, 72)
    assert [(a.codec, a.channels, a.sample_rate) for a in info.audio] == [("aac", 6, 48000)]
    assert audio_packets(local) == audio_packets(clips["bunny"])
    keys = [o["Key"] for o in s3.client.list_objects_v2(Bucket=bucket, Prefix="out/")["Contents"]]
    assert keys == ["out/bunny-styled.mp4"]


def _crash_before_assembly(*args, **kwargs):
    raise RuntimeError("simulated crash after the chunks")


def test_resume_redoes_only_missing_or_damaged_chunks(ray_session, clips, tmp_path, monkeypatch):
    job = VideoJob(input=str(clips["bunny"]), output=str(tmp_path / "bunny.mp4"),
                   style="builtin:5", chunk_seconds=0.5)
    monkeypatch.setattr(video_job, "assemble_and_store", _crash_before_assembly)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_video_job(job, progress=False)
    assert not (tmp_path / "bunny.mp4").exists()
    work = job_work(job)
    chunks = sorted(work.glob("chunk-*.mkv"))
    assert len(chunks) == 4  # 0.5 s is 12 frames: 5 chunks -> 4 for 2 workers
    (work / "chunk-00001.mkv").unlink()
    damaged = work / "chunk-00003.mkv"
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different content: presence is not enough
    damaged.write_bytes(bytes(data))

    monkeypatch.undo()
    calls = []
    real = video_job.run_chunks
    monkeypatch.setattr(video_job, "run_chunks",
                        lambda tasks, *a, **kw: calls.append([t.chunk.index for t in tasks])
                        or real(tasks, *a, **kw))
    result = run_video_job(job, progress=False)
    assert calls == [[1, 3]]
    assert result["chunks"] == 4 and result["chunks_reused"] == 2
    assert result["frames_out"] == 50
    assert_same_video(tmp_path / "bunny.mp4", clips["bunny"])
    assert not work.exists()


def test_a_short_job_in_this_process_writes_what_ray_writes_and_resumes(ray_session, clips,
                                                                         tmp_path, capsys,
                                                                         monkeypatch):
    from framestyle.core.errors import InputError
    from framestyle.pipeline.chunk_worker import ChunkWorker
    from media import decoded_frames

    monkeypatch.setattr(video_job, "local_cpus", lambda: 2)  # the plan Ray's 2 CPUs get

    def assembly_task(video):
        raise AssertionError("a one-node Ray assembles on a thread of the driver, no task")

    monkeypatch.setattr(video_job, "_assemble", assembly_task)
    outputs = {}
    for executor in ("ray", "process"):
        outputs[executor] = tmp_path / f"{executor}.mp4"
        code, out, err = run_cli(capsys, "video", clips["bunny"], outputs[executor], "--style",
                                 "builtin:5", "--chunk-seconds", "0.5", "--executor", executor,
                                 "--json")
        assert code == 0, err
        summary = json.loads(out)
        assert summary["executor"] == executor
        assert summary["frames_out"] == 50 and summary["chunks"] == 4
    ray_frames = decoded_frames(outputs["ray"])
    assert len(ray_frames) == 50
    assert all(np.array_equal(a, b) for a, b in zip(decoded_frames(outputs["process"]),
                                                   ray_frames, strict=True))
    assert audio_packets(outputs["process"]) == audio_packets(clips["bunny"])

    # a chunk that fails fails the job (chunks in flight finish); the next run reuses them
    job = VideoJob(input=str(clips["bunny"]), output=str(tmp_path / "again.mp4"),
                   style="builtin:5", chunk_seconds=0.5, executor="process")
    real = ChunkWorker.process

    def failing(self, task):
        if task.chunk.index == 2:
            raise InputError("simulated bad chunk")
        yield from real(self, task)

    monkeypatch.setattr(ChunkWorker, "process", failing)
    with pytest.raises(InputError, match="simulated bad chunk"):
        run_video_job(job, progress=False)
    assert not (tmp_path / "again.mp4").exists()
    stored = {p.name for p in job_work(job).glob("chunk-*.mkv")}
    assert {"chunk-00000.mkv", "chunk-00001.mkv"} <= stored and "chunk-00002.mkv" not in stored
    monkeypatch.setattr(ChunkWorker, "process", real)
    result = run_video_job(job, progress=False)
    assert result["executor"] == "process" and result["chunks_reused"] == len(stored)
    assert all(np.array_equal(a, b) for a, b in zip(decoded_frames(tmp_path / "again.mp4"),
                                                   ray_frames, strict=True))
    assert not job_work(job).exists()


def test_auto_runs_in_this_process_only_a_short_job_with_no_cluster_to_join(monkeypatch):
    from framestyle.pipeline.video_job import IN_PROCESS_MAX_FRAMES, runs_in_process

    assert runs_in_process("process", "10.0.0.1:6379", 10 ** 6)  # asked for: whatever the job
    assert not runs_in_process("ray", None, 10)
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert not runs_in_process("auto", None, 10)  # a cluster to join
    monkeypatch.delenv("RAY_ADDRESS")
    assert not runs_in_process("auto", "10.0.0.1:6379", 10)
    monkeypatch.setattr(video_job, "joins_a_cluster", lambda address: False)
    assert runs_in_process("auto", None, IN_PROCESS_MAX_FRAMES)
    assert not runs_in_process("auto", None, IN_PROCESS_MAX_FRAMES + 1)  # long: Ray's actors


def test_only_a_driver_on_the_cluster_assembles_on_its_own_threads(ray_session, monkeypatch):
    from ray.util.client import ray as client

    from framestyle.pipeline.cluster import only_this_node

    assert only_this_node()  # the session's local Ray: this machine is the whole cluster
    monkeypatch.setattr(client, "is_connected", lambda: True)
    assert not only_this_node()  # through ray:// this process is off the cluster, one node or not
