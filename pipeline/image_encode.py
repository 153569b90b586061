"""Encode stylized pixels into the output file format, putting the source's alpha plane back."""

from __future__ import annotations

import io
from pathlib import PurePosixPath

import numpy as np
from PIL import Image

# --format choices -> (Pillow format, file extension). "same" keeps each source's own format.
OUTPUT_FORMATS = {"png": ("PNG", ".png"), "jpg": ("JPEG", ".jpg"), "webp": ("WEBP", ".webp")}
SAVE_OPTIONS = {"JPEG": {"quality": 92, "subsampling": 0}, "WEBP": {"quality": 90, "method": 4},
                "PNG": {"compress_level": 6}}
ALPHA_FORMATS = {"PNG", "WEBP", "TIFF", "GIF"}  # formats that can carry the alpha plane back
# Source formats Pillow reads but cannot write (or writes badly) become PNG under --format same.
WRITABLE = {"JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF"}


def output_format(source_name: str, choice: str) -> tuple[str, str]:
    """(Pillow format, output name) for a source named ``source_name``.

    ``choice`` is a key of OUTPUT_FORMATS or "same". With "same" the name is kept and its
    extension picks the format (so a .jpg that holds PNG data comes out as a real JPEG), and
    names Pillow cannot write get ".png" appended; otherwise the extension is replaced
    (``a/b.jpeg`` -> ``a/b.png``). Decided from the name alone, before reading any bytes, so a
    re-run knows which outputs exist already.
    """
    path = PurePosixPath(source_name)
    if choice != "same":
        fmt, ext = OUTPUT_FORMATS[choice]
        return fmt, str(path.with_suffix(ext)) if path.suffix else source_name + ext
    fmt = Image.registered_extensions().get(path.suffix.lower(), "")
    if fmt in WRITABLE:
        return fmt, source_name
    return "PNG", source_name + ".png"


def encode_image(rgb: np.ndarray, alpha: np.ndarray | None, fmt: str) -> bytes:
    img = Image.fromarray(rgb)
    if alpha is not None and fmt in ALPHA_FORMATS:
        img.putalpha(Image.fromarray(alpha))
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **SAVE_OPTIONS.get(fmt, {}))
    return buffer.getvalue()
