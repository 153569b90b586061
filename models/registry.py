"""Architecture name -> nn.Module class. A new network is one new file plus one line here."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .cycle_gan import NLayerDiscriminator, ResnetGenerator
from .multistyle import MultiStyleNet
from .pix2pix import UnetGenerator
from .transformer_net import TransformerNet

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "multistyle": MultiStyleNet,
    "transformer_net": TransformerNet,
    "resnet_generator": ResnetGenerator,
    "unet_generator": UnetGenerator,
    "patchgan_discriminator": NLayerDiscriminator,
}


@dataclass(frozen=True)
class IOConvention:
    """How a network wants its pixels: value range in and out, and a size multiple."""

    low: float
    high: float
    multiple: int = 4


IO_CONVENTIONS: dict[str, IOConvention] = {
    "multistyle": IOConvention(0.0, 1.0),
    "transformer_net": IOConvention(0.0, 255.0),
    "resnet_generator": IOConvention(-1.0, 1.0),
    "unet_generator": IOConvention(-1.0, 1.0, multiple=256),  # set from num_downs when built
    "torchscript": IOConvention(0.0, 1.0),  # the contract `framestyle models export` writes
}


def build(arch: str, **config) -> nn.Module:
    try:
        cls = ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    return cls(**config)
