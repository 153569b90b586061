"""The phase rewrite of narrow convolutions (pipeline/onnx_phases.py): the same output as the graph
as exported, in the layer shapes onnxruntime's blocked kernels run fast, and never a different
picture (a rewrite that would change the output is dropped)."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from framestyle.models.export import to_onnx
from framestyle.models.hub import load, resolve
from framestyle.pipeline import onnx_phases
from framestyle.pipeline.onnx_phases import phase_weights, probe_side, rewrite, work_share


def test_a_phase_convolution_computes_every_pixel_of_the_original():
    """A stride-1 k x k convolution = stride-2 (k+1) x (k+1) one over 4x the channels, then
    pixel shuffle (DepthToSpace's CRD order), for odd and even kernels, with a bias."""
    rng = torch.Generator().manual_seed(0)
    for kernel in (9, 4, 3, 1):
        x = torch.rand(2, 5, 20, 26, generator=rng)
        w = torch.randn(3, 5, kernel, kernel, generator=rng)
        bias = torch.randn(3, generator=rng)
        padded = F.pad(x, [kernel // 2, (kernel - 1) // 2] * 2, mode="reflect")
        expected = F.conv2d(padded, w, bias)
        phases = torch.from_numpy(phase_weights(w.numpy()))
        got = F.pixel_shuffle(F.conv2d(padded, phases, bias.repeat_interleave(4), stride=2), 2)
        assert got.shape == expected.shape == (2, 3, 20, 26)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_only_convolutions_that_waste_a_block_are_worth_it():
    assert work_share(3, (9, 9), 16) == pytest.approx(16 * 100 / (4 * 16 * 81))  # 0.31
    assert work_share(4, (3, 3), 16) < 0.5  # the built-in network's 8 -> 4 layer
    assert work_share(8, (3, 3), 16) > onnx_phases.MAX_WORK_SHARE  # 2 of 16 wasted only
    assert work_share(32, (3, 3), 16) > 1  # a full block: the rewrite would add work
    assert work_share(3, (9, 9), 8) < onnx_phases.MAX_WORK_SHARE < work_share(4, (3, 3), 8)
    assert probe_side(4) == 36 and probe_side(256) == 256 and probe_side(16) == 48


def _builtin_export(tmp_path) -> onnx.ModelProto:
    model = load(resolve("builtin:7")).float()
    path = tmp_path / "builtin.onnx"
    to_onnx(model, (torch.rand(1, 3, 64, 64), torch.full((26,), 1 / 26)), path,
            ["x", "condition"], "y")
    return onnx.load(path)


def _run(model: onnx.ModelProto, x: np.ndarray, condition: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x, "condition": condition})[0]


def test_the_builtin_network_rewritten_gives_the_same_frames(tmp_path):
    exported = _builtin_export(tmp_path)
    rewritten, count = rewrite(exported, multiple=4, block=16)
    # its two narrow full-size layers (4 and 3 outputs); the 8-output one and every 32-wide
    # layer stay as they are
    assert count == 2
    ops = [n.op_type for n in rewritten.graph.node]
    assert ops.count("DepthToSpace") == 2
    assert ops.count("Conv") == [n.op_type for n in exported.graph.node].count("Conv") == 18
    strided = {n.name: onnx.helper.get_attribute_value(a) for n in rewritten.graph.node
               if n.op_type == "Conv" for a in n.attribute if a.name == "kernel_shape"}
    assert strided["/expand.2/Conv_phases"] == [10, 10]
    names = {t.name for t in rewritten.graph.initializer}
    assert "expand.2.w" not in names and "expand.2.w_phases" in names  # no dead weights kept
    rng = np.random.default_rng(0)
    for h, w in ((36, 52), (360, 640)):  # sides that are multiples of 4, odd multiples too
        x = rng.random((2, 3, h, w), dtype=np.float32)
        condition = np.eye(26, dtype=np.float32)[19]
        expected = _run(exported, x, condition)
        got = _run(rewritten, x, condition)
        assert got.shape == expected.shape == (2, 3, h, w)
        assert np.abs(got - expected).max() < 1e-5
        assert np.abs(expected - x).mean() > 0.05  # the network did paint the frame


def test_no_rewrite_without_blocked_kernels_or_where_it_would_change_the_output(
        tmp_path, monkeypatch, caplog):
    exported = _builtin_export(tmp_path)
    assert rewrite(exported, multiple=4, block=1) == (exported, 0)
    # a wrong rewrite (the phases in the wrong order) is caught on the sample and dropped
    monkeypatch.setattr(onnx_phases, "phase_weights",
                        lambda w: phase_weights(w)[::-1].copy())
    with caplog.at_level(logging.WARNING, logger=onnx_phases.__name__):
        assert rewrite(exported, multiple=4, block=16) == (exported, 0)
    assert "running the graph as exported" in caplog.text


def test_the_engine_uses_the_rewritten_export(tmp_path, monkeypatch):
    from framestyle.core import node_cache
    from framestyle.pipeline.inference import InferenceOptions
    from framestyle.pipeline.stylize import Stylizer

    monkeypatch.setenv(node_cache.ROOT_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(onnx_phases, "nchwc_block", lambda: 16)  # as on an AVX-512 node
    ref = resolve("builtin:7")
    fast = Stylizer(ref, InferenceOptions(engine="onnxruntime"))
    [export] = (tmp_path / "cache" / "built").glob("*.onnx")
    assert [n.op_type for n in onnx.load(export).graph.node].count("DepthToSpace") == 2
    frames = [np.random.default_rng(1).integers(0, 256, (90, 130, 3), dtype=np.uint8)]
    expected = Stylizer(ref, InferenceOptions(engine="torch"))(frames)[0].astype(int)
    assert np.abs(fast(frames)[0].astype(int) - expected).max() <= 1


def test_the_export_key_names_the_torch_version_with_or_without_package_metadata(monkeypatch):
    from importlib import metadata

    from framestyle.pipeline import onnx_engine

    style = resolve("builtin:7")
    with_metadata = onnx_engine.export_key(style)

    def no_metadata(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(onnx_engine.metadata, "version", no_metadata)
    assert onnx_engine.torch_version() == torch.__version__
    assert onnx_engine.export_key(style).endswith(".onnx")
    assert (onnx_engine.export_key(style) == with_metadata) == (
        torch.__version__ == metadata.distribution("torch").version)
