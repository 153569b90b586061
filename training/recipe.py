"""The recipe template: what a training recipe declares and does, the rest being the trainer's.

A recipe is one file holding one ``Recipe`` subclass (plus its ``Options``) and one entry in
``recipes.RECIPES``, as junyanz's ``--model cycle_gan`` is ``cycle_gan_model.py``:

* class attributes: ``Options`` (its own settings, a ``Spec``), default ``batch_size`` and
  ``lr``, which ``datasets`` it reads ("a"; "a" and "b" for unpaired domains) and whether
  each image is an A|B ``paired`` image split down the middle;
* ``prepare(settings, options)`` on the driver, before any worker starts: check what the recipe
  needs (style image, loss network weights, teacher) and return what the workers are handed;
* ``build(prepared)``: its networks in ``self.nets``, optimizers and LR schedules;
* ``step(batch)``: one optimisation step on a batch of [0, 1] images, returning its losses;
* ``samples(batch)``: rows of images for the sample grid (inputs, outputs, ...);
* ``products(settings, options)``: which of its networks are published, as which architecture;
* ``preflight`` and ``dataset``, only for a recipe that reads something other than images
  (``temporal`` reads frame pairs of videos): the driver's check of ``--data`` and the Ray
  Dataset of training rows.

The trainer wraps the trained networks for DDP, checkpoints ``state_dict()`` and resumes with
``load_state_dict()``, both covering networks, optimizers, LR schedules and ``extra_state``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..core.spec import Spec
from .settings import TrainSettings


class NoOptions(Spec):
    pass


@dataclass(frozen=True)
class Product:
    """A network the recipe publishes: ``nets[net]`` as ``arch`` built with ``config``, under
    the run's name plus ``suffix``."""

    net: str
    arch: str
    config: dict
    suffix: str = ""


class Recipe:
    Options: ClassVar[type[Spec]] = NoOptions
    batch_size: ClassVar[int] = 1
    lr: ClassVar[float] = 2e-4
    datasets: ClassVar[tuple[str, ...]] = ("a",)
    paired: ClassVar[bool] = False
    # scale the shorter side to image_size * jitter, then crop image_size (1.0: no jitter)
    jitter: ClassVar[float] = 1.0

    def __init__(self, settings: TrainSettings, options: Spec, prepared: dict,
                 device: torch.device):
        self.settings, self.options, self.device = settings, options, device
        self.steps = settings.steps
        self.batch = settings.batch_size or self.batch_size
        self.learning_rate = settings.lr or self.lr
        self.nets: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}
        self.build(prepared)

    # --- what a recipe implements ----------------------------------------------------------

    @classmethod
    def prepare(cls, settings: TrainSettings, options: Spec) -> dict:
        return {}

    def build(self, prepared: dict) -> None:
        raise NotImplementedError

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        raise NotImplementedError

    def samples(self, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        raise NotImplementedError

    @classmethod
    def products(cls, settings: TrainSettings, options: Spec) -> list[Product]:
        raise NotImplementedError

    @classmethod
    def preflight(cls, units, augment, flag: str, options: Spec) -> None:
        from .data import preflight

        preflight(units, augment, flag)

    @classmethod
    def dataset(cls, units, augment, options: Spec, rows_per_step: int):
        """The Ray Dataset of training rows: one crop per image, small sets listed again so
        that a pass is not too short (``data.pass_repeats``)."""
        import ray.data

        from .data import pass_repeats, rows

        return ray.data.from_items([u.to_row() for u in units] * pass_repeats(units, rows_per_step),
                                   override_num_blocks=min(len(units), 64)
                                   ).flat_map(rows, fn_kwargs={"augment": augment})

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    # --- the trainer's side ----------------------------------------------------------------

    def wrap(self, prepare: Callable[[nn.Module], nn.Module]) -> None:
        """Move and wrap every trained network (DDP across workers)."""
        self.nets = {k: prepare(net) for k, net in self.nets.items()}

    def net(self, key: str) -> nn.Module:
        """The bare network, bypassing DDP: for forward passes whose gradients must not be
        synchronised for it (a discriminator scored inside the generator's step)."""
        return unwrap(self.nets[key])

    def state_dict(self) -> dict[str, Any]:
        return {"nets": {k: unwrap(n).state_dict() for k, n in self.nets.items()},
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
                "extra": self.extra_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, net in self.nets.items():
            unwrap(net).load_state_dict(state["nets"][key])
        for key, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][key])
        for key, scheduler in self.schedulers.items():
            scheduler.load_state_dict(state["schedulers"][key])
        self.load_extra_state(state.get("extra", {}))

    def adam(self, key: str, params, betas=(0.5, 0.999), decay_from: float | None = None):
        """An Adam optimizer for ``key`` at the run's learning rate; with ``decay_from`` its
        rate stays constant for that fraction of the steps, then falls linearly to zero (the
        CycleGAN and pix2pix schedule)."""
        optimizer = torch.optim.Adam(params, lr=self.learning_rate, betas=betas)
        self.optimizers[key] = optimizer
        if decay_from is not None:
            self.schedulers[key] = torch.optim.lr_scheduler.LambdaLR(
                optimizer, linear_decay(self.steps, decay_from))
        return optimizer

    def advance(self) -> None:
        for scheduler in self.schedulers.values():
            scheduler.step()


class linear_decay:
    """LambdaLR factor: 1 until ``decay_from`` x steps, then linearly down to 0 at ``steps``.
    (A class, not a closure: LambdaLR's state dict skips objects it cannot pickle.)"""

    def __init__(self, steps: int, decay_from: float):
        self.steps, self.start = steps, int(steps * decay_from)

    def __call__(self, step: int) -> float:
        if step < self.start:
            return 1.0
        return max(0.0, (self.steps - step) / max(1, self.steps - self.start))


def unwrap(net: nn.Module) -> nn.Module:
    return net.module if isinstance(net, DistributedDataParallel) else net


def to_pixels(x: torch.Tensor, pixels: tuple[float, float]) -> torch.Tensor:
    """[0, 1] images in a network's own pixel range."""
    return x * (pixels[1] - pixels[0]) + pixels[0]


def from_pixels(y: torch.Tensor, pixels: tuple[float, float]) -> torch.Tensor:
    return (y - pixels[0]) / (pixels[1] - pixels[0])


def set_requires_grad(nets, flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)
