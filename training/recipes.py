"""The recipe table: ``framestyle train RECIPE`` -> the file and class that trains it.

A new recipe is one file in ``training/`` with a ``recipe.Recipe`` subclass, plus one entry
here. Entries name their module instead of importing it, so listing recipes (the command's
``--help``) does not import torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.errors import InputError

if TYPE_CHECKING:
    from .recipe import Recipe


@dataclass(frozen=True)
class Entry:
    module: str  # ".name" for a module of framestyle.training, else an absolute module name
    cls: str
    help: str


RECIPES: dict[str, Entry] = {
    "fast-style": Entry(".fast_style", "FastStyle", "Johnson et al.: a TransformerNet learns one "
                        "style image with VGG16 perceptual losses"),
    "cyclegan": Entry(".cyclegan", "CycleGAN", "Zhu et al.: unpaired A<->B translation "
                      "(--data A, --data-b B); publishes NAME-a2b and NAME-b2a"),
    "pix2pix": Entry(".pix2pix", "Pix2Pix", "Isola et al.: paired A|B images side by side, "
                     "U-Net generator"),
    "distill": Entry(".distill", "Distill", "a student of any architecture and width learns a "
                     "teacher style (--teacher); no VGG weights needed"),
    "temporal": Entry(".temporal", "Temporal", "Gao et al. (ReCoNet): a TransformerNet (--init) "
                      "learns not to flicker from frame pairs of --data videos"),
}


def load_recipe(name: str) -> type["Recipe"]:
    try:
        entry = RECIPES[name]
    except KeyError:
        raise InputError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}") from None
    return getattr(importlib.import_module(entry.module, __package__), entry.cls)
