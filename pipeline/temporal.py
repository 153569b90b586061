"""Flow-based temporal coherence: stop per-frame stylization from flickering.

After frame t is stylized, the previous *output* frame is warped to t along the optical flow of
the *input* frames (t -> t-1), and blended into the fresh stylized frame wherever the flow can be
trusted. Pixels that are occluded, disoccluded or on a motion boundary (the forward-backward
consistency rule of Ruder et al. 2016, also used by Lai et al. 2018), or where the flow-warped
previous input does not match the current one, take the fresh frame as is (see ``trusted``).
This is the training-free part of Ruder et al. 2018 / ReCoNet: it needs no weights.

A plain blend washes textured styles out: the network paints a different texture on every frame,
and averaging textures that do not line up lowers their contrast (brush strokes soften frame after
frame). So the blend is *contrast-preserving*, as in texture advection (Yu, Neyret, Bruneton and
Holzschuch, *Lagrangian Texture Advection*, TVCG 2011): the blend's fine detail is scaled back up
to the local contrast of the fresh frame's (``restore_detail``), and the previous state is
warped bicubically, since bilinear resampling every frame blurs too. docs/temporal.md has the
methods measured against each other over the 26 built-in styles.

Flow needs only input frames, so ``with_motion`` runs on the decode thread while the model works
on the previous batch; ``TemporalBlender`` then costs one remap, one blend and a few blurs per
frame.
"""

from __future__ import annotations

import collections
import contextlib
import math
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

DEFAULT_STRENGTH = 0.7
MATCH_TOLERANCE = 6  # gray levels (of 255): the warped previous input matches this pixel
MISMATCH_TOLERANCE = 24  # gray levels: beyond this, the flow is wrong here whatever the rule says
FLOW_MAX_SIDE = 540  # px, shorter side: larger frames get their flow at this size, upsampled
DETAIL_SIGMA = 1.5  # px: what is finer than this Gaussian is the detail whose contrast is kept
MAX_DETAIL_GAIN = 3.0  # the most the blend's detail is scaled up (a frame's own is ~1.7x at 0.7)
# The detail's contrast is restored to this much of the fresh frame's: the finest part of the
# band, which the eye (and the Laplacian) reads as sharpness, is what warping and blending lose
# most, so matching the band's energy alone left it 10% short on many styles; 2% more brings it
# back without costing the flicker cut more than a point (benchmarks.temporal, 26 styles)
DETAIL_TARGET = 1.02
# The most the step may move a frame from its fresh stylization at the default strength: the
# mean absolute difference, in [0, 1] of the pixel range (the deviation that docs/temporal.md
# measures). It grows with the strength asked for, so a higher --temporal still steadies more.
DEVIATION_BUDGET = 0.04
THRESHOLD_SAMPLE = 50_000  # values the budget's threshold is found on (``shrink_to_budget``)
# Over the budget, the detail is restored only until the frame keeps this share of the fresh
# frame's sharpness (mean absolute Laplacian of the luma, what docs/temporal.md measures), not to
# DETAIL_TARGET: the detail gain is the fresh frame's, so restoring it in full re-amplified the
# repainted texture the budget was spent on steadying. Measured on the styles that reach the
# budget (benchmarks.temporal): 3-8 points more E_warp cut for 3-7 points of the sharpness they
# had to spare; the clips' sharpness kept stays above 90% (a frame's own share is a little above
# the clip's, whose frames under the budget keep what they have).
OVER_BUDGET_SHARPNESS = 0.94


@dataclass(frozen=True)
class Motion:
    """How frame t relates to frame t-1."""

    flow: np.ndarray  # (H, W, 2) float32: pixel x of frame t was at x + flow[x] in frame t-1
    visible: np.ndarray  # (H, W) float32, 1 where that flow is consistent, 0 where occluded


def to_gray(frame: np.ndarray, dst: np.ndarray | None = None) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY, dst=dst)


def warp(image: np.ndarray, flow: np.ndarray, interpolation: int = cv2.INTER_LINEAR,
         dst: np.ndarray | None = None, scratch: Scratch | None = None) -> np.ndarray:
    """``image`` sampled at x + flow(x): brings frame t-1 content to frame t's pixel grid. With a
    ``scratch``, the sampling map is written into it instead of a new array (see ``Scratch``)."""
    # one (H, W, 2) map: a single contiguous add, where separate x and y maps took two strided
    grid = _grid(*flow.shape[:2])
    where = grid + flow if scratch is None else \
        np.add(grid, flow, out=scratch.like("sampling map", flow))
    return cv2.remap(image, where, None, interpolation, dst=dst,
                     borderMode=cv2.BORDER_REPLICATE)


