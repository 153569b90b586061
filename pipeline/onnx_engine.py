"""onnxruntime behind the Stylizer on CPUs: the same network, exported once per node.

On CPUs onnxruntime runs our convolutional style networks several times faster than eager
PyTorch (its fused convolution and instance-norm kernels; ``benchmarks.engines`` measures both
side by side). The network is exported as it is, in its own pixel range, with the built-in
network's style vector as a second input, so one export serves every style and mix of it. The
export is keyed by everything that decides it (the weights' hash, the architecture and its
configuration, the exporter), made once per node by whichever process needs it first, and kept
in the node cache (``core.node_cache.built``). It carries the network's memory cost per pixel
(measured on the PyTorch module when it is made), so that a later process runs it without
importing PyTorch at all (``onnx_stylizer``).

Running an export needs numpy and onnxruntime only; making one needs PyTorch (imported then).
Tiling stays with PyTorch: it works by hooking the module's normalisation layers.
"""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING

import numpy as np

from ..core import node_cache
from ..core.hashing import identity_hash
from ..models.hub import ModelRef
from .onnx_phases import nchwc_block, rewrite

if TYPE_CHECKING:
    from torch import nn

# Bump when the export below changes what it writes (models.export.OPSET included: the key
# names this version, not the opset, so that reading it needs no torch).
EXPORT_VERSION = 4
SAMPLE_SIDE = 64
BYTES_PER_PIXEL = "framestyle.bytes_per_pixel"  # the export's metadata: its cost per pixel


def export_key(style: ModelRef, phases: bool = True) -> str:
    """The file name of ``style``'s export: its network and weights, not its style mix."""
    identity = {k: v for k, v in style.identity.items() if k != "condition"}
    return identity_hash({"model": identity, "torch": torch_version(),
                          "version": EXPORT_VERSION,
                          "phases": phases and nchwc_block()}, 24) + ".onnx"


def torch_version() -> str:
    """The installed PyTorch's version, from its package metadata (no import); from the module
    where an install carries none (some system and conda builds)."""
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        import torch

        return torch.__version__


class OnnxNetwork:
    """``network.run(x[, condition])`` on float32 numpy arrays (N, 3, H, W), run by
    onnxruntime from an export at ``path``."""

    def __init__(self, path: str, threads: int, conditioned: bool):
        import onnxruntime as ort

        self.conditioned = conditioned
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # its warnings about unused initializers are not ours
        # (The memory arena stays on: without it a frame took 20-25% longer. It keeps the
        # largest pass's memory, which the stylizer's budget already bounds.) Its memory
        # pattern is off: planned on a shape's first run, it is one more block for all of that
        # shape's intermediate tensors, allocated on the second run beside the arena's own, so
        # a session held twice the memory a frame needs: 8.7 GB for a 12 MP photo where 4.2 GB
        # do, more than the budget counts on. Off, a 640x360 frame runs as fast (64.8 against
        # 65.7 ms on one thread) and the 12 MP photo in 3.7 s from its second run on, as with it.
        options.enable_mem_pattern = False
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        # a run that returns its arena's unused memory to the system when it ends: about 1.5 s
        # more for a 12 MP photo on one thread (5.5 against 4.0), so only where asked
        self._releasing = ort.RunOptions()
        self._releasing.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        recorded = self.session.get_modelmeta().custom_metadata_map.get(BYTES_PER_PIXEL)
        self.bytes_per_pixel = float(recorded) if recorded else None

    @classmethod
    def exported(cls, style: ModelRef, model: nn.Module, threads: int, phases: bool = True,
                 bytes_per_pixel: float | None = None) -> OnnxNetwork:
        """The network of ``style`` (``model``, a PyTorch module), exported first if this node
        has not yet; ``phases``: narrow convolutions rewritten (``_export``), off only to
        measure it."""
        path = node_cache.built(export_key(style, phases), lambda target: cls._export(
            model, target, style.multiple,
            len(style.condition) if style.condition is not None else 0, phases,
            bytes_per_pixel))
        return cls(path, threads, style.condition is not None)

    @classmethod
    def cached(cls, style: ModelRef, threads: int) -> OnnxNetwork | None:
        """The network of ``style`` if this node has exported it already, with its cost per
        pixel recorded; else None. Imports no PyTorch."""
        path = node_cache.existing(export_key(style))
        network = cls(path, threads, style.condition is not None) if path else None
        return network if network is not None and network.bytes_per_pixel else None

    def run(self, x: np.ndarray, condition: np.ndarray | None = None,
            release: bool = False) -> np.ndarray:
        """One frame per run: onnxruntime ran a batch of 8 frames in one run 1.2-1.5x slower
        per frame than one frame per run for the built-in and the arbitrary-style networks, and
        within 5% either way for TransformerNet, CycleGAN and pix2pix (640x480, 1 and 2
        threads; ``benchmarks.engines --batching 8``), so a batch is split here. ``release``:
        the arena gives back what it no longer uses after each run (a 12 MP photo's 4 GB)."""
        feeds = {}
        if self.conditioned:
            feeds["condition"] = np.asarray(condition, dtype=np.float32)
        frames = np.ascontiguousarray(x, dtype=np.float32)
        options = self._releasing if release else None
        return np.concatenate([self.session.run(None, {**feeds, "x": frames[i:i + 1]},
                                                options)[0]
                               for i in range(len(frames))])

    @staticmethod
    def _export(model: nn.Module, path: str, multiple: int, styles: int,
                phases: bool = True, bytes_per_pixel: float | None = None) -> None:
        """The network as ONNX at ``path``; with ``phases``, its narrow convolutions in the
        shapes onnxruntime's kernels run fast (``onnx_phases``: 16% less time a frame for the
        built-in network and TransformerNet, 5% for CycleGAN's, the same output); with
        ``bytes_per_pixel``, that recorded in its metadata."""
        import onnx
        import torch

        from ..models.export import to_onnx

        side = max(SAMPLE_SIDE, multiple)
        samples = (torch.rand(1, 3, side, side),)
        if styles:
            samples += (torch.full((styles,), 1 / styles),)
        to_onnx(model.float(), samples, path, ["x", "condition"][:len(samples)], "y")
        graph = onnx.load(path)
        if phases:
            graph, _ = rewrite(graph, multiple)
        if bytes_per_pixel:
            onnx.helper.set_model_props(graph, {BYTES_PER_PIXEL: repr(float(bytes_per_pixel))})
        onnx.save(graph, path)
