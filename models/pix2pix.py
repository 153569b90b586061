"""pix2pix's U-Net generator in the layout of junyanz/pytorch-CycleGAN-and-pix2pix
``models/networks.py`` (nested skip blocks, each an ``nn.Sequential`` named ``model``), so
``latest_net_G.pth`` files saved by that project load as they are.

``unet_256`` is ``num_downs=8``: a 256x256 input reaches 1x1 at the bottleneck. RGB in [-1, 1].
"""

from __future__ import annotations

import torch
from torch import nn

from .cycle_gan import _uses_bias, norm_layer, norm_of


class UnetSkipBlock(nn.Module):
    """x -> [x, up(sub(down(x)))] (concatenated), or just up(sub(down(x))) at the outermost."""

    def __init__(self, outer_nc: int, inner_nc: int, norm, input_nc: int | None = None,
                 submodule: nn.Module | None = None, outermost: bool = False,
                 innermost: bool = False, use_dropout: bool = False):
        super().__init__()
        self.outermost = outermost
        bias = _uses_bias(norm)
        input_nc = input_nc or outer_nc
        downconv = nn.Conv2d(input_nc, inner_nc, 4, stride=2, padding=1, bias=bias)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1)
            layers = [downconv, submodule, nn.ReLU(True), upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), downconv, nn.ReLU(True), upconv, norm(outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), downconv, norm(inner_nc), submodule, nn.ReLU(True),
                      upconv, norm(outer_nc)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(x)
        return y if self.outermost else torch.cat([x, y], 1)


class UnetGenerator(nn.Module):
    def __init__(self, input_nc: int = 3, output_nc: int = 3, num_downs: int = 8, ngf: int = 64,
                 norm: str = "batch", use_dropout: bool = True):
        super().__init__()
        norm_fn = norm_layer(norm)
        block = UnetSkipBlock(ngf * 8, ngf * 8, norm_fn, innermost=True)
        for _ in range(num_downs - 5):
            block = UnetSkipBlock(ngf * 8, ngf * 8, norm_fn, submodule=block,
                                  use_dropout=use_dropout)
        for outer, inner in ((ngf * 4, ngf * 8), (ngf * 2, ngf * 4), (ngf, ngf * 2)):
            block = UnetSkipBlock(outer, inner, norm_fn, submodule=block)
        self.model = UnetSkipBlock(output_nc, ngf, norm_fn, input_nc=input_nc, submodule=block,
                                   outermost=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def recognise(state: dict[str, torch.Tensor]) -> dict | None:
    """The constructor config of a state dict with this generator's keys, else None."""
    first = state.get("model.model.0.weight")
    if first is None:
        return None
    depth = max(k.count("model.") for k in state if k.endswith("weight")) - 1
    return {"input_nc": first.shape[1], "ngf": first.shape[0], "num_downs": depth,
            "norm": norm_of(state)}


def size_multiple(config: dict) -> int:
    """Each of ``num_downs`` stages halves the frame: sides must divide by 2**num_downs."""
    return 2 ** config.get("num_downs", 8)
