from fractions import Fraction

import pytest

from framestyle.pipeline.plan import gop_size, plan_chunks, plan_from_json, plan_to_json


def covered(chunks):
    return [f for c in chunks for f in range(c.start, c.end)]


def test_chunks_cover_every_frame_once_with_a_short_last_chunk():
    chunks = plan_chunks(frames=132, fps=Fraction(25), chunk_seconds=2)
    assert [(c.start, c.end) for c in chunks] == [(0, 50), (50, 100), (100, 132)]
    assert covered(chunks) == list(range(132))
    assert chunks[-1].frames == 32


def test_overlap_warms_every_chunk_but_the_first():
    chunks = plan_chunks(frames=100, fps=Fraction(25), chunk_seconds=1, overlap=4)
    assert chunks[0].warmup == 0 and chunks[0].decode_start == 0
    assert all(c.warmup == 4 and c.decode_start == c.start - 4 for c in chunks[1:])


def test_overlap_never_reaches_before_the_first_frame():
    chunks = plan_chunks(frames=10, fps=Fraction(2), chunk_seconds=1, overlap=4)
    assert [c.warmup for c in chunks] == [0, 2, 4, 4, 4]
    assert all(c.decode_start >= 0 for c in chunks)


def test_fractional_rate_uses_whole_frames_without_drift():
    fps = Fraction(30000, 1001)
    chunks = plan_chunks(frames=1800, fps=fps, chunk_seconds=2)
    # 2 s at 29.97 fps is 59.94 frames: every chunk is 60 whole frames, 30 chunks, no remainder
    assert {c.frames for c in chunks} == {60}
    assert len(chunks) == 30 and covered(chunks) == list(range(1800))


def test_tiny_chunk_seconds_still_makes_one_frame_chunks():
    chunks = plan_chunks(frames=3, fps=Fraction(25), chunk_seconds=0.001)
    assert [c.frames for c in chunks] == [1, 1, 1]


def test_single_short_video_is_one_chunk_and_names_are_stable():
    chunks = plan_chunks(frames=7, fps=Fraction(24000, 1001), chunk_seconds=2)
    assert len(chunks) == 1 and chunks[0].name == "chunk-00000" and chunks[0].frames == 7


@pytest.mark.parametrize("frames,seconds", [(0, 2), (10, 0)])
def test_rejects_empty_plans(frames, seconds):
    with pytest.raises(ValueError):
        plan_chunks(frames=frames, fps=Fraction(25), chunk_seconds=seconds)


def test_gop_is_about_two_seconds():
    assert gop_size(Fraction(25)) == 50
    assert gop_size(Fraction(30000, 1001)) == 60


def test_workers_shorten_chunks_so_none_sit_idle():
    chunks = plan_chunks(frames=132, fps=Fraction(25), chunk_seconds=2, workers=2,
                         overlap=0)
    assert [c.frames for c in chunks] == [66, 66]
    many = plan_chunks(frames=100, fps=Fraction(25), chunk_seconds=1, workers=4, overlap=0)
    assert [c.frames for c in many] == [25] * 4  # already a multiple: unchanged
    few = plan_chunks(frames=30, fps=Fraction(25), chunk_seconds=2, workers=4, overlap=0)
    assert [c.frames for c in few] == [7, 8, 7, 8]  # at least one chunk per worker
    long = plan_chunks(frames=25 * 600, fps=Fraction(25), chunk_seconds=2, workers=7,
                       overlap=0)
    assert len(long) == 294 and {c.frames for c in long} == {51, 52}  # 300 -> 294 chunks
    assert covered(long) == list(range(25 * 600))
    tiny = plan_chunks(frames=3, fps=Fraction(25), chunk_seconds=2, workers=8, overlap=0)
    assert [c.frames for c in tiny] == [1, 1, 1]
    assert covered(plan_chunks(frames=45, fps=Fraction(30000, 1001), chunk_seconds=0.5,
                               workers=2)) == list(range(45))


def test_chunks_that_warm_up_are_shorter_so_every_worker_decodes_as_many_frames():
    # the first chunk has no warm-up frames to decode and stylize: it takes theirs in frames
    chunks = plan_chunks(frames=132, fps=Fraction(25), chunk_seconds=2, workers=2, overlap=8)
    assert [(c.start, c.frames, c.warmup) for c in chunks] == [(0, 70, 0), (70, 62, 8)]
    four = plan_chunks(frames=30, fps=Fraction(25), chunk_seconds=2, workers=4, overlap=8)
    assert [c.frames + c.warmup for c in four] == [13, 14, 13, 14]
    assert covered(four) == list(range(30))
    long = plan_chunks(frames=25 * 600, fps=Fraction(25), chunk_seconds=2, workers=7, overlap=8)
    assert len(long) == 294 and {c.frames + c.warmup for c in long} == {58, 59}
    assert covered(long) == list(range(25 * 600))
    # too short to carry the warm-up: split evenly, each chunk warming on what precedes it
    short = plan_chunks(frames=9, fps=Fraction(25), chunk_seconds=2, workers=2, overlap=8)
    assert [(c.start, c.frames, c.warmup) for c in short] == [(0, 4, 0), (4, 5, 4)]


def test_stored_plan_round_trips_and_is_checked_against_the_video():
    chunks = plan_chunks(frames=132, fps=Fraction(25), chunk_seconds=2, workers=2)
    assert plan_from_json(plan_to_json(chunks), 132) == chunks
    assert plan_from_json(plan_to_json(chunks), 131) is None  # a different video
    assert plan_from_json(plan_to_json(chunks[:1] + chunks[2:]), 132) is None  # a gap
    assert plan_from_json(b"{not json", 132) is None
