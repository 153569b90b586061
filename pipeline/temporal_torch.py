"""The temporal step's blend on the model's device: ``temporal.TemporalBlender``'s algorithm in
PyTorch, for actors whose network runs on a GPU.

Why a second implementation: at 1080p the NumPy/OpenCV blend costs about 85 ms a frame on one
CPU, more than the flow (about 55 ms at 540p), and an actor runs it frame after frame on its
main thread. On an H200 one actor fed by 2 CPUs delivered 5 frames/s with the step, 12 without,
while its GPU ran the network at 120 (docs/architecture.md, "GPUs"). On a GPU the blend is a
few dozen elementwise kernels, three small blurs and one bicubic sampling per frame; the flow
stays on the CPU, on the read-ahead thread (OpenCV's DIS, which has no GPU build here).

Each function below mirrors the one of the same name in ``pipeline.temporal``, whose docstrings
say why it does what it does; tests/test_temporal_torch.py holds the two to within a grey level
on the same frames. They differ only where the libraries do: bicubic sampling is exact here
(OpenCV rounds each position to 1/32 px), sums are summed in another order, and the
quarter-size energy is an area mean, the same as OpenCV's INTER_AREA when the size divides by 4.
"""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from . import temporal
from .temporal import DEFAULT_STRENGTH, Motion

LUMA = (0.299, 0.587, 0.114)  # OpenCV's RGB -> grey weights
# Device bytes a frame pixel takes while it is blended: a dozen float32 copies of the frame and
# its motion live at once (104 bytes a pixel counted on a 1080p frame), doubled for the
# allocator's rounding and the model's cached memory beside it
BLEND_BYTES_PER_PIXEL = 208

log = logging.getLogger("framestyle")


def gpu_blender(strength: float, device: torch.device, pixels: int | None = None):
    """The blend for frames of ``pixels`` pixels from a model on GPU ``device`` (the choice
    ``temporal.blender_for`` leaves to this module): on the GPU where they fit in half its free
    memory, else OpenCV's on the CPU (slower, but an 8K chunk on a small GPU still finishes
    instead of running out of memory)."""
    free, _ = torch.cuda.mem_get_info(device)
    if pixels is not None and pixels * BLEND_BYTES_PER_PIXEL > free / 2:
        log.warning("framestyle: %d-pixel frames blend on the CPU: the GPU has %.1f GiB free",
                    pixels, free / 2**30)
        return temporal.TemporalBlender(strength)
    return TorchTemporalBlender(strength, device)


