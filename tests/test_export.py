"""framestyle models export: ONNX (with InstanceNorm), fp16, int8, TorchScript."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from framestyle.jobs.cli import main
from framestyle.models import hub
from framestyle.models.export import UnitRangeModel
from framestyle.models.transformer_net import TransformerNet
from helpers import load_checkpoint, seeded


def reference(style_text: str, image: np.ndarray) -> np.ndarray:
    ref = hub.resolve(style_text)
    condition = None if ref.condition is None else torch.tensor(ref.condition)
    with torch.inference_mode():
        model = UnitRangeModel(hub.load(ref), ref.arch.pixels, condition)
        return model(torch.from_numpy(image)).numpy()


def ort_run(path, image: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": image})[0]


def export(capsys, *argv) -> dict:
    code = main(["models", "export", *map(str, argv), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


IMAGE = np.random.default_rng(0).random((1, 3, 72, 132), dtype=np.float32)  # not the trace size


def test_builtin_style_to_onnx_matches_torch(tmp_path, capsys):
    result = export(capsys, "builtin:7", tmp_path / "b7.onnx")
    assert result["format"] == "onnx" and result["dtype"] == "fp32"
    got = ort_run(tmp_path / "b7.onnx", IMAGE)
    assert np.abs(got - reference("builtin:7", IMAGE)).max() < 1e-3


def test_the_look_is_baked_into_the_export(tmp_path, capsys):
    """``models export builtin:3 OUT --strength 0.6 --preserve-color``: the exported model makes
    what ``framestyle image`` makes with those flags (within rounding: onnxruntime on floats
    against uint8 steps)."""
    from image_zoo import photo

    from framestyle.pipeline.stylize import Stylizer
    from framestyle.pipeline.style_image import resolve_style

    result = export(capsys, "builtin:3", tmp_path / "looked.onnx", "--strength", "0.6",
                    "--preserve-color")
    assert (result["strength"], result["preserve_color"]) == (0.6, True)
    picture = np.asarray(photo(132, 72, seed=3))
    image = (picture.astype(np.float32) / 255).transpose(2, 0, 1)[None]
    exported = ort_run(tmp_path / "looked.onnx", image)[0].transpose(1, 2, 0) * 255
    command = Stylizer(resolve_style("builtin:3", strength=0.6, preserve_color=True))([picture])
    difference = np.abs(exported - command[0])
    assert difference.mean() < 0.6 and np.percentile(difference, 99) <= 2
    plain = ort_run(export(capsys, "builtin:3", tmp_path / "plain.onnx")["output"], image)
    assert np.abs(plain[0].transpose(1, 2, 0) * 255 - command[0]).mean() > 10


def test_instance_norm_network_exports_correctly(tmp_path, capsys):
    net = seeded(TransformerNet(width=0.25))
    torch.save(net.state_dict(), tmp_path / "slim.pth")
    export(capsys, tmp_path / "slim.pth", tmp_path / "slim.onnx")
    ops = {n.op_type for n in onnx.load(str(tmp_path / "slim.onnx")).graph.node}
    assert "InstanceNormalization" in ops
    got = ort_run(tmp_path / "slim.onnx", IMAGE)
    assert np.abs(got - reference(str(tmp_path / "slim.pth"), IMAGE)).max() < 1e-3


def test_fp16_onnx_and_torchscript_round_trip(tmp_path, capsys):
    export(capsys, "builtin:2", tmp_path / "half.onnx", "--dtype", "fp16")
    weights = onnx.load(str(tmp_path / "half.onnx")).graph.initializer
    assert {w.data_type for w in weights if len(w.dims) == 4} == {onnx.TensorProto.FLOAT16}
    export(capsys, "builtin:2", tmp_path / "b2.pt", "--format", "torchscript")
    scripted, card = load_checkpoint(tmp_path / "b2.pt", trust_code=True)
    with torch.inference_mode():
        got = scripted(torch.from_numpy(IMAGE)).numpy()
    assert card.arch.name == "torchscript"
    assert np.abs(got - reference("builtin:2", IMAGE)).max() < 1e-4


def test_int8_onnx_stays_close_to_fp32(tmp_path, capsys):
    export(capsys, "builtin:7", tmp_path / "fp32.onnx")
    result = export(capsys, "builtin:7", tmp_path / "int8.onnx", "--int8")
    assert result["dtype"] == "int8"
    assert result["bytes"] < (tmp_path / "fp32.onnx").stat().st_size
    image = np.random.default_rng(1).random((1, 3, 128, 128), dtype=np.float32)
    mse = float(np.mean((ort_run(tmp_path / "int8.onnx", image) -
                         ort_run(tmp_path / "fp32.onnx", image)) ** 2))
    assert 10 * np.log10(1 / mse) > 25  # dB; the benchmark measures real frames against 30


@pytest.mark.parametrize("argv,message", [
    (["export", "builtin:1"], "needs STYLE and OUT"),
    (["export", "builtin:1", "x.pt", "--format", "torchscript", "--int8"], "--int8"),
])
def test_export_usage_errors(capsys, argv, message):
    code = main(["models", *argv])
    _, err = capsys.readouterr()
    assert code == 2 and message in err
