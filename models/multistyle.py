"""The conditional-instance-norm multi-style network (Dumoulin, Shlens, Kudlur 2017).

One set of convolutions serves every style; each style owns only the scale and shift of every
normalisation layer. A style is a weight vector over the N learned styles, so mixing styles is a
convex combination of their normalisation parameters. Layout and names follow Magenta's
``image_stylization`` transformer: three contracting convolutions, six residual blocks, and three
expanding layers (nearest-neighbour upsampling then convolution), reflect padding throughout.

``OneStyleNet`` is the same network holding one style's normalisation parameters only (one
built-in style or mix, taken out with ``one_style_state``): what channel pruning works on, since
which channels a style needs depends on the style.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .pruning import ChannelGroup, channels_from_shapes, group
from .style_norm import styled_instance_norm


class ConditionalInstanceNorm(nn.Module):
    """Instance norm whose affine parameters are a style-weighted mix of per-style parameters."""

    def __init__(self, channels: int, num_styles: int, eps: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(num_styles, channels))
        self.beta = nn.Parameter(torch.zeros(num_styles, channels))
        self.eps = eps
        self.keep_layout = False  # see styled_instance_norm

    def affine(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale and shift for style weights (num_styles,) or (N, num_styles): each (C,) or
        (N, C)."""
        return style @ self.gamma, style @ self.beta

    def widen(self, channels: int) -> None:
        """Normalise ``channels`` channels, the extra ones scaled and shifted by zero: a zero
        channel stays zero."""
        extra = channels - self.gamma.shape[1]
        if extra > 0:
            self.gamma = nn.Parameter(F.pad(self.gamma.detach(), [0, extra]))
            self.beta = nn.Parameter(F.pad(self.beta.detach(), [0, extra]))

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """``style``: weights (num_styles,) for the whole batch, or (N, num_styles)."""
        return styled_instance_norm(x, *self.affine(style), self.eps, self.keep_layout)