def occluded(forward: np.ndarray, backward: np.ndarray,
             scratch: Scratch | None = None) -> np.ndarray:
    """Boolean (H, W) mask over frame t of pixels whose flow cannot be trusted.

    ``forward`` is the flow t-1 -> t, ``backward`` the flow t -> t-1. A pixel is occluded when
    following the backward flow and then the forward flow does not come back
    (|f̃ + b|² > 0.01 (|f̃|² + |b|²) + 0.5, f̃ the forward flow warped to t), or when it lies on a
    motion boundary (|∇b|² > 0.01 |b|² + 0.002).

    Every intermediate goes into ``scratch`` (one is made if not given): fresh full-size arrays
    cost this function more than its arithmetic (4 of 7 ms at 848x360, see ``Scratch``).
    """
    scratch = Scratch() if scratch is None else scratch
    forward_at_t = warp(forward, backward, dst=scratch.like("forward at t", forward),
                        scratch=scratch)
    size, spare = (scratch.like(name, backward[..., 0]) for name in ("|b|²", "spare"))
    _sq_norm(backward, size, spare)
    # 0.01 (|f̃|² + |b|²) + 0.5, then compared with |f̃ + b|²
    allowed = _sq_norm(forward_at_t, scratch.like("allowed", size), spare)
    allowed += size
    allowed *= 0.01
    allowed += 0.5
    round_trip = np.add(forward_at_t, backward, out=forward_at_t)
    round_trip = _sq_norm(round_trip, scratch.like("round trip", size), spare)
    result = np.greater(round_trip, allowed)
    # |b(x) - b(x + 1 px)|², across and down, against 0.01 |b|² + 0.002
    gradient = scratch.like("gradient", size)
    gradient[:, -1] = 0
    step = np.subtract(backward[:, :-1], backward[:, 1:],
                       out=scratch.like("step", backward)[:, :-1])
    _sq_norm(step, gradient[:, :-1], spare)
    step = np.subtract(backward[:-1], backward[1:], out=scratch.like("step", backward)[:-1])
    gradient[:-1] += _sq_norm(step, scratch.like("|down|²", size)[:-1], spare)
    size *= 0.01
    size += 0.002
    result |= gradient > size
    return result


def _sq_norm(flow: np.ndarray, out: np.ndarray, spare: np.ndarray) -> np.ndarray:
    """|flow|² per pixel into ``out`` (H, W); ``spare``, at least as large, holds the y term."""
    h, w = out.shape
    np.square(flow[..., 0], out=out)
    return np.add(out, np.square(flow[..., 1], out=spare[:h, :w]), out=out)


_GRIDS: dict[tuple[int, int], np.ndarray] = {}


def _grid(h: int, w: int) -> np.ndarray:
    """(H, W, 2) float32: each pixel's own (x, y)."""
    if (h, w) not in _GRIDS:
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        _GRIDS[(h, w)] = np.ascontiguousarray(np.stack([xs, ys], axis=-1))
    return _GRIDS[(h, w)]


