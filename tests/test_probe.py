from fractions import Fraction

import pytest

from framestyle.pipeline.errors import InputError
from framestyle.pipeline.probe import probe


def test_probe_reads_rate_frames_size_and_51_audio(clips):
    info = probe(str(clips["bunny"]))
    assert info.fps == Fraction(25) and info.frames == 50
    assert (info.width, info.height, info.rotation) == (160, 90, 0)
    assert [(a.codec, a.channels, a.sample_rate) for a in info.audio] == [("aac", 6, 48000)]
    assert info.duration == pytest.approx(2.0)


def test_probe_keeps_fractional_rate_exact_and_reads_rotation(clips):
    info = probe(str(clips["rotated"]))
    assert info.fps == Fraction(30000, 1001)
    assert info.frames == 45  # 1.5 s at 29.97 fps
    assert info.rotation == 90
    assert info.display_size == (64, 96)
    assert [(a.channels, a.sample_rate) for a in info.audio] == [(2, 44100)]


@pytest.mark.parametrize("name,message", [
    ("not_video", "not a readable video"),
    ("truncated", "not a readable video"),
    ("truncated_faststart", "truncated"),
])
def test_probe_rejects_bad_files_with_one_line(clips, name, message):
    with pytest.raises(InputError, match=message) as err:
        probe(str(clips[name]))
    assert "\n" not in str(err.value)
