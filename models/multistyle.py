"""The conditional-instance-norm multi-style network (Dumoulin, Shlens, Kudlur 2017).

One set of convolutions serves every style; each style owns only the scale and shift of every
normalisation layer. A style is a weight vector over the N learned styles, so mixing styles is a
convex combination of their normalisation parameters. Layout and names follow Magenta's
``image_stylization`` transformer: three contracting convolutions, six residual blocks, and three
expanding layers (nearest-neighbour upsampling then convolution), reflect padding throughout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConditionalInstanceNorm(nn.Module):
    """Instance norm whose affine parameters are a style-weighted mix of per-style parameters."""

    def __init__(self, channels: int, num_styles: int, eps: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(num_styles, channels))
        self.beta = nn.Parameter(torch.zeros(num_styles, channels))
        self.eps = eps

    def affine(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale and shift for style weights (N, num_styles): each (N, C, 1, 1)."""
        return (style @ self.gamma)[:, :, None, None], (style @ self.beta)[:, :, None, None]

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.affine(style)
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = x.var(dim=(2, 3), keepdim=True, unbiased=False)
        return (x - mean) * torch.rsqrt(var + self.eps) * gamma + beta


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

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        if self.upsample > 1:
            x = F.interpolate(x, scale_factor=self.upsample, mode="nearest")
        x = F.pad(x, [self.pad] * 4, mode="reflect")
        if x.shape[1] < self.w.shape[1]:  # widened (widen_input): zero channels to match
            x = F.pad(x, [0, 0, 0, 0, 0, self.w.shape[1] - x.shape[1]])
        return self.norm(F.conv2d(x, self.w, stride=self.stride), style)


class ResidualBlock(nn.ModuleList):
    """conv-norm-relu, conv-norm, plus the input. A ModuleList so parameter names read
    ``res.<block>.<layer>.w`` as in the reference graph."""

    def __init__(self, channels: int, num_styles: int):
        super().__init__([ConvNorm(channels, channels, 3, num_styles) for _ in range(2)])

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return x + self[1](F.relu(self[0](x, style)), style)


class MultiStyleNet(nn.Module):
    """RGB in [0, 1] (N, 3, H, W) with H, W multiples of 4, and style weights (N, S) or (S,) ->
    stylized RGB in [0, 1] of the same size."""

    def __init__(self, num_styles: int = 26, width: int = 32, residual_blocks: int = 6):
        super().__init__()
        self.num_styles = num_styles
        self.contract = nn.ModuleList([
            ConvNorm(3, width, 9, num_styles),
            ConvNorm(width, width, 3, num_styles, stride=2),
            ConvNorm(width, width, 3, num_styles, stride=2),
        ])
        self.res = nn.ModuleList([ResidualBlock(width, num_styles) for _ in range(residual_blocks)])
        self.expand = nn.ModuleList([
            ConvNorm(width, width // 4, 3, num_styles, upsample=2),
            ConvNorm(width // 4, width // 8, 3, num_styles, upsample=2),
            ConvNorm(width // 8, 3, 9, num_styles),
        ])

    def forward(self, image: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        if style.dim() == 1:
            style = style.expand(image.shape[0], -1)
        style = style.to(image.dtype)
        x = image
        for layer in self.contract:
            x = F.relu(layer(x, style))
        for block in self.res:
            x = block(x, style)
        for layer in self.expand[:-1]:
            x = F.relu(layer(x, style))
        return torch.sigmoid(self.expand[-1](x, style))


def recognise(state: dict[str, torch.Tensor]) -> dict | None:
    """The constructor config of a state dict with this network's keys, else None."""
    if "contract.0.norm.gamma" not in state:
        return None
    blocks = {k.split(".")[1] for k in state if k.startswith("res.")}
    return {"num_styles": state["contract.0.norm.gamma"].shape[0],
            "width": state["contract.0.w"].shape[0], "residual_blocks": len(blocks)}
