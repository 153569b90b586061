"""Instance normalisation with a style's scale and shift, shared by the conditional networks
(``multistyle``'s per-style parameters, ``arbitrary``'s predicted ones)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def styled_instance_norm(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                         eps: float) -> torch.Tensor:
    """``x`` (N, C, H, W) normalised per sample and channel, then scaled by ``gamma`` and
    shifted by ``beta``: (C,) for one style over the whole batch, (N, C) for one per sample.

    One style goes through ``F.instance_norm``, which exports to ONNX's InstanceNormalization,
    onnxruntime's fused kernel: with the mean and variance spelled out as tensor operations the
    built-in network took about 10% longer a frame on the CPU (``benchmarks.engines``)."""
    if gamma.dim() == 1:
        return F.instance_norm(x, weight=gamma, bias=beta, eps=eps)
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), keepdim=True, unbiased=False)
    return ((x - mean) * torch.rsqrt(var + eps) * gamma[:, :, None, None]
            + beta[:, :, None, None])
