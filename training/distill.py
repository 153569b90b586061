"""``distill``: a student network learns to reproduce a teacher style on content images.

The teacher is any ``--style`` reference (``builtin:N`` or a mix, a checkpoint, a published
NAME[@VERSION], an exported ONNX graph's weights through its checkpoint); the student is any
architecture of the table at any width (``--arch``, ``--width``, ``--student-config`` for the
rest). The losses are in pixel space, L1 plus a gradient term that keeps the teacher's brush
strokes sharp, so no VGG weights are needed: this trains real, usable models anywhere, e.g.
a slimmer, faster copy of a built-in style.
"""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator

from ..core.errors import FieldError
from ..core.spec import Spec
from ..models import architectures, hub
from ..models.export import UnitRangeModel
from ..pipeline.look import tensor_look
from ..pipeline.style_image import resolve_style
from .losses import gradient_l1
from .recipe import Product, Recipe, from_pixels, to_pixels


class Options(Spec):
    teacher: str = Field(description="the style to learn: builtin:N, a checkpoint, NAME[@V], "
                         "or image:PICTURE")
    arch: str = Field("transformer_net", description="the student's architecture")
    width: float = Field(0.5, gt=0, le=4, description="the student's channel multiplier")
    student_config: dict = Field(default_factory=dict,
                                 description="more constructor settings, as JSON")
    gradient_weight: float = Field(1.0, ge=0, description="weight of the image-gradient L1 loss")
    init: str | None = Field(None, description="start the student from these weights (a "
                             "checkpoint or NAME[@V] of the student's architecture and config): "
                             "fine-tuning, as after pruning")
    trust_code: bool = Field(False, description="allow a TorchScript teacher")
    strength: float = Field(1.0, ge=0, le=1, description="learn the teacher's output blended "
                            "with the input, as --strength does when stylizing")
    preserve_color: bool = Field(False, description="learn the teacher's luminance with the "
                                 "input's colours, as --preserve-color does when stylizing")
    decay_from: float = Field(1.0, ge=0, le=1, description="keep the learning rate for this "
                              "fraction of the steps, then lower it linearly to zero (1: "
                              "constant)")

    @field_validator("student_config", mode="before")
    @classmethod
    def _json(cls, value):
        return json.loads(value) if isinstance(value, str) else value


class Distill(Recipe):
    Options = Options
    batch_size = 4
    lr = 1e-3

    @classmethod
    def prepare(cls, settings, options: Options) -> dict:
        student = student_arch(options)
        try:
            student.build(student_config(options))
        except (TypeError, ValueError) as e:
            raise FieldError("student_config", f"does not build a {student.name}: {e}") from None
        return {"teacher": resolve_style(options.teacher, trust_code=options.trust_code,
                                         strength=options.strength,
                                         preserve_color=options.preserve_color),
                "init": initial_state(options) if options.init else None}

    def build(self, prepared: dict) -> None:
        arch = student_arch(self.options)
        self.pixels = arch.pixels
        self.nets["student"] = arch.build(student_config(self.options)).to(self.device)
        if prepared.get("init") is not None:
            self.nets["student"].load_state_dict(prepared["init"])
        self.adam("student", self.nets["student"].parameters(), betas=(0.9, 0.999),
                  decay_from=self.options.decay_from)
        teacher = prepared["teacher"]
        condition = None if teacher.condition is None else torch.tensor(teacher.condition)
        # what the student learns to paint: the teacher's output, with the look asked for
        self.teacher = UnitRangeModel(hub.load(teacher), teacher.arch.pixels, condition,
                                      tensor_look(teacher.strength, teacher.preserve_color))
        self.teacher.to(self.device).requires_grad_(False)

    def _student(self, x: torch.Tensor, net=None) -> torch.Tensor:
        net = net or self.nets["student"]
        return from_pixels(net(to_pixels(x, self.pixels)), self.pixels)

    def step(self, batch):
        x = batch["a"]
        with torch.no_grad():
            target = self.teacher(x)
        y = self._student(x)
        l1 = F.l1_loss(y, target)
        gradient = self.options.gradient_weight * gradient_l1(y, target)
        loss = l1 + gradient
        optimizer = self.optimizers["student"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"l1": l1.item(), "gradient": gradient.item(), "total": loss.item()}

    @torch.no_grad()
    def samples(self, batch):
        x = batch["a"]
        return [x, self.teacher(x), self._student(x, self.net("student")).clamp(0, 1)]

    @classmethod
    def products(cls, settings, options: Options) -> list[Product]:
        return [Product("student", options.arch, student_config(options))]


def student_arch(options: Options) -> architectures.Architecture:
    try:
        arch = architectures.get(options.arch)
    except ValueError as e:
        raise FieldError("arch", str(e)) from None
    if arch.at_width is None or arch.conditioned:
        trainable = ", ".join(a.name for a in architectures.ARCHITECTURES.values()
                              if a.at_width and not a.conditioned)
        raise FieldError("arch", f"{arch.name} cannot be a student; use one of {trainable}")
    return arch


def initial_state(options: Options) -> dict[str, torch.Tensor]:
    """The ``init`` weights, checked to fit the student exactly."""
    from ..core.errors import InputError

    ref = hub.resolve(options.init, arch=options.arch)
    state = hub.load(ref).state_dict()
    try:
        student_arch(options).build(student_config(options)).load_state_dict(state)
    except RuntimeError as e:  # "Error(s) in loading state_dict ...:\n\tsize mismatch for ..."
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        raise FieldError("init", f"{options.init} does not fit the student: {lines[-1]}") from None
    except InputError as e:
        raise FieldError("init", str(e)) from None
    return state


def student_config(options: Options) -> dict:
    return {**student_arch(options).at_width(options.width), **options.student_config}
