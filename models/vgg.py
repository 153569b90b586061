"""VGG16's convolutional layers up to relu4_3: the loss network of Johnson et al.'s perceptual
losses (the layout of torchvision's ``vgg16().features``, so its ImageNet state dict loads).

Takes RGB in [0, 1] and returns the activations at relu1_2, relu2_2, relu3_3 and relu4_3. The
weights are the caller's business (a pure module: no downloads, no paths).
"""

from __future__ import annotations

import torch
from torch import nn

# (output channels per convolution) per stage; "M" is a 2x2 max-pool, as torchvision's config "D"
_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512))
LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class Vgg16Features(nn.Module):
    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        self.taps: list[int] = []  # index of the ReLU after each stage's last convolution
        cin = 3
        for s, stage in enumerate(_STAGES):
            if s:
                layers.append(nn.MaxPool2d(2, 2))
            for cout in stage:
                layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU()]
                cin = cout
            self.taps.append(len(layers) - 1)
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out


def from_torchvision_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The part of a torchvision ``vgg16`` state dict this module has (``features.0`` ..
    ``features.21``); the classifier and deeper layers are dropped."""
    wanted = set(Vgg16Features().state_dict())
    missing = wanted - set(state)
    if missing:
        raise KeyError(f"not a VGG16 state dict: missing {sorted(missing)[:3]}")
    return {k: state[k] for k in wanted}
