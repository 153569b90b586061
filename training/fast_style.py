"""``fast-style``: Johnson et al., *Perceptual Losses for Real-Time Style Transfer and
Super-Resolution* (ECCV 2016), as pytorch/examples ``fast_neural_style`` trains it.

A TransformerNet learns one style from ``--style-image``: content loss on VGG16's relu2_2
between the output and the input photo, style loss on the Gram matrices of relu1_2, relu2_2,
relu3_3 and relu4_3 against the style image's, and a total-variation regulariser. Weights
default to pytorch/examples' (content 1e5, style 1e10; Gram matrices normalised by C*H*W), whose
checkpoints users already have; batch 4, Adam at 1e-3.

The loss network needs VGG16's ImageNet weights: torchvision's cached download, or
``--vgg-weights PATH|URI``. ``--vgg-weights random`` trains against a random VGG (smoke tests
only: the result is no style).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from pydantic import Field

from ..core import storage
from ..core.errors import InputError
from ..core.spec import Spec
from ..models.transformer_net import TransformerNet
from ..models.vgg import Vgg16Features, from_torchvision_state
from ..pipeline.image_file_job import load_rgb
from .losses import gram_matrix, total_variation
from .recipe import Product, Recipe

log = logging.getLogger(__name__)
TORCHVISION_VGG16 = "vgg16-397923af.pth"  # torchvision's IMAGENET1K_V1 file name
RANDOM = "random"


class Options(Spec):
    style_image: str = Field(description="the style: a picture, local or s3://")
    width: float = Field(1.0, gt=0, le=4, description="channel multiplier of the TransformerNet")
    content_weight: float = Field(1e5, ge=0, description="weight of the relu2_2 content loss")
    style_weight: float = Field(1e10, ge=0, description="weight of the Gram-matrix style loss")
    tv_weight: float = Field(1e-6, ge=0, description="weight of the total-variation loss")
    style_size: int | None = Field(None, ge=16, description="longer side the style image is "
                                                            "scaled to (default: as is, <= 1024)")
    vgg_weights: str | None = Field(None, description="VGG16 ImageNet weights (a torchvision "
                                                      ".pth, local or s3://), or 'random'")


class FastStyle(Recipe):
    Options = Options
    batch_size = 4
    lr = 1e-3

    @classmethod
    def prepare(cls, settings, options: Options) -> dict:
        if storage.storage_for(options.style_image).stat(options.style_image) is None:
            raise InputError(f"style image not found: {options.style_image}")
        style = load_rgb(storage.fetch(options.style_image), options.style_image,
                         options.style_size or 1024)
        return {"style": style, "vgg": vgg_state(options.vgg_weights)}

    def build(self, prepared: dict) -> None:
        self.nets["generator"] = TransformerNet(self.options.width).to(self.device)
        self.adam("generator", self.nets["generator"].parameters(), betas=(0.9, 0.999))
        self.vgg = loss_network(prepared["vgg"], self.settings.seed).to(self.device)
        style = torch.from_numpy(prepared["style"]).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            self.style_grams = [gram_matrix(f) for f in self.vgg(style.to(self.device))]

    def step(self, batch):
        x = batch["a"]
        y = self.nets["generator"](x * 255) / 255  # the network works in [0, 255]
        features_y, features_x = self.vgg(y), self.vgg(x)
        o = self.options
        content = o.content_weight * F.mse_loss(features_y[1], features_x[1])
        style = o.style_weight * sum(F.mse_loss(gram_matrix(f), g.expand(len(f), -1, -1))
                                     for f, g in zip(features_y, self.style_grams))
        tv = o.tv_weight * total_variation(y * 255)
        loss = content + style + tv
        optimizer = self.optimizers["generator"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"content": content.item(), "style": style.item(), "tv": tv.item(),
                "total": loss.item()}

    @torch.no_grad()
    def samples(self, batch):
        x = batch["a"]
        return [x, (self.net("generator")(x * 255) / 255).clamp(0, 1)]

    @classmethod
    def products(cls, settings, options: Options) -> list[Product]:
        return [Product("generator", "transformer_net", {"width": options.width})]


def loss_network(state: dict[str, torch.Tensor] | None, seed: int) -> Vgg16Features:
    """VGG16 with ``state`` (``vgg_state``), frozen, in eval mode; without one, random weights
    drawn from ``seed``, the same on every worker (``--vgg-weights random``)."""
    vgg = Vgg16Features().eval()
    if state is not None:
        vgg.load_state_dict(state)
    else:
        generator = torch.Generator().manual_seed(seed)
        for p in vgg.parameters():
            p.data.copy_(torch.randn(p.shape, generator=generator) * 0.05)
    return vgg.requires_grad_(False)


def vgg_state(weights: str | None) -> dict[str, torch.Tensor] | None:
    """VGG16's feature weights from ``weights`` (a path or URI), torchvision's cache when None;
    None for ``random`` (with a warning)."""
    if weights == RANDOM:
        log.warning("training against a RANDOM VGG16: the losses mean nothing; for smoke tests")
        return None
    if weights is None:
        path = Path(torch.hub.get_dir(), "checkpoints", TORCHVISION_VGG16)
        if not path.is_file():
            raise InputError(
                f"VGG16 ImageNet weights not found at {path}: download them once online with "
                "python -c \"import torchvision; torchvision.models.vgg16(weights='DEFAULT')\" "
                "or pass --vgg-weights PATH|URI")
        local = str(path)
    else:
        if storage.storage_for(weights).stat(weights) is None:
            raise InputError(f"--vgg-weights: not found: {weights}")
        local = storage.fetch(weights)
    try:
        state = torch.load(local, map_location="cpu", weights_only=True)
        return from_torchvision_state(state)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise InputError(f"--vgg-weights: not torchvision VGG16 weights: {weights or local} "
                         f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
