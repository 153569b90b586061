"""A worker node lost in the middle of a bulk video job, an images job and a training run, on a
Ray cluster of a head and two worker nodes simulated on this machine: each finishes, and what it
made is whole. The three run in one process of their own (``node_loss.py``), which removes a
node from under each once it has made progress."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
from PIL import Image

from framestyle.models.hub import resolve
from framestyle.pipeline.stylize import Stylizer
from helpers import run_on_simulated_cluster
from image_zoo import photo
from media import audio_packets, decoded_frames, ffmpeg, frame_errors, frame_identity

pytestmark = pytest.mark.faults
PHOTOS, STEPS, EVERY = 24, 16, 4


@pytest.fixture(scope="module")
def lost(tmp_path_factory, clips):
    """Prepare the three jobs, run them on the simulated cluster, return (results, folders)."""
    work = tmp_path_factory.mktemp("node-loss")
    videos, photos = work / "videos", work / "photos"
    videos.mkdir()
    photos.mkdir()
    os.link(clips["bunny"], videos / "bunny.mp4")  # 50 frames, 5.1 AAC
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=128x72:rate=25", "-f", "lavfi",
           "-i", "sine=frequency=330:sample_rate=44100:duration=4", "-frames:v", "100",
           "-ac", "2", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
           "-c:a", "aac", videos / "moving.mp4")  # every frame differs: identity is unambiguous
    for i in range(PHOTOS):
        photo(64, 48, seed=300 + i).save(photos / f"p{i:02d}.jpg", quality=92)
    run = work / "framestyle-runs" / "lost"
    plan = {
        "video": {"argv": ["video", str(videos), str(work / "styled-videos") + "/", "--style",
                           "builtin:4", "--chunk-seconds", "0.3", "--temporal", "0", "--json"],
                  "watch": str(work / "styled-videos"), "pattern": "**/chunk-*.json",
                  "actor": ["ChunkWorker"]},
        "images": {"argv": ["images", str(photos), str(work / "styled-photos"), "--style",
                            "builtin:4", "--json"],
                   "watch": str(work / "styled-photos"), "pattern": "*.jpg",
                   # tiny photos: the stylizers may all be done by the first write,
                   # and then the writers' node goes
                   "actor": ["StylizeImages", "EncodeAndWrite"]},
        "train": {"argv": ["train", "distill", "--teacher", "builtin:7", "--data", str(photos),
                           "--name", "lost", "--steps", str(STEPS), "--width", "0.25",
                           "--checkpoint-every", str(EVERY), "--workers", "1", "--image-size", "32",
                           "--log-every", "2", "--json"],
                  "watch": str(run), "pattern": "checkpoint_manager_snapshot.json",
                  "actor": ["RayTrainWorker"]},
    }
    return run_on_simulated_cluster("node_loss.py", plan, work, str(work / "models"), 600), work


def finished_after_loss(result: dict) -> None:
    assert result["node_removed"] and result["running_at_loss"], result
    assert result["finished"] and result["code"] == 0, result["stderr"][-3000:]


def test_a_bulk_video_job_loses_a_node(lost, clips):
    results, work = lost
    result = results["video"]
    finished_after_loss(result)
    summary = json.loads(result["stdout"])
    assert summary["failed"] == 0
    # the lost node's chunks in flight were redone elsewhere
    assert sum(v["chunks_retried"] for v in summary["items"]) >= 1, summary["items"]
    stylizer = Stylizer(resolve("builtin:4"))
    for name in ("bunny", "moving"):
        source, output = work / "videos" / f"{name}.mp4", work / "styled-videos" / f"{name}.mp4"
        frames, styled = decoded_frames(source), decoded_frames(output)
        expected = stylizer(frames)
        assert len(styled) == len(frames)
        assert frame_errors(styled, expected).max() < 10  # frame i is input frame i, stylized
        if name == "moving":  # every frame differs: none is doubled or out of place
            assert frame_identity(styled, expected)[0] == list(range(len(frames)))
        assert audio_packets(output) == audio_packets(source)  # the audio, copied whole


def test_an_images_job_loses_a_node(lost):
    results, work = lost
    result = results["images"]
    finished_after_loss(result)
    assert 0 < result["progress_at_loss"] < PHOTOS
    summary = json.loads(result["stdout"])
    # every image counted once: a batch redone after the loss is not reported twice
    assert (summary["ok"], summary["failed"], summary["skipped"]) == (PHOTOS, 0, 0)
    written = sorted(p.name for p in (work / "styled-photos").glob("*.jpg"))
    assert written == sorted(p.name for p in (work / "photos").glob("*.jpg"))
    stylizer = Stylizer(resolve("builtin:4"))
    for name in (written[0], written[-1]):
        source = np.asarray(Image.open(work / "photos" / name).convert("RGB"))
        output = np.asarray(Image.open(work / "styled-photos" / name).convert("RGB"))
        assert np.abs(output.astype(int) - stylizer([source])[0].astype(int)).mean() < 6


def test_a_training_run_loses_a_node(lost):
    results, work = lost
    result = results["train"]
    finished_after_loss(result)
    restarts = [int(n) for n in re.findall(r"resuming lost at step (\d+) after a worker "
                                           r"failure\n", result["stderr"])]
    assert len(restarts) == 1 and EVERY <= restarts[0] < STEPS, result["stderr"][-3000:]
    summary = json.loads(result["stdout"])
    assert summary["steps"] == STEPS and summary["worker_restarts"] == 1
    assert summary["published"] == ["lost@1"]
    assert (work / "models" / "lost" / "1" / "model.json").exists()
