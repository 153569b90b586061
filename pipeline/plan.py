"""Split a video into chunks of whole frames that workers process independently."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

DEFAULT_CHUNK_SECONDS = 2.0
DEFAULT_OVERLAP_FRAMES = 4


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int  # first frame written to this chunk's output
    end: int  # one past the last frame written
    warmup: int  # frames decoded before ``start`` only to warm temporal state

    @property
    def frames(self) -> int:
        return self.end - self.start

    @property
    def decode_start(self) -> int:
        return self.start - self.warmup

    @property
    def name(self) -> str:
        return f"chunk-{self.index:05d}"


def plan_chunks(frames: int, fps: Fraction, chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
                overlap: int = DEFAULT_OVERLAP_FRAMES) -> list[Chunk]:
    """Chunks of about ``chunk_seconds`` covering frames [0, frames) exactly once.

    The chunk length is a whole number of frames (at least one), so fractional rates such as
    30000/1001 never drift. The last chunk takes the remainder and may be short. Every chunk but
    the first starts with up to ``overlap`` warm-up frames borrowed from its predecessor.
    """
    if frames <= 0:
        raise ValueError("a video needs at least one frame")
    if chunk_seconds <= 0:
        raise ValueError("chunk_seconds must be positive")
    size = max(1, round(Fraction(chunk_seconds).limit_denominator(1000) * Fraction(fps)))
    return [
        Chunk(index=i, start=start, end=min(start + size, frames), warmup=min(overlap, start))
        for i, start in enumerate(range(0, frames, size))
    ]


def gop_size(fps: Fraction) -> int:
    """A fixed keyframe interval of about two seconds, identical for every chunk of a video."""
    return max(1, round(2 * fps))
