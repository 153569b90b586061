"""Losses and helpers the recipes share, after the papers and their reference code."""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(N, C, C) Gram matrices normalised by C*H*W, as pytorch/examples fast_neural_style."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat.bmm(flat.transpose(1, 2)) / (c * h * w)


def gradient_l1(y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between the images' horizontal and vertical differences: keeps brush strokes sharp
    where plain L1 would accept a blur (distillation's second term)."""
    return (F.l1_loss(y.diff(dim=-1), target.diff(dim=-1))
            + F.l1_loss(y.diff(dim=-2), target.diff(dim=-2)))


def total_variation(y: torch.Tensor) -> torch.Tensor:
    """Sum of absolute differences between neighbouring pixels, per image (Johnson et al.'s
    TV regulariser, in the network's own pixel units)."""
    dx = (y[..., :, 1:] - y[..., :, :-1]).abs().sum()
    dy = (y[..., 1:, :] - y[..., :-1, :]).abs().sum()
    return (dx + dy) / y.shape[0]


class GANLoss:
    """Real/fake targets for a discriminator's logits: ``lsgan`` (least squares, CycleGAN) or
    ``vanilla`` (binary cross-entropy on logits, pix2pix), as junyanz's ``GANLoss``."""

    def __init__(self, mode: str):
        if mode not in ("lsgan", "vanilla"):
            raise ValueError(f"unknown GAN loss {mode!r}")
        self.mode = mode

    def __call__(self, logits: torch.Tensor, real: bool) -> torch.Tensor:
        target = torch.full_like(logits, 1.0 if real else 0.0)
        if self.mode == "lsgan":
            return F.mse_loss(logits, target)
        return F.binary_cross_entropy_with_logits(logits, target)


class ImagePool:
    """A history of generated images (Shrivastava et al.): the discriminator sees a mix of
    this step's fakes and older ones, which steadies GAN training. Size 0 passes through."""

    def __init__(self, size: int = 50):
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif random.random() < 0.5:
                i = random.randrange(self.size)
                out.append(self.images[i].clone())
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.cat(out)

    def state(self) -> list[torch.Tensor]:
        return [i.cpu().half() for i in self.images]  # half: 50 images at 256 px are 20 MB

    def load(self, images: list[torch.Tensor], device: torch.device) -> None:
        self.images = [i.to(device).float() for i in images]


# --- ReCoNet's temporal losses (Gao et al., 2018) ------------------------------------------------

LUMINANCE = (0.2126, 0.7152, 0.0722)  # relative luminance of linear-ish RGB (Rec. 709)


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) sampled at x + flow(x), ``flow`` (N, 2, h, w) in pixels of its own size
    (scaled to the image's when smaller): brings frame t-1 to frame t's grid."""
    n, _, h, w = image.shape
    if flow.shape[-2:] != (h, w):
        sy, sx = h / flow.shape[-2], w / flow.shape[-1]
        flow = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
        flow = flow * flow.new_tensor([sx, sy]).view(1, 2, 1, 1)
    ys, xs = torch.meshgrid(torch.arange(h, device=image.device, dtype=image.dtype),
                            torch.arange(w, device=image.device, dtype=image.dtype), indexing="ij")
    x = (xs + flow[:, 0]) / max(w - 1, 1) * 2 - 1
    y = (ys + flow[:, 1]) / max(h - 1, 1) * 2 - 1
    return F.grid_sample(image, torch.stack([x, y], dim=-1), mode="bilinear",
                         padding_mode="border", align_corners=True)


def output_temporal_loss(out_prev, out, in_prev, in_now, flow, mask) -> torch.Tensor:
    """ReCoNet's output-level loss: where the flow holds (``mask``), the output may change
    between frames only as much as the input's luminance does."""
    weights = in_now.new_tensor(LUMINANCE).view(1, 3, 1, 1)
    input_change = ((in_now - warp(in_prev, flow)) * weights).sum(1, keepdim=True)
    change = out - warp(out_prev, flow) - input_change
    return (mask * change.pow(2)).sum() / (mask.sum() * out.shape[1]).clamp_min(1)


def feature_temporal_loss(features_prev, features, flow, mask) -> torch.Tensor:
    """ReCoNet's feature-level loss: the encoder's features of frame t match frame t-1's warped
    along the flow (both at the features' size), relative to the features' own energy."""
    size = features.shape[-2:]
    small_mask = F.interpolate(mask, size=size, mode="area")
    small_mask = (small_mask > 0.999).to(features.dtype)  # only where the whole cell is trusted
    change = features - warp(features_prev, flow)
    energy = features.detach().pow(2).mean().clamp_min(1e-8)
    return (small_mask * change.pow(2)).sum() / (
        small_mask.sum() * features.shape[1]).clamp_min(1) / energy