class DISFlow:
    """OpenCV's DIS optical flow (no learned weights). One instance per thread."""

    def __init__(self, preset: int = cv2.DISOPTICAL_FLOW_PRESET_FAST):
        self._dis = cv2.DISOpticalFlow_create(preset)

    def __call__(self, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Flow from ``source`` to ``target`` (gray uint8): source x moves to x + flow[x]."""
        # always a new array: DIS takes a flow passed in as its initial guess
        return self._dis.calc(source, target, None)


def with_motion(frames: Iterable[np.ndarray], max_flow_side: int = FLOW_MAX_SIDE,
                full_size: bool = True, workers: int = 1,
                ) -> Iterator[tuple[np.ndarray, Motion | None]]:
    """Pair each frame with its Motion from the previous frame (None for the first), in order.

    Frames whose shorter side exceeds ``max_flow_side`` have their flow computed on a copy
    scaled down to it, then scaled back up (vectors too): DIS's cost grows with the pixels, and
    at 1080p full-resolution flow would cost the host more than a GPU spends on the model, while
    motion at that scale is smooth enough that the upsampled flow warps nearly as well
    (tests/test_temporal.py measures it). Without ``full_size`` the motion stays at the size it
    was computed at, for a blend that scales it up itself (on a GPU, ``temporal_torch``: at
    1080p the scaling took 13 of the 38 ms a frame's motion costs a CPU).

    ``workers`` > 1 computes the motions of that many pairs at once on threads (OpenCV
    releases the GIL): each pair's motion depends on its two frames alone. With the blend on a
    GPU, the flow is the largest part of an actor's host work, and one thread of it would cap
    an actor that holds more CPUs."""
    own = threading.local()  # each thread's DIS and scratch arrays

    def motion(previous: np.ndarray, gray: np.ndarray, shape: tuple) -> Motion:
        if not hasattr(own, "flow"):
            own.flow, own.scratch = DISFlow(), Scratch()
        return _motion(previous, gray, shape, full_size, own.flow, own.scratch)

    ahead = 2 * workers if workers > 1 else 0  # pairs computed before the consumer takes them
    with ThreadPoolExecutor(workers, thread_name_prefix="flow") if workers > 1 \
            else contextlib.nullcontext(_InThisThread()) as pool:
        pending: collections.deque = collections.deque()
        previous = None
        for frame in frames:
            gray = _flow_gray(frame, max_flow_side)
            pending.append((frame, None if previous is None else
                            pool.submit(motion, previous, gray, frame.shape)))
            previous = gray
            while len(pending) > ahead:
                done, future = pending.popleft()
                yield done, future and future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future and future.result()


def _motion(previous: np.ndarray, gray: np.ndarray, shape: tuple, full_size: bool,
            flow: DISFlow, scratch: Scratch) -> Motion:
    """The Motion from grey frame ``previous`` to ``gray`` (at the flow's size), for a frame of
    ``shape``; the result shares no array with ``scratch``."""
    backward = flow(gray, previous)
    consistent = ~occluded(flow(previous, gray), backward, scratch)
    mismatch = warp(previous, backward, dst=scratch.like("warped", gray), scratch=scratch)
    cv2.absdiff(mismatch, gray, dst=mismatch)
    motion = Motion(backward, trusted(consistent, mismatch).astype(np.float32))
    return _full_size(motion, shape[1], shape[0]) if full_size else motion


class _InThisThread:
    """An executor for one worker: each call runs at once, in the caller's thread (a one-CPU
    actor's read-ahead thread), with no thread of its own."""

    def submit(self, call: Callable, *args) -> Future:
        future: Future = Future()
        future.set_result(call(*args))
        return future


def _flow_gray(frame: np.ndarray, max_side: int) -> np.ndarray:
    gray = to_gray(frame)
    h, w = gray.shape
    scale = max_side / min(h, w)
    if scale >= 1:
        return gray
    return cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))),
                      interpolation=cv2.INTER_AREA)


def _full_size(motion: Motion, width: int, height: int) -> Motion:
    """``motion`` computed on a scaled-down copy, brought to the frame's own size: the field
    resized and its vectors stretched by the same factors, the mask resized (soft at edges)."""
    h, w = motion.flow.shape[:2]
    if (w, h) == (width, height):
        return motion
    flow = cv2.resize(motion.flow, (width, height), interpolation=cv2.INTER_LINEAR)
    flow[..., 0] *= width / w
    flow[..., 1] *= height / h
    visible = cv2.resize(motion.visible, (width, height), interpolation=cv2.INTER_LINEAR)
    return Motion(flow, visible)


def trusted(consistent: np.ndarray, mismatch: np.ndarray) -> np.ndarray:
    """Pixels whose warped previous output may be carried into this frame.

    The forward-backward rule alone is too strict in flat regions (a white wall, the sky): there
    any flow explains the image, DIS's forward and backward flows disagree, and the rule fires
    although nothing is occluded; yet the stylizer hallucinates texture there and it flickers
    most. So a pixel the flow-warped previous *input* matches closely is trusted even if the rule
    fires. Conversely a pixel it does not match at all is never trusted, whatever the rule says:
    a shot change, a flash or a fast object would otherwise smear the old output across.
    """
    return (consistent | (mismatch <= MATCH_TOLERANCE)) & (mismatch <= MISMATCH_TOLERANCE)


