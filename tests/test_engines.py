"""The stylizer's engines: onnxruntime (the default on CPUs) gives what PyTorch gives, for every
kind of network we run, exported once per node whatever the style mix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from framestyle.core import node_cache
from framestyle.core.errors import FieldError
from framestyle.models.arbitrary import ArbitraryTransformer
from framestyle.models.cycle_gan import ResnetGenerator
from framestyle.models.hub import load, resolve
from framestyle.models.pix2pix import UnetGenerator
from framestyle.models.transformer_net import TransformerNet
from framestyle.pipeline.inference import InferenceOptions
from framestyle.pipeline.stylize import Stylizer
from helpers import seeded

FRAMES = [np.random.default_rng(i).integers(0, 256, (45, 70, 3), dtype=np.uint8)
          for i in range(3)]  # odd sizes: padded to each network's multiple and cropped back
TORCH, ORT = InferenceOptions(engine="torch"), InferenceOptions(engine="onnxruntime")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(node_cache.ROOT_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("network", ["builtin:3=0.5,12=0.5", "transformer_net",
                                     "resnet_generator", "unet_generator"])
def test_onnxruntime_gives_what_torch_gives(network, cache, tmp_path):
    if network.startswith("builtin"):
        style = network
    else:
        module = {"transformer_net": lambda: TransformerNet(width=0.25),
                  "resnet_generator": lambda: ResnetGenerator(ngf=8, n_blocks=2),
                  "unet_generator": lambda: UnetGenerator(ngf=8)}[network]()
        style = str(tmp_path / f"{network}.pth")
        torch.save(seeded(module, scale=0.05).state_dict(), style)
    ref = resolve(style)
    assert Stylizer(ref).engine == "onnxruntime"  # auto, on a CPU
    fast, slow = Stylizer(ref, ORT), Stylizer(ref, TORCH)
    assert fast.engine == "onnxruntime" and slow.engine == "torch"
    got, expected = fast(FRAMES), slow(FRAMES)
    assert [g.shape for g in got] == [(45, 70, 3)] * 3
    # (a batch runs one frame per onnxruntime call: each frame as it would come out alone)
    assert all(np.array_equal(g, fast([f])[0]) for g, f in zip(got, FRAMES))
    difference = np.abs(np.stack(got).astype(int) - np.stack(expected))
    assert difference.max() <= 1 and difference.mean() < 0.05  # float rounding, at most a level
    assert difference.mean() < np.abs(np.stack(got).astype(int) - np.stack(FRAMES)).mean() / 100


def test_auto_picks_onnxruntime_on_cpus_and_torch_where_it_cannot(cache):
    style = resolve("builtin:7")
    assert Stylizer(style).engine == "onnxruntime"
    assert Stylizer(style, InferenceOptions(compile=True)).engine == "torch"
    assert Stylizer(style, InferenceOptions(dtype="bf16")).engine == "torch"
    with pytest.raises(FieldError, match="engine: onnxruntime runs fp32"):
        Stylizer(style, InferenceOptions(engine="onnxruntime", dtype="bf16"))


def test_one_export_serves_every_mix_and_tiles_stay_with_torch(cache):
    a, b = Stylizer(resolve("builtin:1"), ORT), Stylizer(resolve("builtin:20"), ORT)
    assert len(list((cache / "built").glob("*.onnx"))) == 1  # the second stylizer reused it
    first, second = a(FRAMES[:1])[0].astype(int), b(FRAMES[:1])[0].astype(int)
    assert np.abs(first - second).mean() > 10  # styles differ through the same export
    b.restyle(resolve("builtin:1"))
    assert np.abs(b(FRAMES[:1])[0].astype(int) - first).max() <= 1
    # (test_tiling.py compares tiles with one pass at 1024x1024; here: tiles do run, in torch)
    tiled = Stylizer(resolve("builtin:1"), InferenceOptions(engine="onnxruntime", max_tile=256))
    big = np.kron(FRAMES[0][:6, :6], np.ones((50, 50, 1), np.uint8))  # 300x300, flat areas
    whole = a([big])[0].astype(int)
    assert np.abs(tiled([big])[0].astype(int) - whole).mean() < 2
    assert tiled.tiled_frames == 1


def test_style_norms_export_as_fused_instance_norms_and_per_sample_styles_still_work(cache):
    """One style for the batch exports to onnxruntime's fused InstanceNormalization (the
    spelled-out mean and variance cost the built-in network ~10% a frame); a batch with a
    style per sample, which training uses, gives what each sample gives alone."""
    import onnx

    Stylizer(resolve("builtin:7"), ORT)
    [export] = (cache / "built").glob("*.onnx")
    ops = [node.op_type for node in onnx.load(export).graph.node]
    assert ops.count("InstanceNormalization") == 18 and "ReduceMean" not in ops
    images = torch.rand(2, 3, 32, 48)
    for network, styles in ((load(resolve("builtin:7")), torch.eye(26)[[3, 19]]),
                            (seeded(ArbitraryTransformer(width=16, residual_blocks=1)),
                             torch.rand(2, 100))):
        with torch.inference_mode():
            together = network(images, styles)
            alone = torch.cat([network(images[i:i + 1], styles[i]) for i in range(2)])
        assert (together - alone).abs().max() < 1e-5
        assert (together[0] - together[1]).abs().mean() > 0.01  # the styles do differ


@pytest.mark.parametrize("network", ["builtin", "transformer_net", "resnet_generator",
                                     "unet_generator", "arbitrary"])
def test_rgb_convolutions_widened_for_tensor_cores_give_the_same_output(network):
    """On a GPU in fp16/bf16 each convolution over 3 channels runs over 8, 5 of them zero
    (stylize.widen_rgb_convs); the output must not change. Checked here in fp32, in both
    memory layouts."""
    from framestyle.models import hub
    from framestyle.pipeline.stylize import widen_rgb_convs

    module = {"builtin": lambda: hub.load(resolve("builtin:7")),
              "arbitrary": lambda: seeded(ArbitraryTransformer()),
              "transformer_net": lambda: seeded(TransformerNet(width=0.25)),
              "resnet_generator": lambda: seeded(ResnetGenerator(ngf=8, n_blocks=2)),
              "unet_generator": lambda: seeded(UnetGenerator(ngf=8))}[network]().eval()
    side = 256 if network == "unet_generator" else 64  # the U-Net halves its input 8 times
    x = torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(0))
    extra = {"builtin": (torch.tensor([resolve("builtin:7").condition]),),
             "arbitrary": (torch.rand(1, 100, generator=torch.Generator().manual_seed(1)),),
             }.get(network, ())
    with torch.no_grad():
        before = module(x, *extra)
        assert widen_rgb_convs(module) == 1  # each network's first convolution
        assert not any(type(m) is torch.nn.Conv2d and m.in_channels == 3
                       for m in module.modules())
        for layout in (torch.contiguous_format, torch.channels_last):
            after = module.to(memory_format=layout)(x.contiguous(memory_format=layout), *extra)
            torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)


def test_every_layer_of_the_builtin_network_widened_gives_the_same_output():
    """stylize.widen_every_layer rounds the built-in network's narrow full-size layers
    (8 -> 4 -> 3 channels) up to 8, with zero weights, scale and shift: the same picture."""
    from framestyle.models import hub
    from framestyle.pipeline.stylize import widen_every_layer

    module = hub.load(resolve("builtin:7")).eval()
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    style = torch.tensor(resolve("builtin:7").condition)
    with torch.no_grad():
        before = module(x, style)
        assert widen_every_layer(module) == 3  # the RGB input, and the last two layers
        assert all(p.shape[0] % 8 == 0 and p.shape[1] % 8 == 0
                   for name, p in module.named_parameters() if name.endswith(".w"))
        for layout in (torch.contiguous_format, torch.channels_last):
            after = module.to(memory_format=layout)(x.contiguous(memory_format=layout), style)
            assert after.shape == before.shape
            torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)
    assert widen_every_layer(seeded(TransformerNet(width=0.25))) == 0  # not one it can widen


def test_where_shapes_are_fixed_a_pass_is_padded_to_a_power_of_two_and_cropped_back():
    """On a GPU (and for a compiled graph) each new batch shape costs a compile or cuDNN's
    kernel choice again: a chunk's odd last pass of 3 frames runs as 4, the 4th a copy of the
    3rd, and only the 3 frames come back, as they would alone."""
    stylizer = Stylizer(resolve("builtin:7"), TORCH)
    assert not stylizer.fixed_shapes  # eager PyTorch on a CPU: every shape is as cheap
    alone = stylizer(FRAMES)
    shapes, forward = [], stylizer.forward
    stylizer.forward = lambda x, *rest: (shapes.append(x.shape[0]), forward(x, *rest))[1]
    stylizer.fixed_shapes = True
    padded = stylizer(FRAMES)
    assert shapes == [4]
    assert len(padded) == 3
    for a, b in zip(alone, padded):
        assert a.shape == b.shape and np.abs(a.astype(int) - b).max() <= 1
    assert Stylizer(resolve("builtin:7"), InferenceOptions(compile=True)).fixed_shapes


@pytest.mark.parametrize("network", ["builtin", "arbitrary"])
def test_norms_kept_in_the_activations_layout_give_the_same_output(network):
    """F.instance_norm normalises a contiguous (NCHW) copy of its input: channels_last
    activations leave their layout at every norm. stylize.keep_norm_layout has the style norms
    compute from the statistics in place instead: the same output, and channels_last stays."""
    from framestyle.models.style_norm import styled_instance_norm
    from framestyle.pipeline.stylize import keep_norm_layout

    x = torch.rand(2, 8, 20, 24, generator=torch.Generator().manual_seed(0))
    x = x.contiguous(memory_format=torch.channels_last)
    gamma, beta = torch.rand(8), torch.rand(8)
    assert not styled_instance_norm(x, gamma, beta, 1e-5).is_contiguous(
        memory_format=torch.channels_last)  # what the default does
    kept = styled_instance_norm(x, gamma, beta, 1e-5, keep_layout=True)
    assert kept.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(kept, styled_instance_norm(x, gamma, beta, 1e-5))
    module = {"builtin": lambda: load(resolve("builtin:7")),
              "arbitrary": lambda: seeded(ArbitraryTransformer())}[network]().eval()
    style = {"builtin": torch.tensor([resolve("builtin:7").condition] * 2),  # one per sample
             "arbitrary": torch.rand(1, 100, generator=torch.Generator().manual_seed(1))}[network]
    image = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        before = module(image, style)
        assert keep_norm_layout(module) == {"builtin": 18, "arbitrary": 13}[network]
        for layout in (torch.contiguous_format, torch.channels_last):
            after = module.to(memory_format=layout)(image.contiguous(memory_format=layout), style)
            torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)