class ConvNorm(nn.Module):
    """Reflect-pad, convolve (no bias: the norm's beta is the bias), conditional instance norm."""

    def __init__(self, cin: int, cout: int, kernel: int, num_styles: int, stride: int = 1,
                 upsample: int = 1):
        super().__init__()
        self.w = nn.Parameter(torch.empty(cout, cin, kernel, kernel))
        nn.init.kaiming_normal_(self.w, nonlinearity="relu")
        self.norm = ConditionalInstanceNorm(cout, num_styles)
        self.stride, self.upsample, self.pad = stride, upsample, kernel // 2

    def widen_input(self, channels: int) -> None:
        """Take ``channels`` input channels, the extra ones zero and weighted zero: the same
        output, in a shape fast convolution kernels want (fp16 tensor cores skip 3 channels)."""
        extra = channels - self.w.shape[1]
        if extra > 0:
            self.w = nn.Parameter(F.pad(self.w.detach(), [0, 0, 0, 0, 0, extra]))

    def widen_output(self, channels: int) -> None:
        """Give ``channels`` output channels, the extra ones with zero weights, scale and shift:
        they come out zero, so the next layer, widened to take them, computes the same."""
        extra = channels - self.w.shape[0]
        if extra > 0:
            self.w = nn.Parameter(F.pad(self.w.detach(), [0, 0, 0, 0, 0, 0, 0, extra]))
            self.norm.widen(channels)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.norm(self.convolve(x), style)

    def convolve(self, x: torch.Tensor) -> torch.Tensor:
        """The layer up to its norm. The padded input is gone by the time the norm runs: a
        tile's pass stopped at the norm (models.tiling) holds only the convolution's output and
        what its caller holds."""
        return F.conv2d(self._padded(x), self.w, stride=self.stride)

    def _padded(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample > 1:
            x = F.interpolate(x, scale_factor=self.upsample, mode="nearest")
        x = F.pad(x, [self.pad] * 4, mode="reflect")
        if x.shape[1] < self.w.shape[1]:  # widened (widen_input): zero channels to match
            x = F.pad(x, [0, 0, 0, 0, 0, self.w.shape[1] - x.shape[1]])
        return x


class ResidualBlock(nn.ModuleList):
    """conv-norm-relu, conv-norm, plus the input. A ModuleList so parameter names read
    ``res.<block>.<layer>.w`` as in the reference graph."""

    def __init__(self, channels: int, num_styles: int, inner: int | None = None):
        inner = inner or channels
        super().__init__([ConvNorm(channels, inner, 3, num_styles),
                          ConvNorm(inner, channels, 3, num_styles)])

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return x + self[1](F.relu(self[0](x, style)), style)


class MultiStyleNet(nn.Module):
    """RGB in [0, 1] (N, 3, H, W) with H, W multiples of 4, and style weights (N, S) or (S,) ->
    stylized RGB in [0, 1] of the same size. (S,) stays one vector for the batch (see
    ``styled_instance_norm``)."""

    def __init__(self, num_styles: int = 26, width: int = 32, residual_blocks: int = 6,
                 channels: dict[str, int] | None = None):
        super().__init__()
        self.num_styles = num_styles
        c = layer_channels(width, residual_blocks, channels)
        self.contract = nn.ModuleList([
            ConvNorm(3, c["contract0"], 9, num_styles),
            ConvNorm(c["contract0"], c["contract1"], 3, num_styles, stride=2),
            ConvNorm(c["contract1"], c["stream"], 3, num_styles, stride=2),
        ])
        self.res = nn.ModuleList([ResidualBlock(c["stream"], num_styles, c[f"res{i}"])
                                  for i in range(residual_blocks)])
        self.expand = nn.ModuleList([
            ConvNorm(c["stream"], c["expand0"], 3, num_styles, upsample=2),
            ConvNorm(c["expand0"], c["expand1"], 3, num_styles, upsample=2),
            ConvNorm(c["expand1"], 3, 9, num_styles),
        ])

    def forward(self, image: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        style = style.to(image.dtype)
        x = image
        # Each layer's input is let go before its norm runs (x rebound to the convolution's
        # output): a tile's pass stopped at a norm (models.tiling) holds only what is still
        # referenced, and a full-size input held there would add 128 bytes a pixel.
        for layer in self.contract:
            x = layer.convolve(x)
            x = F.relu(layer.norm(x, style))
        for block in self.res:
            x = block(x, style)
        for layer in self.expand[:-1]:
            x = layer.convolve(x)
            x = F.relu(layer.norm(x, style))
        x = self.expand[-1](x, style)
        if x.shape[1] > 3:  # widened (widen_channels): zero channels after the picture's
            x = x[:, :3]
        return torch.sigmoid(x)

    def widen_channels(self, multiple: int) -> int:
        """Round every layer's input and output channels up to a multiple of ``multiple``, the
        extra ones zero (the same output), in the shapes that fp16 tensor-core kernels take
        (the expanding layers run 8 -> 4 -> 3 channels at full size); returns how many layers
        changed."""
        layers = [*self.contract, *(layer for block in self.res for layer in block),
                  *self.expand]
        changed = 0
        for layer in layers:
            cout, cin = layer.w.shape[:2]
            if cout % multiple or cin % multiple:
                layer.widen_input(-(-cin // multiple) * multiple)
                layer.widen_output(-(-cout // multiple) * multiple)
                changed += 1
        return changed


class OneStyleNet(MultiStyleNet):
    """The network with one style built in: RGB in [0, 1] -> stylized RGB in [0, 1]."""

    def __init__(self, width: int = 32, residual_blocks: int = 6,
                 channels: dict[str, int] | None = None):
        super().__init__(1, width, residual_blocks, channels)
        self.register_buffer("style", torch.ones(1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(image, self.style)


def one_style_state(state: dict[str, torch.Tensor], weights) -> dict[str, torch.Tensor]:
    """A MultiStyleNet's state dict as a OneStyleNet's, for the style mix ``weights``: each
    norm's scale and shift are that mix of the styles' (what the network computes for it)."""
    w = torch.as_tensor(weights, dtype=torch.float32)
    return {k: (w.to(v.dtype) @ v)[None] if k.endswith((".gamma", ".beta")) else v
            for k, v in state.items()}


def layer_channels(width: int = 32, residual_blocks: int = 6,
                   channels: dict[str, int] | None = None) -> dict[str, int]:
    sizes = {"contract0": width, "contract1": width, "stream": width,
             **{f"res{i}": width for i in range(residual_blocks)},
             "expand0": width // 4, "expand1": width // 8}
    return {**sizes, **(channels or {})}


def _conv_norm(prefix: str) -> list[tuple[str, int]]:
    """A ConvNorm's output channels: its weights' rows, its norm's per-style columns."""
    return [(f"{prefix}.w", 0), (f"{prefix}.norm.gamma", 1), (f"{prefix}.norm.beta", 1)]


def _input(prefix: str) -> list[tuple[str, int]]:
    return [(f"{prefix}.w", 1)]


def channel_groups(config: dict) -> list[ChannelGroup]:
    """The prunable channels (see ``transformer_net.channel_groups``); the last layer's three
    are the picture's and stay."""
    blocks = config.get("residual_blocks", 6)
    c = layer_channels(config.get("width", 32), blocks, config.get("channels"))
    res = [f"res.{i}" for i in range(blocks)]
    return [
        group("contract0", c["contract0"], _conv_norm("contract.0"), _input("contract.1")),
        group("contract1", c["contract1"], _conv_norm("contract.1"), _input("contract.2")),
        group("stream", c["stream"], _conv_norm("contract.2"),
              *(_conv_norm(f"{r}.1") + _input(f"{r}.0") for r in res), _input("expand.0")),
        *(group(f"res{i}", c[f"res{i}"], _conv_norm(f"{r}.0"), _input(f"{r}.1"))
          for i, r in enumerate(res)),
        group("expand0", c["expand0"], _conv_norm("expand.0"), _input("expand.1")),
        group("expand1", c["expand1"], _conv_norm("expand.1"), _input("expand.2")),
    ]


def _config(state: dict[str, torch.Tensor]) -> dict:
    blocks = len({k.split(".")[1] for k in state if k.startswith("res.")})
    width = state["contract.0.w"].shape[0]
    config = {"width": width, "residual_blocks": blocks}
    channels = channels_from_shapes(state, channel_groups(config))
    if channels != layer_channels(width, blocks):
        config["channels"] = channels
    return config


def recognise(state: dict[str, torch.Tensor]) -> dict | None:
    """The constructor config of a state dict with this network's keys, else None."""
    if "contract.0.norm.gamma" not in state or state["contract.0.norm.gamma"].shape[0] < 2:
        return None
    return {"num_styles": state["contract.0.norm.gamma"].shape[0], **_config(state)}


def recognise_one_style(state: dict[str, torch.Tensor]) -> dict | None:
    if "contract.0.norm.gamma" not in state or state["contract.0.norm.gamma"].shape[0] != 1:
        return None
    return _config(state)
