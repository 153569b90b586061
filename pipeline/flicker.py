"""How much a stylized video flickers: Lai et al. 2018's warping error, plus deviation.

E_warp: for each pair of consecutive frames, output frame t-1 is warped to t along the flow of
the *input* video and compared with output frame t on the pixels Lai et al.'s occlusion rule
(``temporal.occluded``) keeps:
    E(t) = sum_x M_t(x) ||O_t(x) - warp(O_{t-1})(x)||² / sum_x M_t(x),  RGB in [0, 1],
averaged over pairs.

The flow is TV-L1 (Zach et al. 2007; OpenCV contrib's Dual TV-L1), deliberately not the DIS flow
the temporal step uses, so the step is not graded by its own flow. Lai et al. used FlowNet2, which
needs learned weights; TV-L1 needs none and is the most accurate classical flow OpenCV has.
Accuracy matters more than it seems: a metric flow that misses real motion charges every method
for its mistake, most of all one that follows the motion, while a blur looks steady. Farneback,
which this metric used first, did exactly that on the blurred van in ``bikes``, and Lai's
forward-backward rule cannot catch it (docs/temporal.md). Where TV-L1 cannot follow, its two
directions disagree and the rule leaves the pixels out.

A shot change has no flow to follow: a pair whose *input* frames the flow cannot explain (the
input's own warping error on the kept pixels above ``CUT_THRESHOLD``) or where the rule keeps
almost nothing (< ``MIN_VISIBLE`` of the pixels) is counted as a cut and left out, since every
method's output legitimately changes there.

A video that is blurred or frozen has a low warping error too, so ``deviation`` reports the mean
absolute difference (in [0, 1]) between the output and a per-frame stylization of the same input,
and ``sharpness_kept`` how much of that stylization's fine texture the output kept (mean absolute
Laplacian of the luma, output over per-frame): a step that averages brush strokes away scores
low there even when its deviation is small.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Iterable

import cv2
import numpy as np

from .temporal import occluded, to_gray, warp

CUT_THRESHOLD = 0.02
MIN_VISIBLE = 0.1
SCALE_STEP = 0.7
COARSEST_SIDE = 12  # px: the pyramid goes down to this, so that large motions become small


def tv_l1(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Dense flow from ``source`` to ``target`` (grey uint8): target(x) ~ source(x + flow(x)).

    A deep, gentle pyramid (0.7 a level down to ~12 px) is what lets TV-L1 follow an object
    moving 16 px a frame (OpenCV's default 5 levels at 0.5 does not, tests/test_temporal.py);
    3 warps with 5 inner iterations per level is nearly as accurate there as 10, in half the
    time."""
    levels = 1 + max(0, math.ceil(math.log(min(source.shape) / COARSEST_SIDE)
                                  / -math.log(SCALE_STEP)))
    solver = cv2.optflow.DualTVL1OpticalFlow_create(
        nscales=levels, scaleStep=SCALE_STEP, warps=3, innnerIterations=5, outerIterations=5)
    return solver.calc(source, target, None)


@dataclass(frozen=True)
class PairMotion:
    """Input frames t-1 -> t as the metric sees them (flow and mask depend on the input only)."""

    backward: np.ndarray  # TV-L1 flow t -> t-1
    visible: np.ndarray  # pixels of frame t that Lai et al.'s rule keeps
    cut: bool  # the flow cannot explain the input pair: a shot change


def pair_motion(previous_in: np.ndarray, current_in: np.ndarray) -> PairMotion:
    previous_gray, gray = to_gray(previous_in), to_gray(current_in)
    backward = tv_l1(gray, previous_gray)
    visible = ~occluded(tv_l1(previous_gray, gray), backward)
    input_error = _squared(_unit(current_in), warp(_unit(previous_in), backward))
    cut = visible.mean() < MIN_VISIBLE or _mean_over(input_error, visible) > CUT_THRESHOLD
    return PairMotion(backward, visible, cut)


def pair_error(previous_out: np.ndarray, current_out: np.ndarray, motion: PairMotion) -> float:
    squared = _squared(_unit(current_out), warp(_unit(previous_out), motion.backward))
    return _mean_over(squared, motion.visible)


@dataclass
class FlickerMeter:
    """Feed (input frame, output frame) pairs in order; read ``warping_error``."""

    pair_errors: list[float] = field(default_factory=list)
    cuts: list[int] = field(default_factory=list)  # index t of pairs (t-1, t) left out
    _previous: tuple[np.ndarray, np.ndarray] | None = None
    _count: int = 0

    def add(self, input_frame: np.ndarray, output_frame: np.ndarray,
            motion: PairMotion | None = None) -> None:
        if self._previous is not None:
            previous_in, previous_out = self._previous
            motion = motion or pair_motion(previous_in, input_frame)
            if motion.cut:
                self.cuts.append(self._count)
            else:
                self.pair_errors.append(pair_error(previous_out, output_frame, motion))
        self._previous = (input_frame, output_frame)
        self._count += 1

    @property
    def warping_error(self) -> float:
        return float(np.mean(self.pair_errors)) if self.pair_errors else 0.0


def _unit(frame: np.ndarray) -> np.ndarray:
    return frame.astype(np.float32) / 255


def _squared(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ((a - b) ** 2).sum(axis=2)


def _mean_over(values: np.ndarray, mask: np.ndarray) -> float:
    """Mean of ``values`` over ``mask`` (over all pixels if the mask is empty)."""
    count = mask.sum()
    return float(values[mask].sum() / count) if count else float(values.mean())


def warping_error(inputs: Iterable[np.ndarray], outputs: Iterable[np.ndarray],
                  motions: Iterable[PairMotion | None] | None = None) -> FlickerMeter:
    """E_warp of ``outputs`` against ``inputs``; pass ``motions`` (one per frame, the first
    unused) to reuse the input's flow when scoring several outputs of the same input."""
    meter = FlickerMeter()
    motions = motions if motions is not None else itertools.repeat(None)
    for i, o, m in zip(inputs, outputs, motions):
        meter.add(i, o, m)
    return meter


def deviation(outputs: Iterable[np.ndarray], per_frame: Iterable[np.ndarray]) -> float:
    """Mean absolute difference in [0, 1] between two frame sequences of equal length."""
    values = [difference(o, p) for o, p in zip(outputs, per_frame, strict=True)]
    return sum(values) / len(values) if values else 0.0


def sharpness(frame: np.ndarray) -> float:
    """Mean absolute Laplacian of the luma (RGB uint8 in): how much fine texture a frame has."""
    luma = to_gray(frame).astype(np.float32)
    return float(np.abs(cv2.Laplacian(luma, cv2.CV_32F)).mean())


def difference(output: np.ndarray, per_frame: np.ndarray) -> float:
    """Mean absolute difference of two frames, in [0, 1]."""
    return float(np.abs(output.astype(np.float32) - per_frame.astype(np.float32)).mean()) / 255


def compare(outputs: Iterable[np.ndarray], per_frame: Iterable[np.ndarray]) -> tuple[float, float]:
    """(deviation, sharpness kept) of ``outputs`` against a per-frame stylization, in one pass."""
    total, count, kept, had = 0.0, 0, 0.0, 0.0
    for o, p in zip(outputs, per_frame, strict=True):
        total += difference(o, p)
        kept, had = kept + sharpness(o), had + sharpness(p)
        count += 1
    return (total / count if count else 0.0), (kept / had if had else 1.0)
