"""Before/after images a person can look at instead of reading numbers."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .decode import iter_frames
from .probe import VideoInfo


def frame_at(path: str, info: VideoInfo, index: int, size: tuple[int, int]) -> np.ndarray:
    """One frame, as displayed (rotation applied)."""
    frame = next(iter_frames(path, info, index, 1, size))
    return np.rot90(frame, k=info.rotation // 90) if info.rotation % 360 else frame


def before_after(before: np.ndarray, after: np.ndarray, labels=("input", "stylized")) -> Image.Image:
    """Side by side, with a label strip above each half."""
    h = max(before.shape[0], after.shape[0])
    strip = 24
    sheet = Image.new("RGB", (before.shape[1] + after.shape[1], h + strip), "white")
    draw = ImageDraw.Draw(sheet)
    x = 0
    for image, label in zip((before, after), labels):
        sheet.paste(Image.fromarray(image), (x, strip))
        draw.text((x + 8, 6), label, fill="black")
        x += image.shape[1]
    return sheet


def contact_sheet(pairs: list[tuple[np.ndarray, np.ndarray]], labels: list[str]) -> Image.Image:
    """Before/after pairs stacked top to bottom, each labelled (e.g. with its key)."""
    rows = [before_after(before, after, (f"{label}: input", "stylized"))
            for (before, after), label in zip(pairs, labels)]
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    y = 0
    for row in rows:
        sheet.paste(row, (0, y))
        y += row.height
    return sheet
