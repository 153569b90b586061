"""Split a video into chunks of whole frames that workers process independently."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from fractions import Fraction

# Every chunk but the first stylizes its warm-up frames twice (DEFAULT_OVERLAP_FRAMES; with the
# temporal step on), so short chunks cost model time: 8 frames are 16% of a 2 s chunk at 25 fps,
# 3% of a 10 s one. Longer chunks cost nothing in parallelism (a video with fewer chunks than
# workers is split into as many as there are workers, ``plan_chunks``) and amortise each chunk's
# decoder seek and encoder start; what they cost is the work a crash loses (one chunk per worker
# in flight, which a resumed run redoes) and a longer last chunk on a busy cluster.
DEFAULT_CHUNK_SECONDS = 10.0
DEFAULT_OVERLAP_FRAMES = 8


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
    def decode_frames(self) -> int:
        """Frames decoded: the warm-up ones, then the ones written."""
        return self.end - self.decode_start

    @property
    def name(self) -> str:
        return f"chunk-{self.index:05d}"


def plan_chunks(frames: int, fps: Fraction, chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
                overlap: int = DEFAULT_OVERLAP_FRAMES, workers: int = 1) -> list[Chunk]:
    """Chunks of about ``chunk_seconds`` covering frames [0, frames) exactly once.

    The chunk length is a whole number of frames (at least one), so fractional rates such as
    30000/1001 never drift. The last chunk takes the remainder and may be short. Every chunk but
    the first starts with up to ``overlap`` warm-up frames borrowed from its predecessor.

    With ``workers`` > 1 the frames are split evenly into a number of chunks that is a multiple
    of the workers (at least one each), rounding the count down, so a short video does not leave
    workers idle behind one long chunk: 132 frames in 2 s chunks on 2 workers become 2 chunks of
    66 frames, not 50 + 50 + 32. Rounding down lengthens chunks rather than multiplying per-chunk
    costs (process start-up, warm-up frames); on long videos the change is a frame or two.
    The split is even in work, not in frames: every chunk but the first also decodes and
    stylizes its warm-up frames, so those chunks are ``overlap`` frames shorter. 132 frames on 2
    workers with 8 warm-up frames are 70 + 62 (+ 8), and neither worker waits for the other.
    Pass ``overlap=0`` when nothing warms (the temporal step off).
    """
    if frames <= 0:
        raise ValueError("a video needs at least one frame")
    if chunk_seconds <= 0:
        raise ValueError("chunk_seconds must be positive")
    size = max(1, round(Fraction(chunk_seconds).limit_denominator(1000) * Fraction(fps)))
    starts = list(range(0, frames, size))
    if workers > 1:
        count = min(frames, max(workers, len(starts) // workers * workers))
        # lengths (warm-up included) differ by at most one; too short a video to carry the
        # warm-up frames is split evenly in frames instead
        warm = overlap if frames - overlap >= count else 0
        starts = [0] + [warm + i * (frames - warm) // count for i in range(1, count)]
    ends = starts[1:] + [frames]
    return [Chunk(index=i, start=start, end=end, warmup=min(overlap, start))
            for i, (start, end) in enumerate(zip(starts, ends))]


def plan_to_json(chunks: list[Chunk]) -> bytes:
    return json.dumps([asdict(c) for c in chunks]).encode()


def plan_from_json(data: bytes, frames: int) -> list[Chunk] | None:
    """A stored plan, or None if it is unreadable or does not cover exactly ``frames`` frames."""
    try:
        chunks = [Chunk(**c) for c in json.loads(data)]
    except (ValueError, TypeError):
        return None
    covered = [c.start for c in chunks] == [0] + [c.end for c in chunks[:-1]]
    if not chunks or not covered or chunks[-1].end != frames:
        return None
    return chunks


def gop_size(fps: Fraction) -> int:
    """A fixed keyframe interval of about two seconds, identical for every chunk of a video."""
    return max(1, round(2 * fps))
