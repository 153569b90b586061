"""The temporal step inside the chunked video job: seams, and `framestyle eval flicker`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from framestyle.jobs.cli import main
from framestyle.pipeline.decode import iter_frames
from framestyle.pipeline.flicker import warping_error
from framestyle.pipeline.probe import probe
from framestyle.pipeline.video_job import VideoJob, run_video_job


def pair_errors(source, output) -> np.ndarray:
    src, out = probe(str(source)), probe(str(output))
    size = (out.width, out.height)
    meter = warping_error(iter_frames(str(source), src, 0, src.frames, size),
                          iter_frames(str(output), out, 0, out.frames, size))
    assert meter.cuts == []
    return np.array(meter.pair_errors)


def stylize(clip, out, chunk_seconds, overlap, temporal=0.7):
    # crf 0 (lossless) so that what is measured is the temporal step, not keyframe pumping
    job = VideoJob(input=str(clip), output=str(out), style="builtin:7",
                   chunk_seconds=chunk_seconds, overlap=overlap, temporal=temporal, crf=0)
    return run_video_job(job, progress=False)


def test_warm_up_frames_hide_chunk_seams(ray_session, clips, tmp_path):
    """Pairs that straddle a chunk boundary flicker no more than the same pairs of a run
    whose chunks do not break there; without warm-up frames they do."""
    long_chunks = tmp_path / "long.mp4"
    stylize(clips["bunny"], long_chunks, chunk_seconds=100, overlap=8)  # 2 chunks: 25 + 25
    reference = pair_errors(clips["bunny"], long_chunks)

    short = tmp_path / "short.mp4"
    summary = stylize(clips["bunny"], short, chunk_seconds=0.28, overlap=8)
    assert summary["chunks"] == 8  # chunks start at 0, 6, 12, 18, 25, 31, 37, 43
    seams = [5, 11, 17, 30, 36, 42]  # pair t straddles (t, t+1); 24 is a seam in both runs
    warmed = pair_errors(clips["bunny"], short)
    assert warmed[seams].mean() <= 1.05 * reference[seams].mean()
    inside = np.delete(warmed, seams)
    assert warmed[seams].mean() <= 1.5 * inside.mean()

    cold = tmp_path / "cold.mp4"
    stylize(clips["bunny"], cold, chunk_seconds=0.28, overlap=0)
    assert pair_errors(clips["bunny"], cold)[seams].mean() > 1.1 * reference[seams].mean()


@pytest.fixture(scope="module")
def steady(ray_session, clips, tmp_path_factory):
    """The bunny clip stylized with the temporal step (one job, shared by the tests below)."""
    out = tmp_path_factory.mktemp("steady") / "steady.mp4"
    stylize(clips["bunny"], out, chunk_seconds=1, overlap=8, temporal=0.7)
    return out


def test_eval_flicker_ranks_temporal_above_per_frame(ray_session, clips, steady, tmp_path,
                                                     capsys):
    per_frame = tmp_path / "per_frame.mp4"
    stylize(clips["bunny"], per_frame, chunk_seconds=1, overlap=8, temporal=0)
    results = {}
    for name, video in (("per_frame", per_frame), ("steady", steady)):
        code = main(["eval", "flicker", str(clips["bunny"]), str(video), "--reference",
                     str(per_frame), "--json"])
        out, err = capsys.readouterr()
        assert code == 0, err
        results[name] = json.loads(out)
    assert set(results["steady"]) == {"input", "output", "frames", "pairs", "cuts_skipped",
                                      "warping_error", "deviation"}
    assert results["steady"]["pairs"] == 49 and results["steady"]["frames"] == 50
    assert results["per_frame"]["deviation"] == 0
    assert results["steady"]["warping_error"] < 0.7 * results["per_frame"]["warping_error"]
    assert 0 < results["steady"]["deviation"] < 0.04


def test_eval_flicker_with_style_and_mismatched_videos(ray_session, clips, steady, capsys):
    out = steady
    code = main(["eval", "flicker", str(clips["bunny"]), str(out), "--style", "builtin:7"])
    text, err = capsys.readouterr()
    assert code == 0, err
    assert "warping error" in text and "deviation" in text
    code = main(["eval", "flicker", str(clips["rotated"]), str(out)])
    _, err = capsys.readouterr()
    assert code == 2 and "not a stylization of it" in err
