"""Instance normalisation with a style's scale and shift, shared by the conditional networks
(``multistyle``'s per-style parameters, ``arbitrary``'s predicted ones)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def styled_instance_norm(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                         eps: float, keep_layout: bool = False) -> torch.Tensor:
    """``x`` (N, C, H, W) normalised per sample and channel, then scaled by ``gamma`` and
    shifted by ``beta``: (C,) for one style over the whole batch, (N, C) for one per sample.

    One style goes through ``F.instance_norm``, which exports to ONNX's InstanceNormalization,
    onnxruntime's fused kernel: with the mean and variance spelled out as tensor operations the
    built-in network took about 10% longer a frame on the CPU (``benchmarks.engines``).

    ``keep_layout``: computed from ``x``'s statistics in its own memory layout instead.
    ``F.instance_norm`` runs batch norm over a contiguous (NCHW) copy of its input, so on a
    channels_last tensor every norm copies the activations out of their layout and the next
    convolution copies them back (on an H200 the built-in network ran 20% slower in
    channels_last than contiguous, ``benchmarks.gpu``, which measures this side by side)."""
    if keep_layout:
        var, mean = torch.var_mean(x, dim=(2, 3), correction=0, keepdim=True)
        scale = torch.rsqrt(var + eps) * gamma[..., None, None]
        return torch.addcmul(beta[..., None, None], x - mean, scale)
    if gamma.dim() == 1:
        return F.instance_norm(x, weight=gamma, bias=beta, eps=eps)
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), keepdim=True, unbiased=False)
    return ((x - mean) * torch.rsqrt(var + eps) * gamma[:, :, None, None]
            + beta[:, :, None, None])
