"""Channel pruning as tensors: which output channels of a network can go together, and the
physically smaller network's weights once some have gone (Shu et al., *Co-Evolutionary
Compression for Unpaired Image Translation*, ICCV 2019, prune generators this way).

A ``ChannelGroup`` is a set of output channels that must be kept or removed together: one
layer's outputs, or a residual stream, whose channels every block adds into, so that the
stream's layers and every block's last layer are pruned alike. Each network file says what its
groups are (``channel_groups(config)``, by parameter name) and takes a ``channels`` config
naming each group's size; ``prune_state`` slices a state dict to the kept channels, which the
network built with the smaller ``channels`` loads as it is. Pure tensors: no search, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

Member = tuple[str, int]  # (state dict key, the dimension that holds the group's channels)


@dataclass(frozen=True)
class ChannelGroup:
    name: str
    size: int
    members: tuple[Member, ...]  # produce the channels (weights, biases, norms) or consume them


def conv_out(prefix: str) -> list[Member]:
    return [(f"{prefix}.weight", 0), (f"{prefix}.bias", 0)]


def conv_in(prefix: str) -> list[Member]:
    return [(f"{prefix}.weight", 1)]


def transposed_out(prefix: str) -> list[Member]:
    """A ConvTranspose2d keeps its weights as (in, out, k, k)."""
    return [(f"{prefix}.weight", 1), (f"{prefix}.bias", 0)]


def transposed_in(prefix: str) -> list[Member]:
    return [(f"{prefix}.weight", 0)]


def norm(prefix: str) -> list[Member]:
    """An affine instance norm or a batch norm (keys it lacks are skipped)."""
    return [(f"{prefix}.{k}", 0) for k in ("weight", "bias", "running_mean", "running_var")]


def group(name: str, size: int, *members: list[Member]) -> ChannelGroup:
    return ChannelGroup(name, size, tuple(m for part in members for m in part))


def prune_state(state: dict[str, torch.Tensor], groups: Sequence[ChannelGroup],
                keep: dict[str, Sequence[int]]) -> dict[str, torch.Tensor]:
    """``state`` with only the ``keep[name]`` channels of each group (all of a group that
    ``keep`` leaves out); keys a group names but ``state`` lacks (a norm without affine
    parameters, a convolution without bias) are skipped."""
    out = dict(state)
    for g in groups:
        if g.name not in keep:
            continue
        index = torch.as_tensor(sorted(keep[g.name]), dtype=torch.long)
        if len(index) == 0 or index.min() < 0 or index.max() >= g.size:
            raise ValueError(f"group {g.name}: keep 1..{g.size} of its channels")
        for key, dim in g.members:
            if key in out:
                out[key] = out[key].index_select(dim, index.to(out[key].device)).contiguous()
    return out


def kept_channels(keep: dict[str, Sequence[int]]) -> dict[str, int]:
    """The ``channels`` config of the smaller network."""
    return {name: len(kept) for name, kept in keep.items()}


def channels_from_shapes(state: dict[str, torch.Tensor], groups: Sequence[ChannelGroup]
                         ) -> dict[str, int]:
    """Each group's size as a checkpoint's shapes say (its first member's)."""
    return {g.name: int(state[g.members[0][0]].shape[g.members[0][1]]) for g in groups}
