"""Narrow convolutions of an ONNX graph rewritten into the shapes onnxruntime's CPU kernels run fast.

onnxruntime computes a convolution with constant weights in blocks of output channels (its NCHWc
kernels: 16 channels a block with AVX-512, 8 with AVX2), so a layer with fewer outputs pays for a
whole block. A style network's last layer is exactly that: 3 outputs, a 9x9 kernel over the full-
size frame. In the built-in network its last two layers (4 and 3 outputs) took 15 of the 70 ms a
640x360 frame cost on one thread, most of it computing padding channels (onnxruntime's profile).

A stride-1 k x k convolution whose output has even height and width is the same as a stride-2
(k+1) x (k+1) convolution with four times the output channels, one for each output pixel's
phase (row parity, column parity), followed by ``DepthToSpace`` (pixel shuffle): 3 outputs
become 12, which fill a 16-channel block, at a quarter of the positions. The products are the
same ones (the extra taps are zeros), so the output matches the original graph's; ``rewrite``
checks that on a sample before the rewritten graph is used, and keeps the original otherwise.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

# A layer is rewritten only if the rewrite computes at most this share of the padded work it
# replaces (the DepthToSpace after it costs about a fifth of a millisecond per megabyte moved).
MAX_WORK_SHARE = 0.75
MATCH_TOLERANCE = 1e-4  # of the output's range: rounding, never a different picture
PROBE_MIN_SIDE = 32  # px: large enough for every reflect padding of the networks we ship


def nchwc_block() -> int:
    """onnxruntime's output-channel block on this CPU: 16 with AVX-512, 8 with AVX2, and 1
    (no blocked kernels, nothing to gain) anywhere else, as its kernels dispatch. Read from
    numpy's record of the instruction sets it dispatches on itself, which imports nothing."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # (a numpy that keeps it elsewhere: no rewrite, no harm)
        return 1
    if features.get("AVX512F"):
        return 16
    return 8 if features.get("AVX2") and features.get("FMA3") else 1


def padded(channels: int, block: int) -> int:
    return -(-channels // block) * block


def work_share(out_channels: int, kernel: tuple[int, int], block: int) -> float:
    """The phase convolution's multiply-adds over the original's, both with their outputs
    padded to whole blocks: four times the channels, (k+1)^2 taps, a quarter of positions."""
    kh, kw = kernel
    return padded(4 * out_channels, block) * (kh + 1) * (kw + 1) / (
        4 * padded(out_channels, block) * kh * kw)


def phase_weights(weights: np.ndarray) -> np.ndarray:
    """(C, I, kh, kw) stride-1 weights -> (4C, I, kh+1, kw+1) stride-2 ones: output channel
    4c + 2a + b computes pixel (2i + a, 2j + b) of channel c, the order DepthToSpace's CRD mode
    puts back."""
    c, i, kh, kw = weights.shape
    phases = np.zeros((c, 2, 2, i, kh + 1, kw + 1), weights.dtype)
    for a in range(2):
        for b in range(2):
            phases[:, a, b, :, a:a + kh, b:b + kw] = weights
    return phases.reshape(4 * c, i, kh + 1, kw + 1)


def rewrite(model, multiple: int, block: int | None = None):
    """``model`` (an ``onnx.ModelProto`` of a network whose frames' sides are multiples of
    ``multiple``) with its narrow stride-1 convolutions as phase convolutions, and how many
    were rewritten; the original, and 0, if none is worth it or the result does not match."""
    import onnx
    from onnx import helper, numpy_helper

    block = nchwc_block() if block is None else block
    if block == 1:
        return model, 0
    side = probe_side(multiple)
    shapes = _output_shapes(model, side)
    weights = {t.name: t for t in model.graph.initializer}
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    del rewritten.graph.node[:]
    replaced: set[str] = set()
    count = 0
    for node in model.graph.node:
        w = _narrow_weights(node, weights, shapes, block)
        if w is None:
            rewritten.graph.node.append(node)
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute
                      if a.name not in ("kernel_shape", "strides")}
        inputs = [node.input[0], _add(rewritten, node.input[1], phase_weights(w))]
        if len(node.input) > 2 and node.input[2]:  # a bias: the same for a channel's phases
            bias = numpy_helper.to_array(weights[node.input[2]])
            inputs.append(_add(rewritten, node.input[2], np.repeat(bias, 4)))
            replaced.add(node.input[2])
        replaced.add(node.input[1])
        count += 1
        phases = f"{node.output[0]}_phases"
        rewritten.graph.node.extend([
            helper.make_node("Conv", inputs, [phases], name=f"{node.name}_phases",
                             kernel_shape=[w.shape[2] + 1, w.shape[3] + 1], strides=[2, 2],
                             **attributes),
            helper.make_node("DepthToSpace", [phases], list(node.output),
                             name=f"{node.name}_pixels", blocksize=2, mode="CRD")])
    if not count:
        return model, 0
    still_used = {name for n in rewritten.graph.node for name in n.input}
    kept = [t for t in rewritten.graph.initializer if t.name not in replaced
            or t.name in still_used]
    del rewritten.graph.initializer[:]
    rewritten.graph.initializer.extend(kept)
    difference = _difference(model, rewritten, side)
    if difference > MATCH_TOLERANCE:
        log.warning("the phase rewrite of %d convolutions changed the output by %.2g; "
                    "running the graph as exported", count, difference)
        return model, 0
    return rewritten, count


