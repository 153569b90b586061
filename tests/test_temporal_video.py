"""The temporal step inside the chunked video job: seams, and `framestyle eval flicker`."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from framestyle.jobs.cli import main
from framestyle.pipeline.decode import iter_frames
from framestyle.pipeline.flicker import pair_motion, warping_error
from framestyle.pipeline.probe import probe
from framestyle.pipeline.video_job import VideoJob, run_video_jobs
from media import ffmpeg


def pair_errors(source, output) -> np.ndarray:
    src, out = probe(str(source)), probe(str(output))
    size = (out.width, out.height)
    meter = warping_error(iter_frames(str(source), src, 0, src.frames, size),
                          iter_frames(str(output), out, 0, out.frames, size),
                          input_motion(str(source), size))
    assert meter.cuts == []
    return np.array(meter.pair_errors)


@functools.cache
def input_motion(source: str, size: tuple[int, int]) -> list:
    """The metric's flow over ``source``, computed once for all the outputs it scores."""
    src = probe(source)
    frames = list(iter_frames(source, src, 0, src.frames, size))
    return [None] + [pair_motion(a, b) for a, b in zip(frames, frames[1:])]


# the runs the tests below compare, as (chunk seconds, warm-up frames, temporal weight)
RUNS = {
    "long": (100, 8, 0.7),  # 2 chunks: 25 + 25
    "short": (0.28, 8, 0.7),  # 8 chunks, starting at 0, 6, 12, 18, 25, 31, 37, 43
    "cold": (0.28, 0, 0.7),  # the same chunks without warm-up frames
    "steady": (1, 8, 0.7),
    "per_frame": (1, 8, 0),
}


@pytest.fixture(scope="module")
def styled(ray_session, clips, tmp_path_factory) -> dict:
    """The bunny clip stylized each way of RUNS, in one job (one pool of actors for all):
    name -> (output, summary). crf 0 (lossless) so that what is measured is the temporal step,
    not keyframe pumping."""
    folder = tmp_path_factory.mktemp("temporal")
    jobs = [VideoJob(input=str(clips["bunny"]), output=str(folder / f"{name}.mp4"),
                     style="builtin:7", chunk_seconds=chunk, overlap=overlap, temporal=weight,
                     crf=0) for name, (chunk, overlap, weight) in RUNS.items()]
    summaries = run_video_jobs(jobs, progress=False)
    assert [s["status"] for s in summaries] == ["done"] * len(RUNS), summaries
    return {name: (folder / f"{name}.mp4", summary)
            for name, summary in zip(RUNS, summaries)}


def test_warm_up_frames_hide_chunk_seams(styled, clips):
    """Pairs that straddle a chunk boundary flicker no more than the same pairs of a run
    whose chunks do not break there; without warm-up frames they do."""
    reference = pair_errors(clips["bunny"], styled["long"][0])
    assert styled["short"][1]["chunks"] == 8
    seams = [5, 11, 17, 30, 36, 42]  # pair t straddles (t, t+1); 24 is a seam in both runs
    warmed = pair_errors(clips["bunny"], styled["short"][0])
    assert warmed[seams].mean() <= 1.05 * reference[seams].mean()
    inside = np.delete(warmed, seams)
    assert warmed[seams].mean() <= 1.5 * inside.mean()
    assert pair_errors(clips["bunny"], styled["cold"][0])[seams].mean() > \
        1.1 * reference[seams].mean()


def eval_flicker(capsys, *argv) -> dict:
    code = main(["eval", "flicker", *map(str, argv), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_eval_flicker_ranks_temporal_above_per_frame(styled, clips, capsys, tmp_path):
    bunny, per_frame = clips["bunny"], styled["per_frame"][0]
    results = {name: eval_flicker(capsys, bunny, styled[name][0], "--reference", per_frame)
               for name in ("per_frame", "steady")}
    steady = results["steady"]
    assert set(steady) == {"input", "output", "frames", "pairs", "cuts_skipped", "sample",
                           "warping_error", "warping_error_margin", "deviation",
                           "sharpness_kept"}
    assert steady["warping_error_margin"] is None  # every pair scored: the exact value
    assert steady["pairs"] == 49 and steady["frames"] == 50 and steady["sample"] == 1
    # the pairs were scored by several Ray tasks: together they are exactly the whole clip's
    # (up to the summary's 6 decimals)
    assert steady["warping_error"] == pytest.approx(
        pair_errors(bunny, styled["steady"][0]).mean(), abs=1e-6)
    assert results["per_frame"]["deviation"] == 0
    assert results["per_frame"]["sharpness_kept"] == 1
    assert steady["warping_error"] < 0.7 * results["per_frame"]["warping_error"]
    assert 0 < steady["deviation"] < 0.04 and steady["sharpness_kept"] > 0.9
    # a washed-out video is steadier still, and sharpness_kept is what gives it away
    washed = tmp_path / "washed.mp4"
    ffmpeg("-i", per_frame, "-vf", "gblur=sigma=1.5", "-c:v", "libx264", "-crf", "0", washed)
    blurred = eval_flicker(capsys, bunny, washed, "--reference", per_frame, "--sample", "2")
    assert blurred["sharpness_kept"] < 0.6 and blurred["deviation"] < 0.04
    # every 5th pair: pairs 1, 6, .., 46, close to the full value even on 50 frames
    sampled = eval_flicker(capsys, bunny, styled["steady"][0], "--reference", per_frame,
                           "--sample", "5")
    assert sampled["pairs"] == 10 and sampled["sample"] == 5
    assert sampled["warping_error"] == pytest.approx(steady["warping_error"], rel=0.2)
    # with how sure it is: the full value within the 95% interval, which is no wider than
    # the spread of 10 of 49 pairs allows
    margin = sampled["warping_error_margin"]
    errors = pair_errors(bunny, styled["steady"][0])
    assert abs(sampled["warping_error"] - steady["warping_error"]) <= margin
    assert margin <= 1.96 * errors.std() / np.sqrt(10)
    assert sampled["sharpness_kept"] == pytest.approx(steady["sharpness_kept"], abs=0.03)


def test_eval_flicker_with_style_and_mismatched_videos(styled, clips, capsys):
    out = styled["steady"][0]
    code = main(["eval", "flicker", str(clips["bunny"]), str(out), "--style", "builtin:7"])
    text, err = capsys.readouterr()
    assert code == 0, err
    assert "warping error" in text and "deviation" in text
    code = main(["eval", "flicker", str(clips["rotated"]), str(out)])
    _, err = capsys.readouterr()
    assert code == 2 and "not a stylization of it" in err
    with pytest.raises(SystemExit) as exit_info:  # argparse's own usage error
        main(["eval", "flicker", str(clips["bunny"]), str(out), "--sample", "0"])
    assert exit_info.value.code == 2 and "--sample" in capsys.readouterr().err
