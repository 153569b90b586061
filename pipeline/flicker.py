"""How much a stylized video flickers: Lai et al. 2018's warping error, plus deviation.

E_warp: for each pair of consecutive frames, output frame t-1 is warped to t along the flow of
the *input* video and compared with output frame t on pixels the flow can be trusted on:
    E(t) = sum_x M_t(x) ||O_t(x) - warp(O_{t-1})(x)||² / sum_x M_t(x),  RGB in [0, 1],
averaged over pairs. The flow here is Farneback's, deliberately not the DIS flow the temporal step
uses, so the step is not graded by its own flow; the occlusion mask M follows Lai et al.'s rule
(``temporal.occluded``).

Farneback is a weaker flow than the FlowNet2 Lai et al. used: on fast, blurred objects (the bus in
``bikes``) it reports a small, self-consistent but wrong motion, and the forward-backward rule
cannot see that. Scoring outputs along a flow that does not even carry the *input* frame onto the
next charges every method for the flow's mistake, and most of all a method that follows the true
motion. So pixels where the flow-warped previous input differs from the current input by more than
``FLOW_FAILURE`` (squared RGB distance in [0, 1], about 0.06 per channel) are left out like
occlusions: the input alone decides, the same pixels for every output. ``PairMotion`` keeps the
plain Lai mask too (``lai_visible``) so the strict number can be reported beside it.

A shot change has no flow to follow: pairs whose *input* frames the flow cannot explain (the input's
own warping error above ``CUT_THRESHOLD``, ~100x a normal pair's) are counted as cuts and left out,
since every method's output legitimately changes there.

A video that is blurred or frozen has a low warping error too, so ``deviation`` reports the mean
absolute difference (in [0, 1]) between the output and a per-frame stylization of the same input.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Iterable

import cv2
import numpy as np

from .temporal import occluded, to_gray, warp

CUT_THRESHOLD = 0.05
FLOW_FAILURE = 0.01


def farneback(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    return cv2.calcOpticalFlowFarneback(source, target, None, pyr_scale=0.5, levels=4,
                                        winsize=15, iterations=3, poly_n=5, poly_sigma=1.2,
                                        flags=0)


@dataclass(frozen=True)
class PairMotion:
    """Input frames t-1 -> t as the metric sees them (flow and mask depend on the input only)."""

    backward: np.ndarray  # Farneback flow t -> t-1
    visible: np.ndarray  # pixels of frame t scored: Lai's rule, and the flow explains the input
    lai_visible: np.ndarray  # Lai et al.'s non-occluded pixels alone
    cut: bool  # the flow cannot explain the input pair: a shot change


def pair_motion(previous_in: np.ndarray, current_in: np.ndarray) -> PairMotion:
    previous_gray, gray = to_gray(previous_in), to_gray(current_in)
    backward = farneback(gray, previous_gray)
    lai_visible = ~occluded(farneback(previous_gray, gray), backward)
    input_error = _squared(_unit(current_in), warp(_unit(previous_in), backward))
    cut = _mean_over(input_error, lai_visible) > CUT_THRESHOLD
    return PairMotion(backward, lai_visible & (input_error <= FLOW_FAILURE), lai_visible, cut)


def pair_error(previous_out: np.ndarray, current_out: np.ndarray, motion: PairMotion,
               strict_lai: bool = False) -> float:
    """E(t); ``strict_lai`` scores on Lai's mask alone, flow failures included."""
    squared = _squared(_unit(current_out), warp(_unit(previous_out), motion.backward))
    return _mean_over(squared, motion.lai_visible if strict_lai else motion.visible)


@dataclass
class FlickerMeter:
    """Feed (input frame, output frame) pairs in order; read ``warping_error``."""

    pair_errors: list[float] = field(default_factory=list)
    lai_pair_errors: list[float] = field(default_factory=list)  # on Lai's mask alone
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
                self.lai_pair_errors.append(pair_error(previous_out, output_frame, motion,
                                                       strict_lai=True))
        self._previous = (input_frame, output_frame)
        self._count += 1

    @property
    def warping_error(self) -> float:
        return float(np.mean(self.pair_errors)) if self.pair_errors else 0.0

    @property
    def lai_warping_error(self) -> float:
        """E_warp on Lai et al.'s mask alone, counting pixels where Farneback fails."""
        return float(np.mean(self.lai_pair_errors)) if self.lai_pair_errors else 0.0


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
    total, count = 0.0, 0
    for o, p in zip(outputs, per_frame, strict=True):
        total += float(np.abs(o.astype(np.float32) - p.astype(np.float32)).mean()) / 255
        count += 1
    return total / count if count else 0.0