def probe_side(multiple: int) -> int:
    """An odd multiple of ``multiple`` of at least PROBE_MIN_SIDE: a layer whose sides are even
    at this size is even at every multiple of ``multiple`` (its side is a fixed fraction of the
    frame's, and the odd factor leaves only that fraction's own factors of two)."""
    n = max(1, -(-PROBE_MIN_SIDE // multiple))
    return multiple * (n if n % 2 else n + 1)


def _narrow_weights(node, weights: dict, shapes: dict, block: int) -> np.ndarray | None:
    """The weights of ``node`` if it is a convolution worth rewriting, else None."""
    from onnx import helper, numpy_helper

    if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in weights:
        return None
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if attributes.get("group", 1) != 1 or any(s != 1 for s in attributes.get("strides", [1])) \
            or any(d != 1 for d in attributes.get("dilations", [1])):
        return None
    if attributes.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return None
    shape = shapes.get(node.output[0])
    if shape is None or len(shape) != 4 or shape[2] % 2 or shape[3] % 2:
        return None
    w = numpy_helper.to_array(weights[node.input[1]])
    if w.ndim != 4 or w.dtype != np.float32:
        return None
    return w if work_share(w.shape[0], w.shape[2:], block) <= MAX_WORK_SHARE else None


def _add(model, name: str, array: np.ndarray) -> str:
    from onnx import numpy_helper

    model.graph.initializer.append(numpy_helper.from_array(array, f"{name}_phases"))
    return f"{name}_phases"


def _feeds(session, side: int, seed: int = 0) -> dict:
    """Inputs for ``session``: a random frame batch of ``side`` x ``side`` first, then each other
    input (a style vector) uniform."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for k, arg in enumerate(session.get_inputs()):
        if k == 0:
            feeds[arg.name] = rng.random((1, 3, side, side), dtype=np.float32)
        else:
            shape = [d if isinstance(d, int) else 1 for d in arg.shape]
            feeds[arg.name] = np.full(shape, 1 / max(1, int(np.prod(shape))), np.float32)
    return feeds


def _session(model, **options):
    import onnxruntime as ort

    settings = ort.SessionOptions()
    settings.log_severity_level = 3
    settings.intra_op_num_threads = 1
    for key, value in options.items():
        setattr(settings, key, value)
    return ort.InferenceSession(model.SerializeToString(), settings,
                                providers=["CPUExecutionProvider"])


def _output_shapes(model, side: int) -> dict[str, list[int]]:
    """Every convolution's output shape for a ``side`` x ``side`` frame, from running the graph
    (the padding in our exports is computed at run time, which ONNX's shape inference cannot
    follow)."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    outputs = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.ValueInfoProto(name=n.output[0]) for n in probe.graph.node
                              if n.op_type == "Conv" and n.output[0] not in outputs)
    session = _session(probe, graph_optimization_level=ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    values = session.run(None, _feeds(session, side))
    return {o.name: list(v.shape) for o, v in zip(session.get_outputs(), values)}


def _difference(model, rewritten, side: int) -> float:
    """The largest difference between the two graphs' outputs on a random frame, as a share of
    the original output's range."""
    original, new = _session(model), _session(rewritten)
    feeds = _feeds(original, side, seed=1)
    expected, got = original.run(None, feeds)[0], new.run(None, feeds)[0]
    if expected.shape != got.shape:
        return float("inf")
    span = float(expected.max() - expected.min()) or 1.0
    return float(np.abs(expected - got).max()) / span
