"""Style references and the stylizer that batches frames through a model."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from ..models.loading import BUILTIN_STYLES, load_builtin_multistyle
from .errors import InputError

_BUILTIN = re.compile(r"^builtin:(.+)$")


@dataclass(frozen=True)
class StyleRef:
    """A parsed ``--style``: which network, and the weights over its built-in styles."""

    text: str
    weights: tuple[float, ...]  # normalised to sum 1

    @property
    def slug(self) -> str:
        """A file-name-safe label: ``builtin-7`` or ``builtin-3x0.5-12x0.5``."""
        body = self.text.split(":", 1)[1]
        return "builtin-" + re.sub(r"[^0-9a-zA-Z.]+", "-", body.replace("=", "x")).strip("-")


def parse_style(text: str) -> StyleRef:
    """``builtin:N`` (0..25) or a mix ``builtin:3=0.5,12=0.5`` (weights are normalised)."""
    match = _BUILTIN.match(text.strip())
    if not match:
        raise InputError(f"unknown style {text!r}: use builtin:N with N in 0..{BUILTIN_STYLES - 1}, "
                         "or a mix like builtin:3=0.5,12=0.5")
    weights = [0.0] * BUILTIN_STYLES
    for part in match.group(1).split(","):
        index, _, weight = part.partition("=")
        try:
            i, w = int(index), float(weight) if weight else 1.0
        except ValueError:
            raise InputError(f"bad style {text!r}: expected builtin:N or builtin:N=W,M=V") from None
        if not 0 <= i < BUILTIN_STYLES:
            raise InputError(f"unknown style {text!r}: built-in styles are 0..{BUILTIN_STYLES - 1}")
        if w < 0:
            raise InputError(f"bad style {text!r}: weights must not be negative")
        weights[i] += w
    total = sum(weights)
    if total <= 0:
        raise InputError(f"bad style {text!r}: weights sum to zero")
    return StyleRef(text=text.strip(), weights=tuple(w / total for w in weights))


def pick_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


class Stylizer:
    """Frames (H, W, 3 uint8) in, stylized frames of the same size out, a batch at a time.

    Frames are reflect-padded to a multiple of 4 (the network downsamples twice) and cropped
    back. On a GPU the model runs in fp16 with channels_last memory.
    """

    def __init__(self, style: StyleRef, device: torch.device | None = None):
        self.device = device or pick_device()
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        model = load_builtin_multistyle().to(self.device, self.dtype)
        self.model = model.to(memory_format=torch.channels_last) if self.device.type == "cuda" \
            else model
        self.condition = torch.tensor(style.weights, device=self.device, dtype=self.dtype)

    @torch.inference_mode()
    def __call__(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        if not frames:
            return []
        batch = torch.from_numpy(np.stack(frames)).to(self.device)
        h, w = batch.shape[1:3]
        x = batch.permute(0, 3, 1, 2).to(self.dtype).div_(255)
        ph, pw = (-h) % 4, (-w) % 4
        if ph or pw:
            x = torch.nn.functional.pad(x, [0, pw, 0, ph], mode="reflect")
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        y = self.model(x, self.condition)[:, :, :h, :w]
        out = y.mul_(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu()
        return list(out.numpy())
