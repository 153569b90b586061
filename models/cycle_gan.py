"""CycleGAN's ResNet generator and the PatchGAN discriminator, in the layout of
junyanz/pytorch-CycleGAN-and-pix2pix ``models/networks.py`` (one ``nn.Sequential`` named
``model``), so ``latest_net_G*.pth`` files saved by that project load as they are.

Generators take and return RGB in [-1, 1].
"""

from __future__ import annotations

import functools
import re

import torch
from torch import nn

from .pruning import (ChannelGroup, channels_from_shapes, conv_in, conv_out, group, norm,
                      transposed_in, transposed_out)


def norm_layer(kind: str):
    """That project's ``--norm``: instance (no affine, no running stats), batch, or none; and
    instance_affine, the instance norm with a learned scale and shift other trainers use."""
    if kind == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if kind == "instance_affine":
        return functools.partial(nn.InstanceNorm2d, affine=True, track_running_stats=False)
    if kind == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if kind == "none":
        return lambda channels: nn.Identity()
    raise ValueError(f"unknown norm {kind!r}: instance, instance_affine, batch or none")


def _uses_bias(norm) -> bool:
    # Convolutions feeding a BatchNorm need no bias (its shift is one); elsewhere they do.
    return getattr(norm, "func", norm) is not nn.BatchNorm2d


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, norm, use_dropout: bool, use_bias: bool, inner: int | None = None):
        super().__init__()
        inner = inner or dim
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, inner, 3, bias=use_bias), norm(inner),
                  nn.ReLU(True)]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(inner, dim, 3, bias=use_bias), norm(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """c7s1-64, d128, d256, n x R256, u128, u64, c7s1-3 (6 blocks for 128 px, 9 for 256 px)."""

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, n_blocks: int = 9,
                 norm: str = "instance", use_dropout: bool = False,
                 channels: dict[str, int] | None = None):
        super().__init__()
        norm_fn = norm_layer(norm)
        bias = _uses_bias(norm_fn)
        c = generator_channels(ngf, n_blocks, channels)
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, c["c1"], 7, bias=bias),
                  norm_fn(c["c1"]), nn.ReLU(True)]
        for cin, cout in ((c["c1"], c["d1"]), (c["d1"], c["stream"])):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=bias), norm_fn(cout),
                       nn.ReLU(True)]
        layers += [ResnetBlock(c["stream"], norm_fn, use_dropout, bias, c[f"block{i}"])
                   for i in range(n_blocks)]
        for cin, cout in ((c["stream"], c["u1"]), (c["u1"], c["u2"])):
            layers += [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1,
                                          bias=bias),
                       norm_fn(cout), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(c["u2"], output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def generator_channels(ngf: int = 64, n_blocks: int = 9,
                       channels: dict[str, int] | None = None) -> dict[str, int]:
    sizes = {"c1": ngf, "d1": ngf * 2, "stream": ngf * 4,
             **{f"block{i}": ngf * 4 for i in range(n_blocks)}, "u1": ngf * 2, "u2": ngf}
    return {**sizes, **(channels or {})}


def generator_channel_groups(config: dict) -> list[ChannelGroup]:
    """The prunable channels of a ResnetGenerator, by the indices of its ``model`` Sequential
    (see ``transformer_net.channel_groups``)."""
    n = config.get("n_blocks", 9)
    c = generator_channels(config.get("ngf", 64), n, config.get("channels"))
    second = 6 if config.get("use_dropout") else 5  # a block's second convolution
    blocks = [f"model.{10 + i}.conv_block" for i in range(n)]
    up1, up2, last = 10 + n, 13 + n, 17 + n
    return [
        group("c1", c["c1"], conv_out("model.1"), norm("model.2"), conv_in("model.4")),
        group("d1", c["d1"], conv_out("model.4"), norm("model.5"), conv_in("model.7")),
        group("stream", c["stream"], conv_out("model.7"), norm("model.8"),
              *(conv_out(f"{b}.{second}") + norm(f"{b}.{second + 1}") + conv_in(f"{b}.1")
                for b in blocks), transposed_in(f"model.{up1}")),
        *(group(f"block{i}", c[f"block{i}"], conv_out(f"{b}.1"), norm(f"{b}.2"),
                conv_in(f"{b}.{second}")) for i, b in enumerate(blocks)),
        group("u1", c["u1"], transposed_out(f"model.{up1}"), norm(f"model.{up1 + 1}"),
              transposed_in(f"model.{up2}")),
        group("u2", c["u2"], transposed_out(f"model.{up2}"), norm(f"model.{up2 + 1}"),
              conv_in(f"model.{last}")),
    ]


class NLayerDiscriminator(nn.Module):
    """PatchGAN: a grid of real/fake logits, each seeing a 70x70 patch (n_layers=3)."""

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3,
                 norm: str = "instance"):
        super().__init__()
        norm_fn = norm_layer(norm)
        bias = _uses_bias(norm_fn)
        layers = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            previous, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * previous, ndf * mult, 4, stride=stride, padding=1,
                                 bias=bias),
                       norm_fn(ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def norm_of(state: dict[str, torch.Tensor]) -> str:
    """Which ``norm`` a junyanz-layout generator was saved with, from its keys: batch norm keeps
    running statistics; an affine instance norm (as several CycleGAN trainers build it) has a
    1-D ``weight`` but none; the junyanz default instance norm has no parameters at all."""
    if any(k.endswith("running_mean") for k in state):
        return "batch"
    if any(k.endswith(".weight") and v.dim() == 1 for k, v in state.items()):
        return "instance_affine"
    return "instance"


def recognise_resnet_generator(state: dict[str, torch.Tensor]) -> dict | None:
    """The constructor config of a state dict with this generator's keys, else None."""
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"model\.(\d+)\.conv_block\.", k))}
    if "model.1.weight" not in state or not blocks:
        return None
    first = state["model.1.weight"]
    config = {"input_nc": first.shape[1], "ngf": first.shape[0], "n_blocks": len(blocks),
              "norm": norm_of(state)}
    second = state.get("model.10.conv_block.6.weight")
    if second is not None and second.dim() == 4:  # a Dropout shifts the second convolution
        config["use_dropout"] = True
    channels = channels_from_shapes(state, generator_channel_groups(config))
    if channels != generator_channels(config["ngf"], config["n_blocks"]):
        config["channels"] = channels
    return config


def recognise_discriminator(state: dict[str, torch.Tensor]) -> dict | None:
    """The constructor config of a PatchGAN discriminator's state dict (junyanz's
    ``latest_net_D_A.pth``), else None: its first layer is a 4x4 convolution at ``model.0``."""
    first = state.get("model.0.weight")
    if first is None or first.dim() != 4 or tuple(first.shape[2:]) != (4, 4):
        return None
    convs = [k for k, v in state.items() if re.fullmatch(r"model\.\d+\.weight", k) and v.dim() == 4]
    return {"input_nc": first.shape[1], "ndf": first.shape[0], "n_layers": len(convs) - 2,
            "norm": norm_of(state)}
