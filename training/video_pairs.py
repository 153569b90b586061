"""Training data from videos: consecutive frame pairs with their optical flow and occlusion mask,
streamed through Ray Data (what ReCoNet's temporal losses train on).

``--data`` is resolved as for images (folders, ``s3://`` prefixes, globs, ``.tar``/``.zip``
archives of clips). Two Ray Data stages:

1. ``pair_rows`` (``flat_map``, one source unit in): each video is decoded with PyAV straight
   from its bytes, at the training crop's scale, and ``pairs`` frame pairs (t, t + gap) at random
   places become one row each: both frames cropped and flipped alike, stacked as 6 channels. A
   file that is no video becomes one invalid row (counted, reported, never fatal).
2. ``with_flow`` (``map``): OpenCV flow from frame t + gap back to frame t (DIS, or TV-L1 as
   ``framestyle eval flicker`` measures with) and the occlusion mask from the forward-backward
   check, so that the workers' GPUs or CPUs only train.
"""

from __future__ import annotations

import io
from typing import Iterator

import numpy as np

from ..core.errors import InputError
from ..pipeline.image_source import SourceUnit, read_guarded
from .data import Augment

PREFLIGHT_ITEMS = 8


class NotAVideo(Exception):
    pass


def decoded_pairs(data: bytes, short_side: int, pairs: int, gap: int,
                  rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """``pairs`` (frame t, frame t + gap) pairs of RGB frames, scaled so that the shorter side is
    ``short_side``, from random places of the video in ``data``. Decoded once, front to back;
    only the frames of the pairs are converted and kept (a long video costs time, not memory)."""
    import av

    try:
        container = av.open(io.BytesIO(data))
    except (av.FFmpegError, ValueError) as e:
        raise NotAVideo(f"not a video ({str(e).splitlines()[0] if str(e) else type(e).__name__})")
    with container:
        if not container.streams.video:
            raise NotAVideo("no video stream")
        stream = container.streams.video[0]
        w, h = stream.codec_context.width, stream.codec_context.height
        scale = short_side / min(w, h)
        size = (max(short_side, round(w * scale)), max(short_side, round(h * scale)))
        estimate = _frame_count(stream)
        starts = rng.integers(0, max(1, estimate - gap), size=pairs)
        wanted = set(starts.tolist()) | set((starts + gap).tolist())
        kept: dict[int, np.ndarray] = {}
        recent: list[np.ndarray] = []  # the last gap + 1 frames: a fallback pair
        count = 0
        try:
            for frame in container.decode(stream):
                if count in wanted or count >= estimate - gap - 1:
                    rgb = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
                    if count in wanted:
                        kept[count] = rgb
                    recent = (recent + [rgb])[-(gap + 1):]
                count += 1
        except av.FFmpegError:
            pass  # a truncated clip: the frames decoded so far
    if count <= gap:
        raise NotAVideo(f"{count} frame(s) decoded: too short for pairs {gap} apart")
    found = [(kept[t], kept[t + gap]) for t in starts.tolist() if t in kept and t + gap in kept]
    if not found and len(recent) == gap + 1:  # the container over-stated its length
        found = [(recent[0], recent[-1])]
    return found


def _frame_count(stream) -> int:
    """The container's frame count, or one from its duration and rate; 0 when unknown."""
    if stream.frames:
        return int(stream.frames)
    if stream.duration and stream.average_rate:
        return int(float(stream.duration * stream.time_base) * float(stream.average_rate))
    return 0


def crop_pair(first: np.ndarray, second: np.ndarray, size: int,
              rng: np.random.Generator) -> np.ndarray:
    """One random crop and flip for both frames: (size, size, 6) uint8."""
    both = np.concatenate([first, second], axis=2)
    h, w = both.shape[:2]
    top, left = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
    crop = both[top:top + size, left:left + size]
    return np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop)


def pair_rows(unit_row: dict, augment: Augment, pairs: int, gap: int) -> Iterator[dict]:
    rng = np.random.default_rng()
    for item in read_guarded(SourceUnit(**unit_row)):
        reason = item.failure
        if not reason:
            try:
                found = decoded_pairs(item.data, augment.load_size, pairs, gap, rng)
            except NotAVideo as e:
                reason = str(e)
        if reason:
            yield {"image": np.zeros((augment.size, augment.size, 6), np.uint8), "valid": False,
                   "source": f"{item.source}: {reason}"}
            continue
        for first, second in found:
            yield {"image": crop_pair(first, second, augment.size, rng), "valid": True,
                   "source": item.source}


def with_flow(row: dict, method: str) -> dict:
    """The row with ``flow`` (H, W, 2: frame t + gap at x shows frame t at x + flow) and
    ``mask`` (H, W, 1: 1 where that flow can be trusted, not occluded)."""
    from ..pipeline.flicker import tv_l1
    from ..pipeline.temporal import DISFlow, occluded, to_gray

    pair = row["image"]
    size = pair.shape[:2]
    if not row["valid"]:
        return {**row, "flow": np.zeros((*size, 2), np.float32),
                "mask": np.zeros((*size, 1), np.float32)}
    first, second = to_gray(pair[..., :3]), to_gray(pair[..., 3:])
    solve = tv_l1 if method == "tvl1" else DISFlow()
    backward, forward = solve(second, first), solve(first, second)
    visible = ~occluded(forward, backward)
    return {**row, "flow": backward.astype(np.float32),
            "mask": visible[..., None].astype(np.float32)}


def preflight(units: list[SourceUnit], flag: str) -> None:
    """Fail on the driver when the first files of ``--data`` hold no video to train on."""
    problems = []
    rng = np.random.default_rng(0)
    for unit in units:
        for item in read_guarded(unit):
            try:
                if item.failure:
                    raise NotAVideo(item.failure)
                decoded_pairs(item.data, 16, 1, 1, rng)
                return
            except NotAVideo as e:
                problems.append(f"{item.source}: {e}")
            if len(problems) >= PREFLIGHT_ITEMS:
                return  # let the workers count the rest
    raise InputError(f"{flag}: no readable video among {len(problems)} file(s)"
                     + (f"; first: {problems[0]}" if problems else ""))
