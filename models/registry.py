"""Architecture name -> nn.Module class. A new network is one new file plus one line here."""

from __future__ import annotations

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


def build(arch: str, **config) -> nn.Module:
    try:
        cls = ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    return cls(**config)
