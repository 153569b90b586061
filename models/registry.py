"""Architecture name -> nn.Module class. A new network is one new file plus one line here."""

from __future__ import annotations

from torch import nn

from .multistyle import MultiStyleNet

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "multistyle": MultiStyleNet,
}


def build(arch: str, **config) -> nn.Module:
    try:
        cls = ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    return cls(**config)
