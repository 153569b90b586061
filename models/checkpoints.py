"""Checkpoint files -> ready modules, safely.

Reads the files users already have — pytorch/examples fast_neural_style ``.pth``/``.model``
(including the InstanceNorm ``running_mean``/``running_var`` keys old PyTorch saved),
junyanz pytorch-CycleGAN-and-pix2pix ``latest_net_G*.pth`` — and our own format: weights in
safetensors beside a small JSON (architecture, config, style name, provenance, content hash).

Nothing is ever unpickled freely: ``.pth`` files go through ``torch.load(weights_only=True)``,
which refuses any pickle that would build objects other than tensors and containers, and
TorchScript programs (which carry code) load only when the caller passes ``trust_code=True``.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..pipeline.errors import InputError
from ..pipeline.storage import file_sha256
from . import registry

LEGACY_INSTANCE_NORM_STATS = re.compile(r"(^|\.)in\d+\.running_(mean|var)$")


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


def save_checkpoint(model: nn.Module, arch: str, config: dict, path: str | Path,
                    style: str | None = None, provenance: dict | None = None) -> ModelCard:
    """Write ``path`` (.safetensors) and its card ``path`` with .json; return the card."""
    from safetensors.torch import save_file

    path = Path(path).with_suffix(".safetensors")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path))
    card = ModelCard(arch=arch, config=config, style=style, provenance=provenance or {},
                     sha256=file_sha256(path))
    path.with_suffix(".json").write_text(json.dumps(card.__dict__, indent=2, sort_keys=True))
    return card


def load_model(path: str | Path, arch: str | None = None, trust_code: bool = False
               ) -> tuple[nn.Module, ModelCard]:
    """A module in eval mode and its card, from any supported checkpoint file.

    The architecture comes from our card, else from the state dict's keys; ``arch`` overrides.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if _is_torchscript(path):
        if not trust_code:
            raise CheckpointError(f"{path} is a TorchScript program, which runs code when "
                                  "loaded: pass --trust-code if you trust its source")
        return torch.jit.load(str(path), map_location="cpu").eval(), ModelCard(arch="torchscript")
    card = _read_card(path)
    state = clean_state_dict(read_state_dict(path))
    if card and card.sha256 and file_sha256(path) != card.sha256:
        raise CheckpointError(f"{path} does not match the hash in its card: corrupt or replaced")
    if arch:
        card = ModelCard(arch=arch, config=_detected_config(state, arch))
    elif not card:
        card = ModelCard(*detect_arch(state))
    try:
        model = registry.build(card.arch, **card.config)
        model.load_state_dict(state, strict=True)
    except (ValueError, TypeError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0]
        raise CheckpointError(f"{path} does not fit architecture {card.arch!r}: {first}") from None
    return model.eval(), card


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file or a pickled state dict, refusing anything executable."""
    import pickle

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
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
    return state


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


def detect_arch(state: dict[str, torch.Tensor]) -> tuple[str, dict]:
    """Architecture name and constructor config from a state dict's keys and shapes."""
    keys = state.keys()
    if "contract.0.norm.gamma" in state:
        return "multistyle", {"num_styles": state["contract.0.norm.gamma"].shape[0],
                              "width": state["contract.0.w"].shape[0]}
    if "conv1.conv2d.weight" in state and "res1.conv1.conv2d.weight" in state:
        return "transformer_net", {"width": state["conv1.conv2d.weight"].shape[0] / 32}
    batch = any(k.endswith("running_mean") for k in keys)
    if "model.model.0.weight" in state:
        depth = max(k.count("model.") for k in keys if k.endswith("weight")) - 1
        return "unet_generator", {
            "input_nc": state["model.model.0.weight"].shape[1],
            "ngf": state["model.model.0.weight"].shape[0], "num_downs": depth,
            "norm": "batch" if batch else "instance"}
    blocks = {int(m.group(1)) for k in keys if (m := re.match(r"model\.(\d+)\.conv_block\.", k))}
    if "model.1.weight" in state and blocks:
        return "resnet_generator", {
            "input_nc": state["model.1.weight"].shape[1], "ngf": state["model.1.weight"].shape[0],
            "n_blocks": len(blocks), "norm": "batch" if batch else "instance"}
    raise CheckpointError("cannot tell the architecture from this checkpoint's keys "
                          f"(first: {', '.join(list(keys)[:3])}); name it with --arch")


def _detected_config(state: dict[str, torch.Tensor], arch: str) -> dict:
    """The config detection finds when it agrees with the architecture the user named, else the
    architecture's defaults."""
    try:
        detected, config = detect_arch(state)
    except CheckpointError:
        return {}
    return config if detected == arch else {}


def _read_card(path: Path) -> ModelCard | None:
    card_path = path.with_suffix(".json")
    if path.suffix != ".safetensors" or not card_path.is_file():
        return None
    try:
        return ModelCard(**json.loads(card_path.read_text()))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"unreadable model card {card_path}: {e}") from None


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.split("/", 1)[-1].startswith("code/") for n in z.namelist())
