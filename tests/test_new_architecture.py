"""A new network is one file plus one table entry: a toy architecture registered in one place
runs through `framestyle image` and `framestyle video`."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from framestyle.models.architectures import ARCHITECTURES, Architecture
from helpers import run_cli
from media import decoded_frames, frame_errors


class Inverter(nn.Module):
    """The toy network: one 1x1 convolution; the checkpoint below makes it 1 - x."""

    def __init__(self, channels: int = 3):
        super().__init__()
        self.invert = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.invert(x)


def recognise(state: dict) -> dict | None:
    weight = state.get("invert.weight")
    return None if weight is None else {"channels": weight.shape[0]}


@pytest.fixture
def inverter_checkpoint(monkeypatch, tmp_path):
    import ray.cloudpickle

    # the one place: its table entry
    monkeypatch.setitem(ARCHITECTURES, "inverter",
                        Architecture("inverter", Inverter, (0.0, 1.0), recognise=recognise))
    # Ray workers cannot import this test module (it is not installed): send it by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    net = Inverter()
    with torch.no_grad():
        net.invert.weight.copy_(-torch.eye(3)[:, :, None, None])
        net.invert.bias.fill_(1.0)
    path = tmp_path / "inverter.pth"
    torch.save(net.state_dict(), path)  # plain keys: found by its recogniser
    yield path
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def test_toy_architecture_runs_through_image_and_video(ray_session, inverter_checkpoint, clips,
                                                       tmp_path, capsys):
    photo = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "in.png")
    code, _, err = run_cli(capsys, "image", tmp_path / "in.png", tmp_path / "out.png",
                           "--style", inverter_checkpoint)
    assert code == 0, err
    out = np.asarray(Image.open(tmp_path / "out.png")).astype(int)
    assert np.abs(out - (255 - photo.astype(int))).max() <= 1

    code, _, err = run_cli(capsys, "video", clips["bunny"], tmp_path / "out.mp4",
                           "--style", inverter_checkpoint, "--temporal", "0")
    assert code == 0, err
    inverted = [255 - f for f in decoded_frames(clips["bunny"])]
    assert frame_errors(decoded_frames(tmp_path / "out.mp4"), inverted).max() < 6
