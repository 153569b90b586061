"""``--style image:PATH_OR_URI``: any picture as a style (arbitrary style transfer).

The picture's style vector is computed here, once per job, on the driver: the style predictor
(``models/arbitrary.py``) reads it as Magenta does (the largest centred square, 256x256), and the
vector travels to the workers inside the resolved style (``ModelRef.condition``) for the
arbitrary-style transformer. Pictures mix like built-in styles, by their vectors:
``image:a.jpg=0.5,image:b.jpg=0.5``. A job's identity names the pictures by content
(``condition_source``), not by the vector's floats, which another machine may round otherwise.

Every other ``--style`` goes to ``models.hub.resolve`` unchanged; ``resolve_style`` is what the
commands call for both.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np

from ..core import storage
from ..core.errors import InputError
from ..core.hashing import file_sha256
from ..models import hub
from ..models.hub import ModelRef

PREFIX = "image:"
STYLE_SIDE = 256  # the predictor's input, as it was trained
DECODE_SIDE = 1024  # large pictures are decoded at reduced scale, well above STYLE_SIDE


def resolve_style(text: str, arch: str | None = None, trust_code: bool = False,
                  strength: float = 1.0, preserve_color: bool = False) -> ModelRef:
    """``--style`` resolved and checked, ``image:`` styles included, with how its output is
    used (``pipeline.look``); a one-line InputError naming the problem when it cannot be."""
    text = text.strip()
    ref = _network(text, arch, trust_code)
    if strength != 1 or preserve_color:
        ref = dataclasses.replace(ref, strength=strength, preserve_color=preserve_color)
    return ref


def _network(text: str, arch: str | None, trust_code: bool) -> ModelRef:
    if PREFIX not in text:
        return hub.resolve(text, arch=arch, trust_code=trust_code)
    parts = [_weighted(part, text) for part in text.split(",")]
    if not all(uri is not None for uri, _ in parts):
        raise InputError(f"bad style {text!r}: image: styles mix only with image: styles (a "
                         "picture's style is a vector for the arbitrary-style network, a "
                         "built-in's a weight over the 26 styles of another network)")
    total = sum(weight for _, weight in parts)
    if total <= 0:
        raise InputError(f"bad style {text!r}: weights sum to zero")
    vectors, sources = [], []
    for uri, weight in parts:
        digest, style = style_vector(uri)
        vectors.append(style * (weight / total))
        sources.append(f"{digest}={weight / total:.6g}")
    vector = np.sum(vectors, axis=0)
    from ..models import architectures

    transformer = architectures.get("arbitrary_transformer")
    return ModelRef(text=text, arch=transformer, sha256=hub.shipped_sha256(transformer.shipped_as),
                    condition=tuple(float(v) for v in vector),
                    condition_source="image:" + ",".join(sources))


def pictures(text: str) -> list[str]:
    """The URIs of the pictures an ``image:`` style names (none for other styles)."""
    return [uri for uri, _ in (_weighted(part, text) for part in text.split(",")) if uri]


def _weighted(part: str, text: str) -> tuple[str | None, float]:
    """(URI, weight) of ``image:URI[=W]``; (None, 0) for a part that is not an image style."""
    part = part.strip()
    if not part.startswith(PREFIX):
        return None, 0.0
    uri, weight = part[len(PREFIX):], 1.0
    head, sep, tail = uri.rpartition("=")
    if sep:
        try:
            uri, weight = head, float(tail)
        except ValueError:
            pass  # an "=" in the file name
    if not uri or weight < 0:
        raise InputError(f"bad style {text!r}: expected image:PATH or image:PATH=WEIGHT, "
                         "weights 0 or more")
    return uri, weight


def style_vector(uri: str) -> tuple[str, np.ndarray]:
    """(SHA-256 of the picture's bytes, its style vector (100,))."""
    import torch
    from PIL import Image

    from .image_file_job import load_image

    info = storage.storage_for(uri).stat(uri)
    if info is None:
        raise InputError(f"style image not found: {uri}")
    path = storage.fetch(uri, info)
    rgb = load_image(path, f"style image {uri}", DECODE_SIDE).rgb
    digest = file_sha256(path)
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = Image.fromarray(rgb[top:top + side, left:left + side]).resize(
        (STYLE_SIDE, STYLE_SIDE), Image.LANCZOS)
    pixels = torch.from_numpy(np.asarray(square, np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad():
        return digest, _predictor()(pixels)[0].numpy()


@lru_cache(maxsize=1)
def _predictor():
    from ..models import architectures
    from ..models.checkpoints import load_module, shipped_graph

    arch = architectures.get("style_predictor")
    return load_module(shipped_graph(arch.shipped_as), arch, {})