class TorchTemporalBlender:
    """``temporal.TemporalBlender`` on ``device``: (H, W, 3) uint8 stylized frames and their
    ``Motion`` (at the frame's size, or at the size its flow was computed at) in, blended uint8
    frames out, the state kept on the device."""

    full_size_motion = False  # scales the motion up itself, on the device (``_full_size``)

    def __init__(self, strength: float = DEFAULT_STRENGTH, device: torch.device | str = "cpu"):
        if not 0 <= strength < 1:
            raise ValueError("temporal strength must be in [0, 1)")
        self.strength = strength
        self.device = torch.device(device)
        self._state: torch.Tensor | None = None
        self._budget = temporal.DEVIATION_BUDGET * strength / DEFAULT_STRENGTH
        self._blur = _gaussian_kernel(temporal.DETAIL_SIGMA, self.device)
        self._laplacian = torch.tensor([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=torch.float32,
                                       device=self.device).view(1, 1, 3, 3)
        self._luma = torch.tensor(LUMA, device=self.device).view(1, 3, 1, 1)

    @torch.inference_mode()
    def __call__(self, stylized: np.ndarray, motion: Motion | None) -> np.ndarray:
        fresh = _to_device(stylized, self.device)
        if motion is None or self._state is None or self.strength == 0:
            self._state = fresh
            return stylized.copy()
        flow, visible = self._full_size(motion, *fresh.shape[-2:])
        state = warp(self._state, flow)
        state -= fresh
        state *= visible * self.strength
        over_budget = _mean_drift(state) > self._budget
        if over_budget:  # the budget's correction nearest the whole one (TemporalBlender)
            state *= 1 / self.strength
            shrink_to_budget(state, self._budget)
        state += fresh
        self._state = state
        output = self.restore_detail(state, fresh)
        if over_budget:
            share = self.detail_share(state, output, fresh, temporal.OVER_BUDGET_SHARPNESS)
            if share < 1:
                output = torch.lerp(state, output, share)
        if _mean_drift(output - fresh) > self._budget:
            _hold_to_budget(output, fresh, self._budget)
        output += 0.5
        output.clamp_(0, 255)
        frame = output.to(torch.uint8)[0].permute(1, 2, 0)
        return frame.contiguous().cpu().numpy()

    def _full_size(self, motion: Motion, height: int, width: int):
        """The motion's flow and mask on the device at the frame's size: ``temporal._full_size``
        here, where the motion comes at the size its flow was computed at
        (``with_motion(full_size=False)``)."""
        flow, visible = (_to_device(a, self.device) for a in (motion.flow, motion.visible))
        h, w = flow.shape[-2:]
        if (h, w) == (height, width):
            return flow, visible
        flow = F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False)
        flow *= torch.tensor([width / w, height / h], device=self.device).view(1, 2, 1, 1)
        visible = F.interpolate(visible, size=(height, width), mode="bilinear",
                                align_corners=False)
        return flow, visible

    def restore_detail(self, blended: torch.Tensor, fresh: torch.Tensor) -> torch.Tensor:
        """``temporal.restore_detail``."""
        low = _blur(blended, self._blur)
        detail = blended - low
        fresh_detail = fresh - _blur(fresh, self._blur)
        detail *= self._detail_gain(fresh_detail, detail)
        return detail.add_(low)

    def _detail_gain(self, fresh_detail: torch.Tensor, detail: torch.Tensor) -> torch.Tensor:
        """``temporal._detail_gain`` (the window 4 sigma wide, at a quarter of the size)."""
        h, w = detail.shape[-2:]
        small = (max(1, h // 4), max(1, w // 4))

        def energy(d: torch.Tensor) -> torch.Tensor:
            squared = F.interpolate(d * d, size=small, mode="area").sum(dim=1, keepdim=True)
            return _blur(squared, self._blur)

        gain = torch.sqrt((energy(fresh_detail) + 1) / (energy(detail) + 1))
        gain *= temporal.DETAIL_TARGET
        gain.clamp_(1, temporal.MAX_DETAIL_GAIN)
        return F.interpolate(gain, size=(h, w), mode="bilinear", align_corners=False)

    def detail_share(self, state: torch.Tensor, restored: torch.Tensor, fresh: torch.Tensor,
                     share: float) -> float:
        """``temporal.detail_share``."""
        target = share * float(self._luma_laplacian(fresh).abs().mean())
        base = self._luma_laplacian(state)[..., ::2, ::2]
        extra = self._luma_laplacian(restored)[..., ::2, ::2] - base
        return temporal.share_reaching(lambda k: float((base + k * extra).abs().mean()), target)

    def _luma_laplacian(self, image: torch.Tensor) -> torch.Tensor:
        luma = (image * self._luma).sum(dim=1, keepdim=True)
        return F.conv2d(_pad(luma, 1), self._laplacian)


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``temporal.warp`` with bicubic sampling: ``image`` (1, C, H, W) sampled at x + flow(x),
    flow (1, 2, H, W) in pixels; borders replicated (OpenCV's BORDER_REPLICATE)."""
    _, _, h, w = image.shape
    # pixel positions to [-1, 1], pixel centres on the ends (align_corners)
    scale = torch.tensor([2 / max(1, w - 1), 2 / max(1, h - 1)], device=image.device)
    grid = (_grid(h, w, image.device) + flow[0].permute(1, 2, 0)) * scale - 1
    return F.grid_sample(image, grid[None], mode="bicubic", padding_mode="border",
                         align_corners=True)


_GRIDS: dict[tuple[int, int, torch.device], torch.Tensor] = {}


def _grid(h: int, w: int, device: torch.device) -> torch.Tensor:
    """(H, W, 2) float32 on ``device``: each pixel's own (x, y)."""
    key = (h, w, device)
    if key not in _GRIDS:
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=device),
                                torch.arange(w, dtype=torch.float32, device=device),
                                indexing="ij")
        _GRIDS[key] = torch.stack([xs, ys], dim=-1)
    return _GRIDS[key]


def shrink_to_budget(correction: torch.Tensor, budget: float) -> None:
    """``temporal.shrink_to_budget``, in place: the soft threshold that leaves the correction's
    mean absolute value at ``budget``, found on the same sample of values."""
    stride = max(1, math.isqrt(correction.numel() // temporal.THRESHOLD_SAMPLE))
    sample = correction[..., ::stride, ::stride].abs().flatten().sort(descending=True).values
    excess = sample.cumsum(0) - budget * 255 * sample.numel()
    ranks = torch.arange(1, sample.numel() + 1, device=sample.device, dtype=sample.dtype)
    kept = int(torch.nonzero(sample * ranks > excess)[-1]) + 1
    threshold = max(float(excess[kept - 1]) / kept, 0.0)
    correction -= correction.clamp(-threshold, threshold)


def _hold_to_budget(output: torch.Tensor, fresh: torch.Tensor, budget: float) -> None:
    """``temporal._hold_to_budget``, in place."""
    output -= fresh
    shrink_to_budget(output, budget)
    drift = _mean_drift(output)
    if drift > budget:
        output *= budget / drift
    output += fresh


def _mean_drift(difference: torch.Tensor) -> float:
    """Mean absolute value in [0, 1] of the pixel range (``temporal._mean_drift``)."""
    return float(difference.abs().mean()) / 255


def _gaussian_kernel(sigma: float, device: torch.device) -> torch.Tensor:
    """OpenCV's own kernel for GaussianBlur(sigma) on float images (size 8 sigma + 1, odd)."""
    size = round(sigma * 4 * 2 + 1) | 1
    return torch.from_numpy(cv2.getGaussianKernel(size, sigma, cv2.CV_32F)[:, 0]).to(device)


def _blur(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of each channel of (1, C, H, W), borders reflected as OpenCV's
    default (BORDER_REFLECT_101, PyTorch's "reflect")."""
    channels, radius = image.shape[1], kernel.numel() // 2
    across = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    down = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    image = F.conv2d(_pad(image, radius, 0), across, groups=channels)
    return F.conv2d(_pad(image, 0, radius), down, groups=channels)


def _pad(image: torch.Tensor, across: int, down: int | None = None) -> torch.Tensor:
    """``image`` padded by ``across`` pixels left and right and ``down`` (default: the same)
    above and below, reflected; a map too small to reflect that far repeats its edge."""
    down = across if down is None else down
    h, w = image.shape[-2:]
    mode = "reflect" if across < w and down < h else "replicate"
    return F.pad(image, [across, across, down, down], mode=mode)


def _to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W) or (H, W, C) NumPy -> (1, C, H, W) float32 on ``device``."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.dim() == 2:
        tensor = tensor[..., None]
    return tensor.to(device, non_blocking=False).permute(2, 0, 1)[None].float()