class Scratch(dict):
    """Full-size arrays kept from frame to frame. A new 848x360 float array costs more to
    allocate and touch (fresh pages from the OS) than most of the arithmetic done in it, so the
    step writes its intermediate results into the same few arrays every frame."""

    def like(self, name: str, image: np.ndarray) -> np.ndarray:
        array = self.get(name)
        if array is None or array.shape != image.shape or array.dtype != image.dtype:
            array = self[name] = np.empty_like(image)
        return array


def restore_detail(blended: np.ndarray, fresh: np.ndarray, sigma: float = DETAIL_SIGMA,
                   scratch: Scratch | None = None) -> np.ndarray:
    """``blended`` (float32 RGB) with its detail scaled up to the local contrast of ``fresh``'s.

    Detail is what a Gaussian of ``sigma`` removes. Its local energy (mean square over a window
    4 sigma wide) is compared between the two, and the blend's detail is multiplied by the square
    root of the ratio (times ``DETAIL_TARGET``), between 1 and ``MAX_DETAIL_GAIN``: where the
    blend averaged textures that did not line up, their contrast comes back; where they lined up
    (the style's texture moved with the scene), the blend kept it and the gain is about 1.
    Measuring the energy, rather than counting the blend's weights as Yu et al. do for
    uncorrelated noise, is what handles both. The texture stays the blend's, which changes
    slowly along the flow: that is the flicker it removes. The result is written into
    ``scratch`` when one is given (valid until its next use).
    """
    scratch = Scratch() if scratch is None else scratch
    low = cv2.GaussianBlur(blended, (0, 0), sigma, dst=scratch.like("low", blended))
    detail = cv2.subtract(blended, low, dst=scratch.like("detail", blended))
    fresh_detail = cv2.GaussianBlur(fresh, (0, 0), sigma, dst=scratch.like("fresh", fresh))
    cv2.subtract(fresh, fresh_detail, dst=fresh_detail)
    gain = _detail_gain(fresh_detail, detail, 4 * sigma, scratch)
    cv2.multiply(detail, cv2.merge([gain, gain, gain]), dst=detail)
    cv2.add(detail, low, dst=detail)
    return detail


