"""Generator zoo and checkpoints: other projects' files load unchanged; nothing is unpickled."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch

from framestyle.models import architectures
from framestyle.models.architectures import ARCHITECTURES
from framestyle.models.checkpoints import CheckpointError, inspect, save_checkpoint
from framestyle.models.cycle_gan import NLayerDiscriminator, ResnetGenerator
from framestyle.models.pix2pix import UnetGenerator
from framestyle.models.transformer_net import TransformerNet
from helpers import load_checkpoint as load_model, seeded


def outputs(model, size=64):
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        return model(x)


def test_table_builds_every_architecture_as_a_pure_module():
    assert set(ARCHITECTURES) >= {"multistyle", "transformer_net", "resnet_generator",
                                  "unet_generator", "patchgan_discriminator"}
    assert outputs(ResnetGenerator(n_blocks=6)).shape == (1, 3, 64, 64)
    assert outputs(UnetGenerator(), size=256).shape == (1, 3, 256, 256)
    assert outputs(NLayerDiscriminator(), size=256).shape == (1, 1, 30, 30)  # 70x70 PatchGAN
    slim = TransformerNet(width=0.5)
    assert slim.conv1.conv2d.out_channels == 16 and outputs(slim).shape == (1, 3, 64, 64)


def test_junyanz_layouts_match_what_that_project_saves():
    resnet = ResnetGenerator().state_dict()  # resnet_9blocks, instance norm
    assert resnet["model.1.weight"].shape == (64, 3, 7, 7)
    assert resnet["model.10.conv_block.5.weight"].shape == (256, 256, 3, 3)
    assert resnet["model.19.weight"].shape == (256, 128, 3, 3)  # ConvTranspose2d
    assert resnet["model.26.weight"].shape == (3, 64, 7, 7) and len(resnet) == 48
    unet = UnetGenerator().state_dict()  # unet_256, batch norm
    assert unet["model.model.0.weight"].shape == (64, 3, 4, 4)
    assert unet["model.model.1.model.2.running_mean"].shape == (128,)
    assert unet["model.model.3.weight"].shape == (128, 3, 4, 4)
    innermost = "model.model.1" + ".model.3" * 6 + ".model.1.weight"
    assert unet[innermost].shape == (512, 512, 4, 4)


@pytest.mark.parametrize("make,arch,config", [
    (lambda: TransformerNet(), "transformer_net", {"width": 1.0}),
    (lambda: TransformerNet(width=0.25), "transformer_net", {"width": 0.25}),
    (lambda: ResnetGenerator(n_blocks=9), "resnet_generator",
     {"input_nc": 3, "ngf": 64, "n_blocks": 9, "norm": "instance"}),
    (lambda: ResnetGenerator(n_blocks=6), "resnet_generator",
     {"input_nc": 3, "ngf": 64, "n_blocks": 6, "norm": "instance"}),
    (lambda: UnetGenerator(), "unet_generator",
     {"input_nc": 3, "ngf": 64, "num_downs": 8, "norm": "batch"}),
    # each norm variant CycleGAN/pix2pix trainers save: affine instance norm has weight/bias
    # keys and no running statistics; batch norm has running statistics
    (lambda: ResnetGenerator(ngf=16, n_blocks=6, norm="instance_affine"), "resnet_generator",
     {"input_nc": 3, "ngf": 16, "n_blocks": 6, "norm": "instance_affine"}),
    (lambda: ResnetGenerator(ngf=16, n_blocks=6, norm="batch"), "resnet_generator",
     {"input_nc": 3, "ngf": 16, "n_blocks": 6, "norm": "batch"}),
    (lambda: UnetGenerator(ngf=8, norm="instance_affine"), "unet_generator",
     {"input_nc": 3, "ngf": 8, "num_downs": 8, "norm": "instance_affine"}),
    (lambda: UnetGenerator(ngf=8, norm="instance"), "unet_generator",
     {"input_nc": 3, "ngf": 8, "num_downs": 8, "norm": "instance"}),
])
def test_pth_files_load_with_architecture_detected_and_identical_outputs(tmp_path, make, arch,
                                                                          config):
    reference = seeded(make())
    path = tmp_path / "latest_net_G.pth"
    torch.save(reference.state_dict(), path)  # as those projects save them
    loaded, ref = load_model(path)
    assert (ref.arch.name, ref.config) == (arch, config)
    size = 256 if arch == "unet_generator" else 64
    assert torch.equal(outputs(loaded, size), outputs(reference, size))
    named, ref = load_model(path, arch=arch)  # --arch names it: the norm is still detected
    assert ref.config == config and torch.equal(outputs(named, size), outputs(reference, size))


def test_fast_neural_style_legacy_instance_norm_keys_and_dataparallel_prefix(tmp_path):
    reference = seeded(TransformerNet())
    state = {f"module.{k}": v for k, v in reference.state_dict().items()}
    for key in [k for k in reference.state_dict() if k.startswith(("in", "res1.in"))
                and k.endswith(".weight")]:
        prefix = key[: -len("weight")]
        state[f"module.{prefix}running_mean"] = torch.zeros(1)  # what PyTorch < 0.4 wrote
        state[f"module.{prefix}running_var"] = torch.ones(1)
    path = tmp_path / "mosaic.model"
    torch.save(state, path)
    loaded, ref = load_model(path)
    assert ref.arch.name == "transformer_net"
    assert torch.equal(outputs(loaded), outputs(reference))


def test_arch_override_and_unknown_layouts(tmp_path):
    path = tmp_path / "g.pth"
    torch.save(seeded(ResnetGenerator(n_blocks=6)).state_dict(), path)
    with pytest.raises(CheckpointError, match="does not fit architecture 'unet_generator'"):
        load_model(path, arch="unet_generator")
    odd = tmp_path / "odd.pth"
    torch.save({"encoder.weight": torch.zeros(2)}, odd)
    with pytest.raises(CheckpointError, match="--arch"):
        load_model(odd)
    with pytest.raises(CheckpointError, match="does not fit architecture 'transformer_net'"):
        load_model(odd, arch="transformer_net")  # named, so no advice to name it
    assert architectures.recognise({}) is None


def test_our_format_round_trips_and_catches_tampering(tmp_path):
    model = seeded(TransformerNet(width=0.5))
    card = save_checkpoint(model, "transformer_net", {"width": 0.5}, tmp_path / "candy",
                           style="candy", provenance={"trained_by": "test", "epochs": 2})
    meta = json.loads((tmp_path / "candy.json").read_text())
    assert meta["arch"] == "transformer_net" and meta["style"] == "candy"
    assert meta["sha256"] == card.sha256 and meta["provenance"]["epochs"] == 2
    loaded, _ = load_model(tmp_path / "candy.safetensors")
    assert inspect(tmp_path / "candy.safetensors").style == "candy"
    assert torch.equal(outputs(loaded), outputs(model))
    data = bytearray((tmp_path / "candy.safetensors").read_bytes())
    data[-1] ^= 0x01
    (tmp_path / "candy.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the hash"):
        load_model(tmp_path / "candy.safetensors")


class _Payload:
    """Unpickling this runs a shell command: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickle_with_a_code_payload_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"conv1.conv2d.weight": torch.zeros(1), "payload": _Payload(marker)}, path,
               pickle_protocol=pickle.DEFAULT_PROTOCOL)
    with pytest.raises(CheckpointError, match="refusing to load") as err:
        load_model(path)
    assert "\n" not in str(err.value)
    assert not marker.exists()


def test_torchscript_needs_trust_code(tmp_path):
    reference = seeded(TransformerNet(width=0.25))
    path = tmp_path / "scripted.pt"
    torch.jit.trace(reference, torch.rand(1, 3, 32, 32)).save(str(path))
    with pytest.raises(CheckpointError, match="--trust-code"):
        load_model(path)
    loaded, ref = load_model(path, trust_code=True)
    assert ref.arch.name == "torchscript"
    assert torch.allclose(outputs(loaded), outputs(reference))
