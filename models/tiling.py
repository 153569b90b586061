"""Run an image-to-image network on an image larger than fits, tile by tile, without seams.

Two things make naive tiling show: tile edges (each tile sees a different border) and instance
normalisation (each tile normalises with its own statistics, so tiles come out in different
colours). Tiles therefore overlap and are cross-faded with linear ramps, and every instance-norm
layer normalises with the statistics of the *whole* image.

Style networks are very sensitive to those statistics (5% off changes the output by tens of
grey levels), so they are computed exactly, one norm layer at a time, in execution order: for
layer k every tile runs up to layer k, with layers before it using the whole-image statistics
already found, and adds its own (non-overlapping) area's sums. Memory stays at one tile; compute
grows with depth (the early, full-resolution layers are re-run once per norm layer).

Pure computation on tensors: no I/O.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .arbitrary import StyleNorm
from .multistyle import ConditionalInstanceNorm

# instance norms whose scale and shift come from the style (``affine(style)``)
STYLE_NORMS = (ConditionalInstanceNorm, StyleNorm)

Stats = dict[nn.Module, tuple[torch.Tensor, torch.Tensor]]  # module -> (mean, var), (N, C, 1, 1)


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the layer being measured is reached."""


def _is_instance_norm(m: nn.Module) -> bool:
    return isinstance(m, STYLE_NORMS) or (
        isinstance(m, nn.InstanceNorm2d) and not m.track_running_stats)


def _normalize(module: nn.Module, x: torch.Tensor, style: torch.Tensor | None,
               mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    y = (x - mean) * torch.rsqrt(var + module.eps)
    if isinstance(module, STYLE_NORMS):
        gamma, beta = module.affine(style.to(x.dtype))  # (C,) for the batch or (N, C)
        return y * gamma[..., None, None] + beta[..., None, None]
    if module.affine:
        return y * module.weight[None, :, None, None] + module.bias[None, :, None, None]
    return y


@contextlib.contextmanager
def _hooks(model: nn.Module, hook) -> Iterator[None]:
    handles = [m.register_forward_hook(hook) for m in model.modules() if _is_instance_norm(m)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _execution_order(run: Callable, model: nn.Module, sample: torch.Tensor) -> list[nn.Module]:
    order: list[nn.Module] = []

    def hook(module, args, output):
        if module not in order:
            order.append(module)

    with _hooks(model, hook):
        run(sample)
    return order


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    """Evenly spread tile origins covering [0, size) with at least ``overlap`` of overlap."""
    if size <= tile:
        return [0]
    count = -(-(size - overlap) // (tile - overlap))
    return [round(i * (size - tile) / (count - 1)) for i in range(count)]


def _own(i: int, starts: list[int], tile: int) -> slice:
    """The part of tile ``i`` that is nearer its centre than any other's: each overlap is
    split at its middle, so the tiles' own parts cover the image exactly once."""
    lo = 0 if i == 0 else (starts[i - 1] + tile - starts[i]) // 2
    hi = tile if i == len(starts) - 1 else starts[i + 1] - starts[i] + \
        (starts[i] + tile - starts[i + 1]) // 2
    return slice(lo, hi)


def _ramp(n: int, overlap: int, first: bool, last: bool, device, dtype) -> torch.Tensor:
    w = torch.ones(n, device=device, dtype=dtype)
    if overlap > 0:
        ramp = torch.linspace(0, 1, overlap + 2, device=device, dtype=dtype)[1:-1]
        if not first:
            w[:overlap] = ramp
        if not last:
            w[-overlap:] = ramp.flip(0)
    return w


def tiled_forward(run: Callable[[torch.Tensor], torch.Tensor], model: nn.Module, x: torch.Tensor,
                  tile: int, overlap: int = 64, multiple: int = 4) -> torch.Tensor:
    """``run(x)`` — a function that calls ``model`` — on ``x`` (N, C, H, W) in tiles of at most
    ``tile`` pixels a side, giving what one pass over the whole image would."""
    n, _, h, w = x.shape
    if h <= tile and w <= tile:
        return run(x)
    tile -= tile % multiple
    overlap = min(overlap, tile // 2)
    ys, xs = _starts(h, tile, overlap), _starts(w, tile, overlap)
    tiles = [(iy, ix) for iy in range(len(ys)) for ix in range(len(xs))]

    def patch(iy, ix):
        return x[:, :, ys[iy]:ys[iy] + tile, xs[ix]:xs[ix] + tile]

    stats: Stats = {}

    def use_stats(module, args, output):
        if module in stats:
            return _normalize(module, args[0], args[1] if len(args) > 1 else None, *stats[module])
        return output

    for target in _execution_order(run, model, patch(0, 0)):
        sums = [0.0, 0.0, 0.0]
        for iy, ix in tiles:
            p = patch(iy, ix)
            own = torch.zeros(1, 1, *p.shape[-2:], device=x.device, dtype=x.dtype)
            own[..., _own(iy, ys, tile), _own(ix, xs, tile)] = 1

            def measure(module, args, output, own=own):
                if module is target:
                    a = args[0]
                    wgt = F.interpolate(own, size=a.shape[-2:], mode="area")
                    sums[0] += wgt.sum((2, 3), keepdim=True)
                    sums[1] += (a * wgt).sum((2, 3), keepdim=True)
                    sums[2] += (a * a * wgt).sum((2, 3), keepdim=True)
                    raise _Stop
                return use_stats(module, args, output)

            with _hooks(model, measure), contextlib.suppress(_Stop):
                run(p)
        mean = sums[1] / sums[0]
        stats[target] = (mean, (sums[2] / sums[0] - mean * mean).clamp_min(0))

    out, total = None, torch.zeros(1, 1, h, w, device=x.device, dtype=x.dtype)
    with _hooks(model, use_stats):
        for iy, ix in tiles:
            p = patch(iy, ix)
            y = run(p)
            if out is None:
                out = torch.zeros(n, y.shape[1], h, w, device=x.device, dtype=y.dtype)
            ph, pw = p.shape[-2:]
            weight = (_ramp(ph, overlap, iy == 0, iy == len(ys) - 1, x.device, y.dtype)[:, None]
                      * _ramp(pw, overlap, ix == 0, ix == len(xs) - 1, x.device, y.dtype)[None])
            out[:, :, ys[iy]:ys[iy] + ph, xs[ix]:xs[ix] + pw] += y * weight
            total[:, :, ys[iy]:ys[iy] + ph, xs[ix]:xs[ix] + pw] += weight
    return out / total
