"""How much a stylized video flickers: Lai et al. 2018's warping error, plus deviation.

E_warp: for each pair of consecutive frames, output frame t-1 is warped to t along the flow of
the *input* video and compared with output frame t on pixels the flow can be trusted on:
    E(t) = sum_x M_t(x) ||O_t(x) - warp(O_{t-1})(x)||² / sum_x M_t(x),  RGB in [0, 1],
averaged over pairs. The flow here is Farneback's, deliberately not the DIS flow the temporal step
uses, so the step is not graded by its own flow; the occlusion mask M follows Lai et al.'s rule
(``temporal.occluded``).

A video that is blurred or frozen has a low warping error too, so ``deviation`` reports the mean
absolute difference (in [0, 1]) between the output and a per-frame stylization of the same input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import cv2
import numpy as np

from .temporal import occluded, to_gray, warp


def farneback(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    return cv2.calcOpticalFlowFarneback(source, target, None, pyr_scale=0.5, levels=4,
                                        winsize=15, iterations=3, poly_n=5, poly_sigma=1.2,
                                        flags=0)


@dataclass
class FlickerMeter:
    """Feed (input frame, output frame) pairs in order; read ``warping_error``."""

    pair_errors: list[float] = field(default_factory=list)
    _previous_gray: np.ndarray | None = None
    _previous_out: np.ndarray | None = None

    def add(self, input_frame: np.ndarray, output_frame: np.ndarray) -> None:
        gray = to_gray(input_frame)
        out = output_frame.astype(np.float32) / 255
        if self._previous_gray is not None:
            backward = farneback(gray, self._previous_gray)
            forward = farneback(self._previous_gray, gray)
            visible = ~occluded(forward, backward)
            diff = out - warp(self._previous_out, backward)
            count = visible.sum()
            squared = (diff ** 2).sum(axis=2)
            self.pair_errors.append(float(squared[visible].sum() / count) if count
                                    else float(squared.mean()))
        self._previous_gray, self._previous_out = gray, out

    @property
    def warping_error(self) -> float:
        return float(np.mean(self.pair_errors)) if self.pair_errors else 0.0


def warping_error(inputs: Iterable[np.ndarray], outputs: Iterable[np.ndarray]) -> FlickerMeter:
    meter = FlickerMeter()
    for i, o in zip(inputs, outputs, strict=True):
        meter.add(i, o)
    return meter


def deviation(outputs: Iterable[np.ndarray], per_frame: Iterable[np.ndarray]) -> float:
    """Mean absolute difference in [0, 1] between two frame sequences of equal length."""
    total, count = 0.0, 0
    for o, p in zip(outputs, per_frame, strict=True):
        total += float(np.abs(o.astype(np.float32) - p.astype(np.float32)).mean()) / 255
        count += 1
    return total / count if count else 0.0
