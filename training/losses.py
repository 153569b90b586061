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
