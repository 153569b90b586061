"""``pix2pix``: Isola et al., *Image-to-Image Translation with Conditional Adversarial
Networks* (CVPR 2017), with junyanz/pytorch-CycleGAN-and-pix2pix's settings.

Paired data: each image holds A (left) and B (right) side by side, as the facades, maps and
edges2shoes sets ship. A U-Net generator (``unet_256``: 8 downsamplings, batch norm, dropout)
learns A->B (``--direction b2a`` for the reverse) against a conditional 70x70 PatchGAN that
sees (A, B) pairs: GAN loss on logits plus 100 x L1 to the real B, Adam(2e-4, beta1 0.5), batch
1, random jitter (scale to 286/256 of the crop, crop) and flip applied to both halves alike,
the rate constant for the first half and decaying linearly to zero over the second.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field

from ..core.errors import FieldError
from ..core.spec import Spec
from ..models.cycle_gan import NLayerDiscriminator
from ..models.pix2pix import UnetGenerator
from .losses import GANLoss
from .recipe import Product, Recipe, set_requires_grad


class Options(Spec):
    direction: str = Field("a2b", pattern="^(a2b|b2a)$", description="a2b: left half to right")
    ngf: int = Field(64, ge=1, description="generator filters in the first layer")
    ndf: int = Field(64, ge=1, description="discriminator filters in the first layer")
    num_downs: int | None = Field(None, ge=5, le=10, description="U-Net downsamplings (default: "
                                                                  "down to 1x1 at image-size)")
    norm: str = Field("batch", pattern="^(instance|batch|none)$")
    lambda_l1: float = Field(100.0, ge=0, description="weight of the L1 loss to the real B")
    decay_from: float = Field(0.5, ge=0, le=1, description="fraction of the steps before the "
                                                           "rate starts falling to zero")


class Pix2Pix(Recipe):
    Options = Options
    paired = True
    jitter = 286 / 256

    @classmethod
    def prepare(cls, settings, options: Options) -> dict:
        num_downs(settings, options)
        return {}

    def build(self, prepared: dict) -> None:
        o = self.options
        self.nets["g"] = UnetGenerator(num_downs=num_downs(self.settings, o), ngf=o.ngf,
                                       norm=o.norm)
        self.nets["d"] = NLayerDiscriminator(input_nc=6, ndf=o.ndf, norm=o.norm)
        for net in self.nets.values():
            net.to(self.device)
        self.adam("g", self.nets["g"].parameters(), decay_from=o.decay_from)
        self.adam("d", self.nets["d"].parameters(), decay_from=o.decay_from)
        self.gan = GANLoss("vanilla")

    def _pair(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = batch["a"] * 2 - 1, batch["b"] * 2 - 1
        return (a, b) if self.options.direction == "a2b" else (b, a)

    def step(self, batch):
        source, target = self._pair(batch)
        fake = self.nets["g"](source)
        # discriminator: (source, target) real, (source, fake) fake, in one pass
        n = len(source)
        scores = self.nets["d"](torch.cat([torch.cat([source, target], 1),
                                           torch.cat([source, fake.detach()], 1)]))
        loss_d = (self.gan(scores[:n], True) + self.gan(scores[n:], False)) * 0.5
        self.optimizers["d"].zero_grad(set_to_none=True)
        loss_d.backward()
        self.optimizers["d"].step()
        # generator: fool the frozen discriminator, stay near the target
        set_requires_grad([self.net("d")], False)
        adv = self.gan(self.net("d")(torch.cat([source, fake], 1)), True)
        l1 = F.l1_loss(fake, target) * self.options.lambda_l1
        self.optimizers["g"].zero_grad(set_to_none=True)
        (adv + l1).backward()
        self.optimizers["g"].step()
        set_requires_grad([self.net("d")], True)
        return {"g_adv": adv.item(), "l1": l1.item(), "d": loss_d.item()}

    @torch.no_grad()
    def samples(self, batch):
        source, target = self._pair(batch)
        return [(t + 1) / 2 for t in (source, self.net("g")(source), target)]

    @classmethod
    def products(cls, settings, options: Options) -> list[Product]:
        return [Product("g", "unet_generator", {"ngf": options.ngf, "norm": options.norm,
                                                "num_downs": num_downs(settings, options)})]


def num_downs(settings, options: Options) -> int:
    """U-Net depth: as given, else down to 1x1 at the crop size (8 at 256 px)."""
    downs = options.num_downs or round(math.log2(settings.image_size))
    if settings.image_size % 2 ** downs or downs < 5:
        raise FieldError("image_size", f"{settings.image_size} is not a multiple of 2**num_downs "
                                       f"= {2 ** downs} (num_downs >= 5: 32 px or more)")
    return downs
