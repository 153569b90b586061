"""Run an image-to-image network on an image larger than fits, tile by tile, without seams.

Two things make naive tiling show: tile edges (each tile sees a different border) and instance
normalisation (each tile normalises with its own statistics, so tiles come out in different
colours). Tiles therefore overlap and are cross-faded with linear ramps, and every instance-norm
layer normalises with the statistics of the *whole* image.

Style networks are very sensitive to those statistics (5% off changes the output by tens of
grey levels), so they are computed exactly, one norm layer at a time, in execution order: each
tile adds its own (non-overlapping) area's sums at layer k, and no tile goes past layer k until
all have. Two ways to run that:

* ``tiled_forward_in_step``: every tile's pass runs once, on a thread of its own, one tile at a
  time; at each norm layer a pass stops until every tile has reached it. One pass of compute
  (plus the overlaps), but every stopped pass holds its activations: about one full-size
  activation of the network in all (``stopped_bytes``), plus one tile's working memory.
* ``tiled_forward``: for layer k every tile runs again from its input up to layer k. Memory
  stays at one tile; compute grows with depth (the early, full-resolution layers are re-run
  once per norm layer: 15-35 times one pass for the networks we ship). For frames whose
  activations alone do not fit.

Pure computation on tensors: no I/O.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import weakref
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from .arbitrary import StyleNorm
from .multistyle import ConditionalInstanceNorm

# instance norms whose scale and shift come from the style (``affine(style)``)
STYLE_NORMS = (ConditionalInstanceNorm, StyleNorm)

# Pixels two neighbouring tiles share. Those near a tile's edge see its padding, not the image,
# and each overlap is split at its middle: the more of it, the further each tile's part of the
# image lies from its edges. The built-in network on a 2048x1536 crop of a photo, 768-pixel
# tiles, against one whole pass: 64 gave a mean 0.12 and at most 29 grey levels off, 128 0.07
# and 17, for the same tiles.
OVERLAP = 128

Stats = dict[nn.Module, tuple[torch.Tensor, torch.Tensor]]  # module -> (mean, var), (N, C, 1, 1)


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the layer being measured is reached."""


def _is_instance_norm(m: nn.Module) -> bool:
    return isinstance(m, STYLE_NORMS) or (
        isinstance(m, nn.InstanceNorm2d) and not m.track_running_stats)


