"""Style references: what ``--style`` may name, and where its weights come from.

* ``builtin:N`` (N = 0..25) or a mix ``builtin:3=0.5,12=0.5``: the built-in multi-style network.
* a checkpoint file: a local path or an ``s3://`` URI (``.pth``, ``.model``, ``.pt``,
  ``.safetensors`` with its ``.json`` card beside it).
* a registry name ``NAME`` or ``NAME@VERSION``, looked up under ``$FRAMESTYLE_MODELS`` (a local
  folder or an ``s3://`` prefix) laid out as ``NAME/VERSION/model.safetensors`` + ``model.json``;
  without a version the highest one is used.

Remote checkpoints are downloaded once per node into the cache, keyed by the object's version
(ETag), and our own cards carry a SHA-256 that loading checks.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from . import storage
from .errors import InputError

_BUILTIN = re.compile(r"^builtin:(.+)$")
_REGISTRY_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)(?:@([A-Za-z0-9_.-]+))?$")
CHECKPOINT_SUFFIXES = (".pth", ".model", ".pt", ".ckpt", ".safetensors")
REGISTRY_ENV = "FRAMESTYLE_MODELS"
WEIGHTS_FILE, CARD_FILE = "model.safetensors", "model.json"


@dataclass(frozen=True)
class StyleRef:
    """A parsed ``--style``."""

    text: str
    weights: tuple[float, ...] | None = None  # built-in: normalised weights over its styles
    source: str | None = None  # a checkpoint: local path or s3:// URI of its weights
    arch: str | None = None  # overrides detection from the checkpoint's keys
    trust_code: bool = False  # allow TorchScript programs

    @property
    def slug(self) -> str:
        """A file-name-safe label: ``builtin-7``, ``builtin-3x0.5-12x0.5``, ``candy-2``."""
        if self.weights is not None:
            body = self.text.split(":", 1)[1]
            return "builtin-" + re.sub(r"[^0-9a-zA-Z.]+", "-", body.replace("=", "x")).strip("-")
        name = self.text if _REGISTRY_NAME.match(self.text) else Path(self.text).stem
        return re.sub(r"[^0-9a-zA-Z.]+", "-", name).strip("-")


def parse_style(text: str, arch: str | None = None, trust_code: bool = False) -> StyleRef:
    """Resolve ``--style``; raises InputError naming the problem when it cannot."""
    text = text.strip()
    match = _BUILTIN.match(text)
    if match:
        return StyleRef(text=text, weights=_builtin_weights(text, match.group(1)))
    if storage.is_s3(text) or text.endswith(CHECKPOINT_SUFFIXES) or os.path.exists(text):
        if storage.storage_for(text).stat(text) is None:
            raise InputError(f"style checkpoint not found: {text}")
        return StyleRef(text=text, source=text, arch=arch, trust_code=trust_code)
    named = _REGISTRY_NAME.match(text)
    if named:
        source = registry_lookup(named.group(1), named.group(2))
        if source:
            return StyleRef(text=text, source=source, arch=arch, trust_code=trust_code)
    from ..models.loading import BUILTIN_STYLES

    raise InputError(f"unknown style {text!r}: use builtin:N with N in 0..{BUILTIN_STYLES - 1}, "
                     "a mix like builtin:3=0.5,12=0.5, a checkpoint path or s3:// URI, or a "
                     f"model name registered under ${REGISTRY_ENV}")


def _builtin_weights(text: str, body: str) -> tuple[float, ...]:
    # Imported here, not at the top: this module is also loaded by Ray Data's read and write
    # tasks, which must not pay for importing torch.
    from ..models.loading import BUILTIN_STYLES

    weights = [0.0] * BUILTIN_STYLES
    for part in body.split(","):
        index, _, weight = part.partition("=")
        try:
            i, w = int(index), float(weight) if weight else 1.0
        except ValueError:
            raise InputError(f"bad style {text!r}: expected builtin:N or builtin:N=W,M=V") from None
        if not 0 <= i < BUILTIN_STYLES:
            raise InputError(f"unknown style {text!r}: built-in styles are 0..{BUILTIN_STYLES - 1}")
        if w < 0:
            raise InputError(f"bad style {text!r}: weights must not be negative")
        weights[i] += w
    total = sum(weights)
    if total <= 0:
        raise InputError(f"bad style {text!r}: weights sum to zero")
    return tuple(w / total for w in weights)


def registry_root() -> str | None:
    return os.environ.get(REGISTRY_ENV) or None


def registry_entries() -> dict[str, list[str]]:
    """Every registered model name and its versions, oldest first."""
    root = registry_root()
    if not root:
        return {}
    entries: dict[str, list[str]] = {}
    for path in storage.storage_for(root).list_files(root):
        parts = path.split("/")
        if len(parts) == 3 and parts[2] == WEIGHTS_FILE:
            entries.setdefault(parts[0], []).append(parts[1])
    return {name: sorted(versions, key=_version_key) for name, versions in sorted(entries.items())}


def registry_lookup(name: str, version: str | None) -> str | None:
    versions = registry_entries().get(name)
    if not versions:
        return None
    if version is None:
        version = versions[-1]
    elif version not in versions:
        raise InputError(f"model {name!r} has no version {version!r}; "
                         f"registered: {', '.join(versions)}")
    return storage.join(registry_root(), name, version, WEIGHTS_FILE)


def fetch_checkpoint(source: str) -> str:
    """A local path to the checkpoint, with its card (if any) beside it under the same stem."""
    if not storage.is_s3(source):
        return source
    weights = storage.fetch(source)
    card_uri = source.rsplit(".", 1)[0] + ".json"
    if source.endswith(".safetensors") and storage.storage_for(card_uri).stat(card_uri):
        card = storage.fetch(card_uri)
        Path(weights).with_suffix(".json").write_bytes(Path(card).read_bytes())
    return weights


def _version_key(version: str) -> tuple:
    """Numeric parts compare as numbers: 10 comes after 9."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p)
                 for p in re.split(r"[.\-_]", version))
