"""Johnson et al.'s fast style transfer network, in the layout of pytorch/examples'
``fast_neural_style/neural_style/transformer_net.py`` so its ``.pth``/``.model`` files load as
they are (parameter names and shapes match), with a width multiplier for slim variants
(ReCoNet-style networks are the same layout at other widths), and per-layer ``channels`` for
networks pruned channel by channel (``pruning``).

Takes and returns RGB in [0, 255], like the examples' scripts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .pruning import ChannelGroup, channels_from_shapes, conv_in, conv_out, group, norm

RESIDUAL_BLOCKS = 5


class ConvLayer(nn.Module):
    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int):
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(cin, cout, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(self.reflection_pad(x))


class UpsampleConvLayer(ConvLayer):
    """Nearest-neighbour upsampling then convolution (no checkerboard artefacts)."""

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int, upsample: int = 2):
        super().__init__(cin, cout, kernel_size, stride)
        self.upsample = upsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, mode="nearest", scale_factor=float(self.upsample))
        return self.conv2d(self.reflection_pad(x))  # not super(): TorchScript cannot follow it


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, inner: int | None = None):
        super().__init__()
        inner = inner or channels
        self.conv1 = ConvLayer(channels, inner, 3, 1)
        self.in1 = nn.InstanceNorm2d(inner, affine=True)
        self.conv2 = ConvLayer(inner, channels, 3, 1)
        self.in2 = nn.InstanceNorm2d(channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.in2(self.conv2(F.relu(self.in1(self.conv1(x)))))


def layer_channels(width: float = 1.0, channels: dict[str, int] | None = None) -> dict[str, int]:
    """Every channel group's size: ``width`` x the published sizes, then ``channels``."""
    c1, c2, c3 = (max(1, round(c * width)) for c in (32, 64, 128))
    sizes = {"conv1": c1, "conv2": c2, "stream": c3,
             **{f"res{i}": c3 for i in range(1, RESIDUAL_BLOCKS + 1)},
             "deconv1": c2, "deconv2": c1}
    return {**sizes, **(channels or {})}


class TransformerNet(nn.Module):
    def __init__(self, width: float = 1.0, channels: dict[str, int] | None = None):
        super().__init__()
        c = layer_channels(width, channels)
        c1, c2, c3 = c["conv1"], c["conv2"], c["stream"]
        self.conv1, self.in1 = ConvLayer(3, c1, 9, 1), nn.InstanceNorm2d(c1, affine=True)
        self.conv2, self.in2 = ConvLayer(c1, c2, 3, 2), nn.InstanceNorm2d(c2, affine=True)
        self.conv3, self.in3 = ConvLayer(c2, c3, 3, 2), nn.InstanceNorm2d(c3, affine=True)
        self.res1, self.res2, self.res3, self.res4, self.res5 = (
            ResidualBlock(c3, c[f"res{i}"]) for i in range(1, RESIDUAL_BLOCKS + 1))
        self.deconv1 = UpsampleConvLayer(c3, c["deconv1"], 3, 1)
        self.in4 = nn.InstanceNorm2d(c["deconv1"], affine=True)
        self.deconv2 = UpsampleConvLayer(c["deconv1"], c["deconv2"], 3, 1)
        self.in5 = nn.InstanceNorm2d(c["deconv2"], affine=True)
        self.deconv3 = ConvLayer(c["deconv2"], 3, 9, 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The features after the residual blocks (1/4 of the frame's size): what ReCoNet's
        feature-level temporal loss compares between frames."""
        # Each layer's input is let go before its norm runs (y rebound to the convolution's
        # output): a tile's pass stopped at a norm (models.tiling) holds only what is still
        # referenced, and the full-size activation it came from would add 128 bytes a pixel.
        y = F.relu(self.in1(self.conv1(x)))
        y = self.conv2(y)
        y = F.relu(self.in2(y))
        y = self.conv3(y)
        y = F.relu(self.in3(y))
        for block in (self.res1, self.res2, self.res3, self.res4, self.res5):
            y = block(y)
        return y

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        y = self.deconv1(y)
        y = F.relu(self.in4(y))
        y = self.deconv2(y)
        y = F.relu(self.in5(y))
        return self.deconv3(y)

    def forward(self, x: torch.Tensor, with_features: bool = False):
        """The stylized image; with ``with_features``, (image, ``encode``'s features): one call,
        so that data-parallel training sees both."""
        features = self.encode(x)
        return (self.decode(features), features) if with_features else self.decode(features)


def channel_groups(config: dict) -> list[ChannelGroup]:
    """The prunable channels: each layer's outputs, each block's inner channels, and the
    residual stream (conv3 and every block's second convolution add into it)."""
    c = layer_channels(config.get("width", 1.0), config.get("channels"))
    blocks = [f"res{i}" for i in range(1, RESIDUAL_BLOCKS + 1)]
    return [
        group("conv1", c["conv1"], conv_out("conv1.conv2d"), norm("in1"), conv_in("conv2.conv2d")),
        group("conv2", c["conv2"], conv_out("conv2.conv2d"), norm("in2"), conv_in("conv3.conv2d")),
        group("stream", c["stream"], conv_out("conv3.conv2d"), norm("in3"),
              *(conv_out(f"{b}.conv2.conv2d") + norm(f"{b}.in2") + conv_in(f"{b}.conv1.conv2d")
                for b in blocks), conv_in("deconv1.conv2d")),
        *(group(b, c[b], conv_out(f"{b}.conv1.conv2d"), norm(f"{b}.in1"),
                conv_in(f"{b}.conv2.conv2d")) for b in blocks),
        group("deconv1", c["deconv1"], conv_out("deconv1.conv2d"), norm("in4"),
              conv_in("deconv2.conv2d")),
        group("deconv2", c["deconv2"], conv_out("deconv2.conv2d"), norm("in5"),
              conv_in("deconv3.conv2d")),
    ]


def recognise(state: dict[str, torch.Tensor]) -> dict | None:
    """The constructor config of a state dict with this network's keys, else None (a pruned
    network's own layer sizes under ``channels``)."""
    if "conv1.conv2d.weight" not in state or "res1.conv1.conv2d.weight" not in state:
        return None
    width = state["conv1.conv2d.weight"].shape[0] / 32
    channels = channels_from_shapes(state, channel_groups({"width": width}))
    if channels == layer_channels(width):
        return {"width": width}
    return {"width": width, "channels": channels}
