"""What every training run is told: the recipe, its data, its size and where it keeps state.

``PruneSettings`` are ``framestyle models prune``'s (``prune``). Recipe-specific settings (loss weights, network sizes, the style image, the teacher) are each
recipe's own ``Options`` model, in the recipe's file.
"""

from __future__ import annotations

import re

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..core.spec import Spec

RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class TrainSettings(Spec):
    recipe: str
    data: list[str] = Field(min_length=1, description="images: folders, s3:// prefixes, globs, "
                                                      ".tar/.zip archives")
    data_b: list[str] | None = Field(None, description="the second domain (cyclegan)")
    name: str = Field(description="the run's name: its checkpoints, and the published model")
    workers: int = Field(2, ge=1, description="data-parallel workers (one GPU each on GPUs)")
    steps: int = Field(1000, ge=1, description="optimizer steps in all (a re-run with more "
                                               "continues)")
    image_size: int = Field(256, ge=16, le=4096, description="training crops, in pixels")
    batch_size: int | None = Field(None, ge=1, description="images per worker and step "
                                                           "(default: the recipe's)")
    lr: float | None = Field(None, gt=0, description="learning rate (default: the recipe's)")
    storage: str | None = Field(None, description="checkpoints and the run folder: a folder or "
                                                  "s3:// prefix (default: beside the model hub)")
    checkpoint_every: int = Field(100, ge=1, description="steps between checkpoints")
    sample_every: int = Field(100, ge=1, description="steps between sample grids")
    log_every: int = Field(10, ge=1, description="steps between progress and metrics rows")
    max_failures: int = Field(3, ge=0, description="worker failures to recover from")
    seed: int = 0
    use_gpu: bool | None = Field(None, description="default: when the cluster has GPUs")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return run_name(value)


def run_name(value: str) -> str:
    if not RUN_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a run name: letters, digits, '.', '_', '-'")
    return value


class PruneSettings(Spec):
    style: str = Field(description="the parent: a checkpoint, NAME[@V] or builtin:N")
    name: str = Field(description="the pruned model's name (and its run folder's)")
    data: list[str] = Field(min_length=1, description="content images for scoring and "
                                                      "fine-tuning")
    population: int = Field(16, ge=4, le=1024, description="codes per generation")
    generations: int = Field(10, ge=1, le=10000, description="generations of the search")
    gamma: float = Field(0.5, ge=0, description="weight of the cost against the error")
    cost: Literal["params", "macs"] = Field("params", description="what gamma weighs: "
                                            "parameters, or multiply-adds per pixel")
    error: Literal["perceptual", "pixel"] = Field(
        "perceptual", description="perceptual (VGG16 features; needs --vgg-weights or "
        "torchvision's cache) or pixel (L1 + gradient, no VGG)")
    vgg_weights: str | None = Field(None, description="VGG16 weights for the perceptual error, "
                                                      "or 'random' (tests)")
    discriminator: str | None = Field(None, description="a PatchGAN discriminator checkpoint "
                                      "(CycleGAN's latest_net_D_A.pth): its score joins the "
                                      "fitness of a GAN generator's codes")
    adversarial_weight: float = Field(0.1, ge=0, description="weight of the discriminator's "
                                      "score (least squares against 'real')")
    s1: float = Field(0.2, ge=0, le=1, description="probability of keeping the next best code")
    s2: float = Field(0.5, ge=0, le=1, description="probability of a crossover")
    mutation: float = Field(0.05, gt=0, le=1, description="bit flip rate of a mutation")
    eval_images: int = Field(8, ge=1, le=256, description="content images a code is scored on")
    image_size: int = Field(256, ge=16, le=2048, description="their size, and the fine-tuning "
                                                             "crops'")
    finetune_steps: int = Field(500, ge=0, description="distillation steps after pruning (0: "
                                                       "publish the pruned network as it is)")
    workers: int = Field(2, ge=1, description="Ray Train workers for the fine-tuning")
    storage: str | None = Field(None, description="run folder root (default: beside the hub)")
    seed: int = 0
    trust_code: bool = False

    _name = field_validator("name")(classmethod(lambda cls, value: run_name(value)))

    @model_validator(mode="after")
    def _probabilities(self):
        if self.s1 + self.s2 > 1:
            raise ValueError(f"s1 + s2 = {self.s1 + self.s2:g}: they are probabilities of "
                             "one draw and must not exceed 1")
        return self

    def search_identity(self) -> dict:
        """What decides the search: a re-run with other values cannot continue it."""
        return self.model_dump(mode="json", include={
            "style", "data", "population", "gamma", "cost", "error", "vgg_weights", "discriminator",
            "adversarial_weight", "s1", "s2", "mutation", "eval_images", "image_size", "seed"})
