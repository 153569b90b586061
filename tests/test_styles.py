"""Style references: built-ins, checkpoint files, S3 URIs, and the model hub."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from framestyle.models.cycle_gan import ResnetGenerator
from framestyle.models.transformer_net import TransformerNet
from framestyle.core.errors import InputError
from framestyle.models.hub import list_models, resolve
from framestyle.pipeline.stylize import Stylizer
from helpers import publish, seeded


def frames(n=2, h=30, w=42):
    return [np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8) for i in range(n)]


def test_transformer_net_checkpoint_gets_0_255_pixels(tmp_path):
    net = seeded(TransformerNet(width=0.25))
    path = tmp_path / "candy.pth"
    torch.save(net.state_dict(), path)
    style = resolve(str(path))
    assert style.source == str(path) and style.slug == "candy"
    batch = frames()
    got = Stylizer(style)(batch)
    x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float()
    x = torch.nn.functional.pad(x, [0, 2, 0, 2], mode="reflect")  # to a multiple of 4
    with torch.no_grad():
        expected = net(x)[:, :, :30, :42].add(0.5).clamp(0, 255).to(torch.uint8)
    assert np.array_equal(np.stack(got), expected.permute(0, 2, 3, 1).numpy())


def test_cyclegan_generator_gets_minus_one_to_one(tmp_path):
    net = seeded(ResnetGenerator(ngf=8, n_blocks=6))
    path = tmp_path / "latest_net_G_A.pth"
    torch.save(net.state_dict(), path)
    batch = frames(h=32, w=32)
    got = Stylizer(resolve(str(path)))(batch)
    x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        expected = ((net(x) + 1) * 127.5).add(0.5).clamp(0, 255).to(torch.uint8)
    assert np.abs(np.stack(got).astype(int) - expected.permute(0, 2, 3, 1).numpy()).max() <= 1


def test_missing_checkpoints_and_unknown_names_are_input_errors(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="style checkpoint not found"):
        resolve(str(tmp_path / "absent.pth"))
    monkeypatch.delenv("FRAMESTYLE_MODELS", raising=False)
    with pytest.raises(InputError, match="FRAMESTYLE_MODELS"):
        resolve("starry-night")


@pytest.mark.parametrize("where", ["local", "s3"])
def test_hub_names_resolve_to_the_highest_version(where, bucket, tmp_path, monkeypatch):
    root = str(tmp_path / "models") if where == "local" else f"s3://{bucket}/hub-{where}"
    for version, width in (("1", 0.25), ("2", 0.125), ("10", 0.5)):
        publish(root, "candy", version, width)
    monkeypatch.setenv("FRAMESTYLE_MODELS", root)
    monkeypatch.setenv("FRAMESTYLE_CACHE", str(tmp_path / "cache"))
    assert list_models() == {"candy": ["1", "2", "10"]}
    latest = resolve("candy")
    assert latest.source.endswith("candy/10/model.safetensors")
    pinned = resolve("candy@2")
    stylizer = Stylizer(pinned)
    assert stylizer.model.conv1.conv2d.out_channels == 4  # width 0.125 of 32
    assert stylizer(frames(n=1))[0].shape == (30, 42, 3)
    with pytest.raises(InputError, match="no version '3'"):
        resolve("candy@3")


def test_video_job_with_a_hub_model_on_s3(ray_session, clips, bucket, tmp_path, monkeypatch,
                                               capsys):
    from framestyle.jobs.cli import main
    from framestyle.pipeline.probe import probe

    root = f"s3://{bucket}/hub-video"
    publish(root, "slim", "1", 0.25)
    monkeypatch.setenv("FRAMESTYLE_MODELS", root)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code = main(["video", str(clips["bunny"]), str(out_dir), "--style", "slim@1",
                 "--temporal", "0"])
    _, err = capsys.readouterr()
    assert code == 0, err
    assert probe(str(out_dir / "bunny2s-slim-1.mp4")).frames == 50