def _normalize(module: nn.Module, x: torch.Tensor, style: torch.Tensor | None,
               mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """``module``'s normalisation of ``x`` with the statistics given, as one scale and shift a
    channel: one activation-size tensor made, where the formula step by step made four (each
    a page-faulted allocation of hundreds of MB on a large tile). The scale and shift are
    worked out in fp32 (the statistics are: see ``_sums``) and applied in ``x``'s precision."""
    scale = torch.rsqrt(var + module.eps)
    if isinstance(module, STYLE_NORMS):
        gamma, beta = module.affine(style.to(x.dtype))  # (C,) for the batch or (N, C)
        gamma, beta = gamma[..., None, None], beta[..., None, None]
    elif module.affine:
        gamma, beta = module.weight[None, :, None, None], module.bias[None, :, None, None]
    else:
        gamma, beta = torch.ones(()), torch.zeros(())
    scale = scale * gamma.float()
    shift = beta.float() - mean * scale
    return torch.addcmul(shift.to(x.dtype), x, scale.to(x.dtype))


@contextlib.contextmanager
def _hooks(model: nn.Module, hook) -> Iterator[None]:
    """``hook`` on every instance norm of ``model``, for passes of this thread only: another
    thread's pass through the same module (a server's next request) is left as it is."""
    owner = threading.get_ident()

    def this_thread(module, args, output):
        return hook(module, args, output) if threading.get_ident() == owner else None

    handles = [m.register_forward_hook(this_thread) for m in model.modules()
               if _is_instance_norm(m)]
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


def _starts(size: int, tile: int, overlap: int, multiple: int = 1) -> list[int]:
    """Evenly spread tile origins covering [0, size) with at least ``overlap`` of overlap, each
    a multiple of ``multiple`` (as ``size`` and ``tile`` are). A network with stride-2 stages
    samples its input on a grid: a tile starting off that grid is computed on other samples
    than the whole image's, and differs from it by tens of grey levels (up to 178 on a 24 MP
    photo, along every seam)."""
    if size <= tile:
        return [0]
    count = -(-(size - overlap) // (tile - overlap))
    while True:
        starts = [round(i * (size - tile) / (count - 1) / multiple) * multiple
                  for i in range(count)]
        if all(b - a <= tile - overlap for a, b in zip(starts, starts[1:])):
            return starts
        count += 1


def _own(i: int, starts: list[int], tile: int, multiple: int = 1) -> slice:
    """The part of tile ``i`` that is nearer its centre than any other's: each overlap is
    split at its middle (rounded to ``multiple``, so that the split falls between whole pixels
    of every downsampled activation), so the tiles' own parts cover the image exactly once."""
    def split(a: int, b: int) -> int:  # where tiles starting at a and b (> a) meet
        return b + round((a + tile - b) / 2 / multiple) * multiple

    lo = 0 if i == 0 else split(starts[i - 1], starts[i]) - starts[i]
    hi = tile if i == len(starts) - 1 else split(starts[i], starts[i + 1]) - starts[i]
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


def _layout(h: int, w: int, tile: int, overlap: int, multiple: int):
    """(tile side, overlap, tile origins down, across) of an h x w image's tiles."""
    h, w = _padded(h, multiple), _padded(w, multiple)
    tile -= tile % multiple
    overlap = min(overlap, tile // 2)
    return tile, overlap, _starts(h, tile, overlap, multiple), _starts(w, tile, overlap, multiple)


def _padded(size: int, multiple: int) -> int:
    return -(-size // multiple) * multiple


def tiles_and_area(h: int, w: int, tile: int, overlap: int = OVERLAP,
                   multiple: int = 4) -> tuple[int, int]:
    """How many tiles an h x w image runs in, and the pixels they cover, each overlap counted
    as often as it is covered: the area whose activations ``tiled_forward_in_step`` holds."""
    tile, _, ys, xs = _layout(h, w, tile, overlap, multiple)
    tiles = len(ys) * len(xs)
    return tiles, tiles * min(_padded(h, multiple), tile) * min(_padded(w, multiple), tile)


class _Grid:
    """Overlapping tiles over an (N, C, H, W) image: where each is, the part of it that is its
    own (for statistics) and its cross-fade weights (for the output)."""

    def __init__(self, x: torch.Tensor, tile: int, overlap: int, multiple: int):
        self.h, self.w = h, w = x.shape[-2:]
        self.tile, self.overlap, self.ys, self.xs = _layout(h, w, tile, overlap, multiple)
        ph, pw = _padded(h, multiple) - h, _padded(w, multiple) - w
        if ph or pw:  # tiles on the network's sampling grid need the whole on it too
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, [0, pw, 0, ph], mode=mode)
        self.x, self.multiple = x, multiple
        h, w = x.shape[-2:]
        self.tiles = [(iy, ix) for iy in range(len(self.ys)) for ix in range(len(self.xs))]
        self.out: torch.Tensor | None = None
        self.total = torch.zeros(1, 1, h, w, device=x.device, dtype=x.dtype)

    def patch(self, i: int) -> torch.Tensor:
        iy, ix = self.tiles[i]
        return self.x[:, :, self.ys[iy]:self.ys[iy] + self.tile,
                      self.xs[ix]:self.xs[ix] + self.tile]

    def sums(self, i: int, a: torch.Tensor) -> list:
        """``_sums`` of activation ``a`` of tile ``i``'s pass over the tile's own part."""
        iy, ix = self.tiles[i]
        own = (_own(iy, self.ys, self.tile, self.multiple),
               _own(ix, self.xs, self.tile, self.multiple))
        return _sums(own, self.patch(i).shape[-2:], a)

    def add(self, i: int, y: torch.Tensor) -> None:
        """Cross-fade tile ``i``'s output ``y`` into the image's."""
        iy, ix = self.tiles[i]
        n, _, h, w = self.x.shape
        if self.out is None:
            self.out = torch.zeros(n, y.shape[1], h, w, device=y.device, dtype=y.dtype)
        ph, pw = y.shape[-2:]
        ramp = functools.partial(_ramp, overlap=self.overlap, device=y.device, dtype=y.dtype)
        weight = (ramp(ph, first=iy == 0, last=iy == len(self.ys) - 1)[:, None]
                  * ramp(pw, first=ix == 0, last=ix == len(self.xs) - 1)[None])
        y0, x0 = self.ys[iy], self.xs[ix]
        self.out[:, :, y0:y0 + ph, x0:x0 + pw] += y * weight
        self.total[:, :, y0:y0 + ph, x0:x0 + pw] += weight

    def image(self) -> torch.Tensor:
        # in place: one whole-size output at a time
        return self.out.div_(self.total)[..., :self.h, :self.w]


def _sums(own: tuple[slice, slice], size: tuple[int, int], a: torch.Tensor) -> list:
    """Area, sum and sum of squares of activation ``a``, of a tile of ``size``, over the
    tile's ``own`` part: a slice of ``a`` where the part falls on whole pixels of it (the
    tiles are on the network's sampling grid), else weighted by the part's share of each.
    In fp32 whatever ``a``'s precision: over a tile's million pixels a sum in fp16 overflows
    (its largest value is 65504), and the whole image's statistics would be infinite."""
    rows, cols = (_scaled(part, n, m) for part, n, m in zip(own, size, a.shape[-2:]))
    if rows and cols:
        part = a[..., rows, cols]
        return [part.shape[-2] * part.shape[-1],
                part.sum((2, 3), keepdim=True, dtype=torch.float32),
                torch.linalg.vector_norm(part, dim=(2, 3), keepdim=True,
                                         dtype=torch.float32).square()]
    mask = torch.zeros(1, 1, *size, device=a.device, dtype=torch.float32)
    mask[..., own[0], own[1]] = 1
    wgt = F.interpolate(mask, size=a.shape[-2:], mode="area")
    a = a.float()
    return [wgt.sum((2, 3), keepdim=True), (a * wgt).sum((2, 3), keepdim=True),
            (a * a * wgt).sum((2, 3), keepdim=True)]


def _scaled(part: slice, size: int, scaled: int) -> slice | None:
    """``part`` of a side of ``size`` on one of ``scaled`` pixels, if it falls on whole ones."""
    lo, hi = part.start * scaled / size, part.stop * scaled / size
    return slice(int(lo), int(hi)) if lo.is_integer() and hi.is_integer() else None


def _moments(sums) -> tuple[torch.Tensor, torch.Tensor]:
    mean = sums[1] / sums[0]
    return mean, (sums[2] / sums[0] - mean * mean).clamp_min(0)


def tiled_forward(run: Callable[[torch.Tensor], torch.Tensor], model: nn.Module, x: torch.Tensor,
                  tile: int, overlap: int = OVERLAP, multiple: int = 4) -> torch.Tensor:
    """``run(x)`` — a function that calls ``model`` — on ``x`` (N, C, H, W) in tiles of at most
    ``tile`` pixels a side, giving what one pass over the whole image would; memory: one tile."""
    h, w = x.shape[-2:]
    if h <= tile and w <= tile:
        return run(x)
    grid = _Grid(x, tile, overlap, multiple)
    stats: Stats = {}

    def use_stats(module, args, output):
        if module in stats:
            return _normalize(module, args[0], args[1] if len(args) > 1 else None, *stats[module])
        return output

    for target in _execution_order(run, model, grid.patch(0)):
        sums = [0.0, 0.0, 0.0]
        for i in range(len(grid.tiles)):
            def measure(module, args, output, i=i):
                if module is target:
                    for k, part in enumerate(grid.sums(i, args[0])):
                        sums[k] += part
                    raise _Stop
                return use_stats(module, args, output)

            with _hooks(model, measure), contextlib.suppress(_Stop):
                run(grid.patch(i))
        stats[target] = _moments(sums)

    with _hooks(model, use_stats):
        for i in range(len(grid.tiles)):
            grid.add(i, run(grid.patch(i)))
    return grid.image()


class _Abandoned(BaseException):
    """Ends a stopped tile's pass when the tiled forward it belongs to has failed."""


class _InStep:
    """Each tile's pass on a thread of its own, one running at a time (the next is let go when
    the last stops); each stops at every instance norm until all have reached it, then
    normalises with the whole image's statistics. Threads, not a re-entrant forward: a tile's
    pass is any Python module's forward, and a thread is what can stop one half way and keep
    its activations where they are."""

    def __init__(self, run: Callable[[torch.Tensor], torch.Tensor], model: nn.Module,
                 grid: _Grid, on_stop: Callable[[], None] | None = None,
                 mode: TorchDispatchMode | None = None):
        self.run, self.grid, self.on_stop, self.mode = run, grid, on_stop, mode
        self.norms = [m for m in model.modules() if _is_instance_norm(m)]
        self.where = threading.local()  # (tile, norm calls so far) on a tile's thread
        self.go = [threading.Semaphore(0) for _ in grid.tiles]
        self.stopped = threading.Semaphore(0)
        self.sums: list[list] = []  # per norm call: [area, sum, sum of squares]
        self.stats: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.finished: set[int] = set()
        self.errors: dict[int, BaseException] = {}
        self.abandoned = False
        # grad and inference mode are per thread: the tiles' passes run in the caller's
        self.modes = (torch.is_inference_mode_enabled(), torch.is_grad_enabled())

    def __call__(self) -> torch.Tensor:
        threads = [threading.Thread(target=self._tile, args=(i,), daemon=True,
                                    name=f"tile-{i}") for i in range(len(self.grid.tiles))]
        for norm in self.norms:  # an instance attribute: nn.Module calls it instead
            norm.forward = functools.partial(self._normalize, norm)
        try:
            for t in threads:
                t.start()
            while True:
                for i in range(len(threads)):
                    self.go[i].release()
                    self.stopped.acquire()
                    if i in self.errors:
                        raise self.errors[i]
                if len(self.finished) == len(threads):
                    return self.grid.image()
                if self.finished or len(self.sums) != len(self.stats) + 1:
                    raise RuntimeError("the tiles' passes took different paths through the "
                                       "network; it cannot run in step")
                if self.on_stop:
                    self.on_stop()
                self.stats.append(_moments(self.sums[-1]))
        finally:
            for norm in self.norms:
                del norm.forward
            self.abandoned = True
            for i, t in enumerate(threads):
                if t.is_alive():
                    self.go[i].release()
                    t.join()

    def _tile(self, i: int) -> None:
        self.where.tile, self.where.calls = i, 0
        self.go[i].acquire()
        try:
            with torch.inference_mode(self.modes[0]), torch.set_grad_enabled(self.modes[1]), \
                    self.mode or contextlib.nullcontext():  # a dispatch mode is per thread too
                if not self.abandoned:
                    self.grid.add(i, self.run(self.grid.patch(i)))
                    self.finished.add(i)
        except _Abandoned:
            return
        except BaseException as e:  # raised again on the caller's thread
            self.errors[i] = e
        self.stopped.release()

    def _normalize(self, module: nn.Module, x: torch.Tensor, *args) -> torch.Tensor:
        if not hasattr(self.where, "tile"):  # a pass of another thread through the same module
            return type(module).forward(module, x, *args)
        i, k = self.where.tile, self.where.calls
        self.where.calls += 1
        if k == len(self.sums):
            self.sums.append([0.0, 0.0, 0.0])
        for j, part in enumerate(self.grid.sums(i, x)):
            self.sums[k][j] += part
        self.stopped.release()
        self.go[i].acquire()
        if self.abandoned:
            raise _Abandoned
        return _normalize(module, x, args[0] if args else None, *self.stats[k])


def tiled_forward_in_step(run: Callable[[torch.Tensor], torch.Tensor], model: nn.Module,
                          x: torch.Tensor, tile: int, overlap: int = OVERLAP,
                          multiple: int = 4) -> torch.Tensor:
    """What ``tiled_forward`` gives, in one pass: every tile's pass held at each norm layer
    until all have reached it. Memory: what every stopped pass holds (``stopped_bytes``), plus
    one tile's working memory."""
    h, w = x.shape[-2:]
    if h <= tile and w <= tile:
        return run(x)
    return _InStep(run, model, _Grid(x, tile, overlap, multiple))()


def stopped_bytes(run: Callable[[torch.Tensor], torch.Tensor], model: nn.Module,
                  x: torch.Tensor) -> tuple[int, int]:
    """(the most bytes a pass of ``run`` on ``x`` holds while stopped at a norm layer, the most
    it holds at any time), counted over the tensors PyTorch makes in it (``_LiveBytes``): what
    a tile's stopped pass keeps in ``tiled_forward_in_step`` and its working memory."""
    counter = _LiveBytes()
    grid = _Grid(x, max(x.shape[-2:]), 0, 1)
    at_stops = [0]

    def on_stop():
        at_stops[0] = max(at_stops[0], counter.live)

    _InStep(run, model, grid, on_stop, counter)()
    return at_stops[0], counter.peak


class _LiveBytes(TorchDispatchMode):
    """The bytes of the tensors made under it that are still alive, and the most at any time:
    each operator's output storage counted once, until that storage is freed (a storage's
    Python object lives as long as the storage, so a weak reference to it follows it)."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self._seen: set[int] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._count(t.untyped_storage())
        return out

    def _count(self, storage) -> None:
        key = id(storage)
        if key in self._seen or not storage.nbytes():
            return
        self._seen.add(key)
        self.live += storage.nbytes()
        self.peak = max(self.peak, self.live)
        weakref.finalize(storage, self._free, key, storage.nbytes())

    def _free(self, key: int, nbytes: int) -> None:
        self._seen.discard(key)
        self.live -= nbytes
