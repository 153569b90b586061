"""``cyclegan``: Zhu et al., *Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks* (ICCV 2017), with junyanz/pytorch-CycleGAN-and-pix2pix's settings.

Two ResNet generators (G_A: A->B, G_B: B->A) and two 70x70 PatchGAN discriminators, least-squares
GAN loss, cycle loss weight 10 each way, identity loss 0.5 x that, an image pool of 50 fakes per
discriminator, Adam(2e-4, beta1 0.5), batch 1, the rate constant for the first half of the
steps and decaying linearly to zero over the second. Images are scaled to 286/256 of the crop
and randomly cropped and flipped. Both generators are published: NAME-a2b and NAME-b2a, in the
layout that project's ``latest_net_G_A.pth`` files have.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from ..core.spec import Spec
from ..models.cycle_gan import NLayerDiscriminator, ResnetGenerator
from .losses import GANLoss, ImagePool
from .recipe import Product, Recipe, set_requires_grad


class Options(Spec):
    ngf: int = Field(64, ge=1, description="generator filters in the first layer")
    ndf: int = Field(64, ge=1, description="discriminator filters in the first layer")
    n_blocks: int = Field(9, ge=1, description="generator residual blocks (9 at 256 px, 6 at "
                                               "128)")
    norm: str = Field("instance", pattern="^(instance|batch|none)$")
    lambda_cycle: float = Field(10.0, ge=0, description="cycle-consistency loss weight")
    lambda_identity: float = Field(0.5, ge=0, description="identity loss, times lambda_cycle")
    pool_size: int = Field(50, ge=0, description="fakes each discriminator remembers")
    decay_from: float = Field(0.5, ge=0, le=1, description="fraction of the steps before the "
                                                           "rate starts falling to zero")


class CycleGAN(Recipe):
    Options = Options
    datasets = ("a", "b")
    jitter = 286 / 256

    def build(self, prepared: dict) -> None:
        o = self.options
        for key in ("g_a", "g_b"):
            self.nets[key] = ResnetGenerator(ngf=o.ngf, n_blocks=o.n_blocks, norm=o.norm)
        for key in ("d_a", "d_b"):
            self.nets[key] = NLayerDiscriminator(ndf=o.ndf, norm=o.norm)
        for net in self.nets.values():
            net.to(self.device)
        self.adam("g", [*self.nets["g_a"].parameters(), *self.nets["g_b"].parameters()],
                  decay_from=o.decay_from)
        self.adam("d", [*self.nets["d_a"].parameters(), *self.nets["d_b"].parameters()],
                  decay_from=o.decay_from)
        self.gan = GANLoss("lsgan")
        self.pools = {"a": ImagePool(o.pool_size), "b": ImagePool(o.pool_size)}

    def step(self, batch):
        o = self.options
        real_a, real_b = batch["a"] * 2 - 1, batch["b"] * 2 - 1  # the generators' [-1, 1]
        g_a, g_b = self.nets["g_a"], self.nets["g_b"]
        fake_b, fake_a = g_a(real_a), g_b(real_b)
        rec_a, rec_b = g_b(fake_b), g_a(fake_a)
        # generators: fool the (frozen) discriminators, cycle back, leave own domain alone
        discriminators = [self.net("d_a"), self.net("d_b")]
        set_requires_grad(discriminators, False)
        adv = self.gan(self.net("d_a")(fake_b), True) + self.gan(self.net("d_b")(fake_a), True)
        cycle = (F.l1_loss(rec_a, real_a) + F.l1_loss(rec_b, real_b)) * o.lambda_cycle
        identity = torch.zeros((), device=real_a.device)
        if o.lambda_identity > 0:
            identity = (F.l1_loss(g_a(real_b), real_b) + F.l1_loss(g_b(real_a), real_a)) \
                * o.lambda_cycle * o.lambda_identity
        loss_g = adv + cycle + identity
        self.optimizers["g"].zero_grad(set_to_none=True)
        loss_g.backward()
        self.optimizers["g"].step()
        # discriminators: real against a pool of past fakes
        set_requires_grad(discriminators, True)
        loss_d = (self._discriminator("d_a", real_b, self.pools["b"].query(fake_b))
                  + self._discriminator("d_b", real_a, self.pools["a"].query(fake_a)))
        self.optimizers["d"].zero_grad(set_to_none=True)
        loss_d.backward()
        self.optimizers["d"].step()
        return {"g_adv": adv.item(), "cycle": cycle.item(), "identity": identity.item(),
                "d": loss_d.item()}

    def _discriminator(self, key: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        d = self.nets[key]
        scores = d(torch.cat([real, fake.detach()]))  # one pass through DDP per step
        n = len(real)
        return (self.gan(scores[:n], True) + self.gan(scores[n:], False)) * 0.5

    @torch.no_grad()
    def samples(self, batch):
        a, b = batch["a"] * 2 - 1, batch["b"] * 2 - 1
        g_a, g_b = self.net("g_a"), self.net("g_b")
        fake_b, fake_a = g_a(a), g_b(b)
        rows = [a, fake_b, g_b(fake_b), b, fake_a, g_a(fake_a)]  # input, output, reconstruction
        return [(r + 1) / 2 for r in rows]

    def extra_state(self) -> dict:
        return {k: pool.state() for k, pool in self.pools.items()}

    def load_extra_state(self, state: dict) -> None:
        for key, images in state.items():
            self.pools[key].load(images, self.device)

    @classmethod
    def products(cls, settings, options: Options) -> list[Product]:
        config = {"ngf": options.ngf, "n_blocks": options.n_blocks, "norm": options.norm}
        return [Product("g_a", "resnet_generator", config, "-a2b"),
                Product("g_b", "resnet_generator", config, "-b2a")]
