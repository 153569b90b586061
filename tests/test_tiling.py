"""Tiled inference: a 1024x1024 image in 512-pixel tiles matches one untiled pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from framestyle.models.tiling import _own, _starts
from framestyle.models.transformer_net import TransformerNet
from framestyle.models.hub import resolve
from framestyle.pipeline.stylize import WHOLE_FRAME_BYTES_PER_PIXEL, InferenceOptions, Stylizer
from helpers import seeded


def test_tiles_cover_the_image_once():
    for size, tile, overlap in ((1024, 512, 64), (1000, 384, 64), (2160, 1024, 96)):
        starts = _starts(size, tile, overlap)
        assert starts[0] == 0 and starts[-1] == size - tile
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))
        owned = [p for i, s in enumerate(starts) for p in range(s, s + tile)[_own(i, starts, tile)]]
        assert owned == list(range(size))


def test_tiled_matches_untiled_on_1024_square(tmp_path):
    """Tiles come from the stylizer's memory budget: one that holds a 512-pixel tile but not
    the whole frame runs it tiled, giving what one pass would (within 2 grey levels)."""
    net = seeded(TransformerNet(width=0.25), scale=0.2)
    torch.save(net.state_dict(), tmp_path / "slim.pth")
    style = resolve(str(tmp_path / "slim.pth"))
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    image = np.kron(coarse, np.ones((64, 64, 1), np.uint8))  # 1024x1024, big flat areas + edges
    image = np.clip(image.astype(int) + rng.integers(-20, 20, image.shape), 0, 255).astype(np.uint8)
    unbounded = Stylizer(style)
    whole = unbounded([image])[0].astype(float)
    assert unbounded.tiled_frames == 0
    budget = 1024 ** 2 * WHOLE_FRAME_BYTES_PER_PIXEL + 520 ** 2 * unbounded.bytes_per_pixel
    budgeted = Stylizer(style, InferenceOptions(memory_budget=int(budget)))
    tiled = budgeted([image])[0].astype(float)
    assert budgeted.tiled_frames == 1 and budgeted._tile_for(1024, 1024) == 520
    assert tiled.shape == whole.shape == (1024, 1024, 3)
    assert np.abs(tiled - whole).mean() < 2
    naive = Stylizer(style, InferenceOptions(max_tile=512))
    naive_out = _per_tile_stats(naive, image)
    assert np.abs(naive_out - whole).mean() > np.abs(tiled - whole).mean()


def _per_tile_stats(stylizer, image):
    """Tiles stylized on their own (no shared statistics), pasted: what naive tiling gives."""
    out = np.zeros(image.shape, float)
    for y in (0, 512):
        for x in (0, 512):
            out[y:y + 512, x:x + 512] = stylizer([image[y:y + 512, x:x + 512]])[0]
    return out


def test_a_frame_beyond_the_memory_budget_fails_before_allocating(tmp_path):
    style = resolve("builtin:7")
    stylizer = Stylizer(style, InferenceOptions(memory_budget=200 * 2**20))
    with pytest.raises(MemoryError, match=r"a 9000x9000 frame needs [\d,]+ MiB even in tiles; "
                                          r"this worker's memory budget is 200 MiB"):
        stylizer([np.zeros((9000, 9000, 3), np.uint8)])