def _detail_gain(fresh_detail: np.ndarray, detail: np.ndarray, sigma: float,
                 scratch: Scratch) -> np.ndarray:
    """sqrt(local energy of ``fresh_detail`` / that of ``detail``), clipped to [1, max], (H, W).
    Energies are windowed means of the squared detail over all channels, computed at a quarter
    of the size and the gain scaled back up: the window is wide, and full-size work here would
    cost more than the rest of the step."""
    h, w = detail.shape[:2]
    small = (max(1, w // 4), max(1, h // 4))

    def energy(d: np.ndarray) -> np.ndarray:
        squared = cv2.multiply(d, d, dst=scratch.like("squared", d))
        small_squared = cv2.resize(squared, small, interpolation=cv2.INTER_AREA)
        return cv2.GaussianBlur(small_squared.sum(axis=2), (0, 0), sigma / 4)

    gain = np.sqrt((energy(fresh_detail) + 1) / (energy(detail) + 1))
    gain *= DETAIL_TARGET
    np.clip(gain, 1, MAX_DETAIL_GAIN, out=gain)
    return cv2.resize(gain, (w, h), interpolation=cv2.INTER_LINEAR)


def _mean_drift(image: np.ndarray, reference: np.ndarray | None = None) -> float:
    """Mean absolute difference of ``image`` from ``reference`` (from 0 without one), in [0, 1]
    of the pixel range: the deviation the budget bounds."""
    norm = cv2.norm(image, cv2.NORM_L1) if reference is None else \
        cv2.norm(image, reference, cv2.NORM_L1)
    return norm / image.size / 255


def shrink_to_budget(correction: np.ndarray, budget: float, scratch: Scratch) -> None:
    """Soft-threshold ``correction`` (float32, pixel units) in place so that its mean absolute
    value is ``budget`` (in [0, 1] of the range): every value moves towards 0 by the same
    amount, and those smaller than that become 0.

    Of all corrections that small, this is the closest to the one asked for (the Euclidean
    projection onto an L1 ball; Duchi, Shalev-Shwartz, Singer and Chandra, ICML 2008), so it
    removes the most squared flicker for the deviation spent: the big jumps a repainted texture
    makes are still mostly corrected, the small ones are left to the fresh frame. Scaling the
    whole correction down instead (what the step did before) cut E_warp 5-7 points less on the
    styles that spend the budget most, for 0.002-0.004 less deviation (benchmarks.temporal). The
    threshold is found on about ``THRESHOLD_SAMPLE`` values (every Nth pixel of every Nth row):
    enough for a mean, and the sorting costs the same at any size.
    """
    stride = max(1, math.isqrt(correction.size // THRESHOLD_SAMPLE))
    sample = np.sort(np.abs(correction[::stride, ::stride]).ravel())[::-1]
    excess = np.cumsum(sample) - budget * 255 * sample.size  # if the k largest were the only ones
    ranks = np.arange(1, sample.size + 1)
    kept = np.flatnonzero(sample * ranks > excess)[-1] + 1  # Duchi et al.'s rho
    threshold = max(float(excess[kept - 1]) / kept, 0.0)
    clipped = np.clip(correction, -threshold, threshold, out=scratch.like("clipped", correction))
    correction -= clipped  # x - clip(x, -t, t) is the soft threshold


def _hold_to_budget(output: np.ndarray, fresh: np.ndarray, budget: float,
                    scratch: Scratch) -> None:
    """Move ``output`` (float32, in place) towards ``fresh`` until their mean absolute
    difference is ``budget`` at most: soft-thresholded like the correction, which keeps more of
    the steadying than scaling the difference down, then scaled the last bit, since the
    threshold is found on a sample."""
    output -= fresh
    shrink_to_budget(output, budget, scratch)
    drift = _mean_drift(output)
    if drift > budget:
        output *= budget / drift
    output += fresh


def _luma_laplacian(image: np.ndarray, scratch: Scratch, name: str) -> np.ndarray:
    plane = image[..., 0]  # the shape and type of one channel
    luma = to_gray(image, dst=scratch.like("luma", plane))
    return cv2.Laplacian(luma, cv2.CV_32F, dst=scratch.like(name, plane))


def detail_share(state: np.ndarray, restored: np.ndarray, fresh: np.ndarray, share: float,
                 scratch: Scratch) -> float:
    """The fraction k in [0, 1] of ``restored - state`` (the detail restored) that gives
    ``state + k (restored - state)`` ``share`` of ``fresh``'s sharpness (mean absolute Laplacian
    of the luma): 1 where even all of it falls short, 0 where the state alone has enough.

    The Laplacian is linear, so the blend's is ``L(state) + k L(restored - state)``; k is found
    by bisection on every other pixel of every other row, which is plenty for a mean."""
    target = share * float(np.abs(_luma_laplacian(fresh, scratch, "fresh_lap")).mean())
    base = _luma_laplacian(state, scratch, "state_lap")[::2, ::2]
    extra = _luma_laplacian(restored, scratch, "restored_lap")[::2, ::2] - base

    return share_reaching(lambda k: float(np.abs(base + k * extra).mean()), target)


def share_reaching(sharpness: Callable[[float], float], target: float) -> float:
    """The least k in [0, 1], to within 1%, with ``sharpness(k)`` (growing with k) at least
    ``target``: 1 where even ``sharpness(1)`` falls short, 0 where ``sharpness(0)`` is enough.
    Shared by both blends (``detail_share`` here and in ``temporal_torch``)."""
    if sharpness(1.0) <= target:
        return 1.0
    if sharpness(0.0) >= target:
        return 0.0
    low, high = 0.0, 1.0
    for _ in range(7):
        middle = (low + high) / 2
        low, high = (middle, high) if sharpness(middle) < target else (low, middle)
    return high


class TemporalBlender:
    """Blend each stylized frame with the warped previous state on visible pixels, keeping the
    style's contrast.

    state_t = S_t + c_t, c_t = strength * visible * (warp(state_{t-1}) - S_t), the warp
    bicubic; the output is state_t with its detail restored to S_t's contrast
    (``restore_detail``). ``strength`` 0 is per-frame stylization; near 1 the output follows the
    flow and changes only where it cannot. The state is kept unscaled, so the detail gain never
    feeds back on itself.

    Where the correction's mean size is over ``DEVIATION_BUDGET`` (times strength / the default
    strength; styles whose texture changes wholesale from frame to frame), c_t is instead the
    correction of that size nearest visible * (warp(state_{t-1}) - S_t), the whole one
    (``shrink_to_budget``), its detail is restored only as far as ``OVER_BUDGET_SHARPNESS`` of
    the fresh frame's sharpness (``detail_share``), and the output is held to the same budget
    (``_hold_to_budget``): a frame never drifts further from what the network painted than
    that, so such styles keep their look, at the price of a smaller flicker cut
    (docs/temporal.md has the trade measured over the 26 built-in styles).
    """

    full_size_motion = True  # takes motion at the frame's size (``with_motion``'s default)

    def __init__(self, strength: float = DEFAULT_STRENGTH):
        if not 0 <= strength < 1:
            raise ValueError("temporal strength must be in [0, 1)")
        self.strength = strength
        self._state: np.ndarray | None = None
        self._spare: np.ndarray | None = None  # the state before, written over next frame
        self._scratch = Scratch()
        self._budget = DEVIATION_BUDGET * strength / DEFAULT_STRENGTH

    def __call__(self, stylized: np.ndarray, motion: Motion | None) -> np.ndarray:
        # every full-size array is one of a few reused ones (see ``Scratch``): the state and
        # the spare it is warped into take turns
        spare = self._spare if self._spare is not None and \
            self._spare.shape == stylized.shape else np.empty(stylized.shape, np.float32)
        if motion is None or self._state is None or self.strength == 0:
            spare[...] = stylized
            self._state, self._spare = spare, self._state
            return stylized.copy()
        fresh = self._scratch.like("stylized", spare)
        fresh[...] = stylized
        state = warp(self._state, motion.flow, cv2.INTER_CUBIC, dst=spare)
        state -= fresh
        weight = np.multiply(motion.visible, self.strength,
                             out=self._scratch.like("weight", motion.visible))
        state *= weight[..., None]
        over_budget = _mean_drift(state) > self._budget
        if over_budget:
            # the budget's correction nearest the *whole* one (the warped state carried over
            # entirely), not nearest strength times it: that removes the most flicker for the
            # deviation spent (2-5 points more E_warp cut at the same deviation on the styles
            # that reach the budget, docs/temporal.md). Strength is undone here rather than
            # applied only below the budget, so that frames under it, most frames, pay nothing
            state *= 1 / self.strength
            shrink_to_budget(state, self._budget, self._scratch)
        state += fresh
        self._state, self._spare = state, self._state
        output = restore_detail(state, fresh, scratch=self._scratch)
        if over_budget:  # only as much detail as keeps the frame sharp (OVER_BUDGET_SHARPNESS)
            share = detail_share(state, output, fresh, OVER_BUDGET_SHARPNESS, self._scratch)
            if share < 1:  # state + share * (output - state)
                cv2.addWeighted(output, share, state, 1 - share, 0.0, dst=output)
        # the detail restored can move the frame a little further than the state: the output
        # itself is held to the budget, so no frame ever drifts more than that
        if _mean_drift(output, fresh) > self._budget:
            _hold_to_budget(output, fresh, self._budget, self._scratch)
        output += 0.5
        np.clip(output, 0, 255, out=output)
        return output.astype(np.uint8)


def blender_for(strength: float, device, pixels: int | None = None):
    """The blend for frames of ``pixels`` pixels from a model on ``device`` (a torch.device or
    anything with its ``type``): OpenCV's here on a CPU, which imports no torch (a CPU stylizer
    may run without it, ``onnx_stylizer``); on a GPU ``temporal_torch``'s choice."""
    if device.type != "cuda":
        return TemporalBlender(strength)
    from .temporal_torch import gpu_blender

    return gpu_blender(strength, device, pixels)


def stylize_frames(stylizer: Callable[[list[np.ndarray]], list[np.ndarray]],
                   frames: list[np.ndarray], temporal: float,
                   batch: int = 8) -> list[np.ndarray]:
    """An image's frames, stylized by ``stylizer`` (either stylizer: ``stylize.Stylizer`` or
    ``onnx_stylizer.OnnxStylizer``): one for a still image; an animation's in order, each
    blended along the motion from the one before so it does not flicker, as a video's frames
    are, on the model's GPU if it has one."""
    if len(frames) == 1 or temporal <= 0:
        return [s for i in range(0, len(frames), batch) for s in stylizer(frames[i:i + batch])]
    blend = blender_for(temporal, stylizer.device, frames[0].shape[0] * frames[0].shape[1])
    paired = list(with_motion(frames, full_size=blend.full_size_motion))
    out: list[np.ndarray] = []
    for i in range(0, len(paired), batch):
        group = paired[i:i + batch]
        out.extend(blend(s, m) for s, (_, m) in zip(stylizer([f for f, _ in group]), group))
    return out
