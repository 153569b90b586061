"""onnxruntime behind the Stylizer on CPUs: the same network, exported once per node.

On CPUs onnxruntime runs our convolutional style networks several times faster than eager
PyTorch (its fused convolution and instance-norm kernels; ``benchmarks.engines`` measures both
side by side). The network is exported as it is, in its own pixel range, with the built-in
network's style vector as a second input, so one export serves every style and mix of it. The
export is keyed by everything that decides it (the weights' hash, the architecture and its
configuration, the exporter), made once per node by whichever process needs it first, and kept
in the node cache (``core.node_cache.built``).

Tiling stays with PyTorch: it works by hooking the module's normalisation layers.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..core import node_cache
from ..core.hashing import identity_hash
from ..models.export import OPSET, to_onnx
from ..models.hub import ModelRef
from .onnx_phases import nchwc_block, rewrite

EXPORT_VERSION = 3  # bump when the export below changes what it writes
SAMPLE_SIDE = 64


def export_key(style: ModelRef, phases: bool = True) -> str:
    """The file name of ``style``'s export: its network and weights, not its style mix."""
    identity = {k: v for k, v in style.identity.items() if k != "condition"}
    return identity_hash({"model": identity, "opset": OPSET, "torch": torch.__version__,
                          "version": EXPORT_VERSION,
                          "phases": phases and nchwc_block()}, 24) + ".onnx"


class OnnxNetwork:
    """``network(x[, condition])`` on float32 CPU tensors, run by onnxruntime."""

    def __init__(self, style: ModelRef, model: nn.Module, threads: int, phases: bool = True):
        """``phases``: narrow convolutions rewritten (``_export``); off only to measure it."""
        import onnxruntime as ort

        self.conditioned = style.condition is not None
        path = node_cache.built(export_key(style, phases), lambda target: self._export(
            model, target, style.multiple, len(style.condition) if self.conditioned else 0,
            phases))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # its warnings about unused initializers are not ours
        # (The memory arena stays on: without it a frame took 20-25% longer. It keeps the
        # largest pass's memory, which the stylizer's budget already bounds.)
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """One frame per run: onnxruntime ran a batch of 8 frames in one run 1.2-1.5x slower
        per frame than one frame per run for the built-in and the arbitrary-style networks, and
        within 5% either way for TransformerNet, CycleGAN and pix2pix (640x480, 1 and 2
        threads; ``benchmarks.engines --batching 8``), so a batch is split here."""
        feeds = {}
        if self.conditioned:
            feeds["condition"] = condition.numpy().astype(np.float32)
        frames = np.ascontiguousarray(x.numpy(), dtype=np.float32)
        return torch.from_numpy(np.concatenate(
            [self.session.run(None, {**feeds, "x": frames[i:i + 1]})[0]
             for i in range(len(frames))]))

    @staticmethod
    def _export(model: nn.Module, path: str, multiple: int, styles: int,
                phases: bool = True) -> None:
        """The network as ONNX at ``path``; with ``phases``, its narrow convolutions in the
        shapes onnxruntime's kernels run fast (``onnx_phases``: 16% less time a frame for the
        built-in network and TransformerNet, 5% for CycleGAN's, the same output)."""
        import onnx

        side = max(SAMPLE_SIDE, multiple)
        samples = (torch.rand(1, 3, side, side),)
        if styles:
            samples += (torch.full((styles,), 1 / styles),)
        to_onnx(model.float(), samples, path, ["x", "condition"][:len(samples)], "y")
        if phases:
            graph, rewritten = rewrite(onnx.load(path), multiple)
            if rewritten:
                onnx.save(graph, path)
