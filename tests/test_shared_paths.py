"""On a cluster of several nodes, a local path that not every node can see is refused in one line
(exit 2) before anything is written; one every node sees (a shared mount) works. Simulated on this
machine: each worker node checks paths on a disk of its own (``shared_paths.py``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from helpers import run_on_simulated_cluster
from media import decoded_frames

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def ran(tmp_path_factory, clips):
    work = tmp_path_factory.mktemp("shared-paths")
    shared, alone = work / "shared", work / "head-only"
    for folder in (shared / "videos", alone / "videos", alone / "photos", shared / "photos"):
        folder.mkdir(parents=True)
    for folder in (shared / "videos", alone / "videos"):
        os.link(clips["bunny"], folder / "bunny.mp4")
    for folder in (shared / "photos", alone / "photos"):
        shutil.copy(Path(__file__).parent.parent / "docs" / "images" / "painting-as-style.png",
                    folder / "p.png")
    video = ["video", "--style", "builtin:4", "--temporal", "0", "--json"]
    plan = {
        "shared": str(shared), "disks": str(work / "disks"),
        "commands": {
            "video_head_only_output": [*video, str(shared / "videos" / "bunny.mp4"),
                                       str(alone / "out" / "bunny.mp4")],
            "video_head_only_input": [*video, str(alone / "videos" / "bunny.mp4"),
                                      str(shared / "out" / "from-head.mp4")],
            "images_head_only_source": ["images", str(alone / "photos"),
                                        str(shared / "styled"), "--style", "builtin:4"],
            "train_head_only_hub": ["train", "distill", "--teacher", "builtin:7", "--data",
                                    str(shared / "photos"), "--name", "n", "--steps", "2"],
            "video_shared": [*video, str(shared / "videos" / "bunny.mp4"),
                             str(shared / "out" / "bunny.mp4")],
        },
    }
    return run_on_simulated_cluster("shared_paths.py", plan, work, str(alone / "models"),
                                    400), shared, alone


def refused(result: dict, name: str, path: Path) -> None:
    assert result["code"] == 2, result
    (line,) = result["stderr"].strip().splitlines()[-1:]
    assert line.startswith(f"framestyle: error: {name} {path} is on a local disk that 2 of this "
                           "cluster's 3 nodes cannot see"), line
    assert "s3://" in line


def test_a_local_path_some_nodes_cannot_see_is_refused_before_any_work(ran):
    results, shared, alone = ran
    refused(results["video_head_only_output"], "OUT", alone / "out" / "bunny.mp4")
    assert not (alone / "out").exists()  # nothing written: no output, no chunks
    refused(results["video_head_only_input"], "IN", alone / "videos" / "bunny.mp4")
    assert not (shared / "out" / "from-head.mp4").exists()
    refused(results["images_head_only_source"], "SOURCE", alone / "photos")
    assert not (shared / "styled").exists()
    # the runs live beside the model hub, on the head's disk: the first path named
    refused(results["train_head_only_hub"], "--storage", alone / "framestyle-runs")
    assert not list(alone.rglob(".framestyle-shared-*"))  # the markers are cleaned up


def test_a_path_every_node_sees_works(ran):
    results, shared, _ = ran
    result = results["video_shared"]
    assert result["code"] == 0, result["stderr"][-2000:]
    assert results["only_this_node"] is False  # so the video was assembled by a Ray task
    assert len(decoded_frames(shared / "out" / "bunny.mp4")) == 50
    assert not list(shared.rglob(".framestyle-shared-*"))
