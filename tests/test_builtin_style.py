import numpy as np
import pytest
import torch

from framestyle.core.errors import InputError
from framestyle.models import hub
from framestyle.models.checkpoints import builtin_multistyle_path
from framestyle.models.hub import resolve
from framestyle.pipeline.stylize import Stylizer


@pytest.fixture(scope="module")
def net():
    net = hub.load(resolve("builtin:0"))
    assert net.num_styles == hub.BUILTIN_STYLES  # the count the hub parses styles against
    return net


@pytest.mark.parametrize("style", ["builtin:0", "builtin:25", "builtin:3=0.5,12=0.5"])
def test_torch_network_matches_onnxruntime(net, style):
    import onnxruntime as ort

    weights = np.array(resolve(style).condition, dtype=np.float32)
    image = np.random.default_rng(0).random((1, 3, 68, 124), dtype=np.float32)
    session = ort.InferenceSession(str(builtin_multistyle_path()),
                                   providers=["CPUExecutionProvider"])
    expected = session.run(None, {"image": image, "style_weights": weights})[0]
    with torch.inference_mode():
        got = net(torch.from_numpy(image), torch.from_numpy(weights)).numpy()
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-3


def test_styles_differ_and_mixes_interpolate(net):
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        a, b = (net(image, torch.tensor(resolve(s).condition)) for s in ("builtin:3", "builtin:12"))
        mix = net(image, torch.tensor(resolve("builtin:3=1,12=1").condition))
    assert (a - b).abs().mean() > 0.05
    assert 0 < (mix - a).abs().mean() < (b - a).abs().mean()


def test_builtin_mix_normalises_weights():
    ref = resolve("builtin:3=1,12=3")
    assert ref.condition[3] == pytest.approx(0.25) and ref.condition[12] == pytest.approx(0.75)
    assert ref.slug == "builtin-3x1-12x3"
    assert resolve("builtin:7").slug == "builtin-7"


@pytest.mark.parametrize("bad", ["van-gogh", "builtin:26", "builtin:-1", "builtin:x",
                                 "builtin:1=-2", "builtin:1=0"])
def test_unknown_or_malformed_styles_are_input_errors(bad):
    with pytest.raises(InputError):
        resolve(bad)


def test_stylizer_keeps_odd_frame_sizes():
    frames = [np.random.default_rng(i).integers(0, 255, (37, 51, 3), dtype=np.uint8)
              for i in range(3)]
    out = Stylizer(resolve("builtin:1"))(frames)
    assert [o.shape for o in out] == [(37, 51, 3)] * 3 and out[0].dtype == np.uint8
    # interleaved in memory, not a view of the network's planar output: readers copy it fast
    assert all(o.flags.c_contiguous for o in out)


def test_planar_frames_are_interleaved_with_the_same_pixels():
    from framestyle.pipeline.stylize import interleaved

    planar = torch.randint(0, 256, (2, 3, 5, 7), dtype=torch.uint8)
    view = planar.permute(0, 2, 3, 1).numpy()
    frames = interleaved(view)
    assert all(f.flags.c_contiguous and np.array_equal(f, v) for f, v in zip(frames, view))
    already = np.ascontiguousarray(view)
    assert all(np.shares_memory(f, already) for f in interleaved(already))  # no copy


def test_precision_and_compile_options():
    from framestyle.pipeline.stylize import InferenceOptions

    frames = [np.random.default_rng(3).integers(0, 255, (40, 64, 3), dtype=np.uint8)]
    style = resolve("builtin:5")
    full = Stylizer(style)(frames)[0].astype(int)
    half = Stylizer(style, InferenceOptions(dtype="bf16"))
    assert half.dtype == torch.bfloat16
    assert np.abs(half(frames)[0].astype(int) - full).mean() < 4  # bf16 keeps 8 bits of mantissa
    compiled = Stylizer(style, InferenceOptions(compile=True))
    assert compiled.forward is not compiled.model  # wrapped lazily: nothing compiles until used
    tiled = Stylizer(style, InferenceOptions(compile=True, max_tile=256))
    assert tiled.forward is tiled.model  # tiling hooks need the eager module
