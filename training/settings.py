"""What every training run is told: the recipe, its data, its size and where it keeps state.

Recipe-specific settings (loss weights, network sizes, the style image, the teacher) are each
recipe's own ``Options`` model, in the recipe's file.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

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
        if not RUN_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a run name: letters, digits, '.', '_', '-'")
        return value
