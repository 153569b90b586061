"""Encode stylized pixels into the output file: the one image write path.

``framestyle image`` and ``framestyle images`` both write through ``encode_image``, so the same
input and options give the same bytes: the source's alpha planes put back where the format holds
them, fixed quality and chroma settings per format, an animation's frame durations and loop
count, and the source's EXIF and XMP (orientation already reset by the decoder) unless they are
stripped. Pixels are sRGB (the decoder converted any ICC profile), written untagged.
"""

from __future__ import annotations

import io
from pathlib import PurePosixPath

import numpy as np
from PIL import Image, PngImagePlugin

from .image_decode import Animation, Metadata

# --format choices -> (Pillow format, file extension). "same" keeps each source's own format.
OUTPUT_FORMATS = {"png": ("PNG", ".png"), "jpg": ("JPEG", ".jpg"), "webp": ("WEBP", ".webp"),
                  "heic": ("HEIF", ".heic"), "avif": ("AVIF", ".avif")}
SAVE_OPTIONS = {"JPEG": {"quality": 92, "subsampling": 0}, "WEBP": {"quality": 90, "method": 4},
                "PNG": {"compress_level": 6}, "HEIF": {"quality": 90}, "AVIF": {"quality": 90}}
ALPHA_FORMATS = {"PNG", "WEBP", "TIFF", "GIF", "HEIF", "AVIF"}  # can carry the alpha plane back
ANIMATED_FORMATS = {"GIF", "WEBP", "PNG"}  # write every frame (PNG as APNG)
EXIF_FORMATS = {"JPEG", "PNG", "WEBP", "HEIF", "AVIF", "TIFF"}
XMP_FORMATS = {"JPEG", "WEBP", "HEIF", "AVIF"}  # PNG's goes in an iTXt chunk (below)
# Source formats Pillow reads but cannot write (or writes badly) become PNG under --format same.
WRITABLE = {"JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF", "HEIF", "AVIF"}


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


def format_of(name: str) -> str | None:
    """The Pillow format an output name's extension asks for, if we can write it."""
    fmt = Image.registered_extensions().get(PurePosixPath(name).suffix.lower())
    return fmt if fmt in WRITABLE else None


def encode_image(frames: list[np.ndarray], fmt: str, alphas: list[np.ndarray] | None = None,
                 animation: Animation | None = None, metadata: Metadata | None = None) -> bytes:
    """``frames`` (one for a still image) as a ``fmt`` file; see the module docstring."""
    images = [Image.fromarray(f) for f in frames]
    if alphas is not None and fmt in ALPHA_FORMATS:
        for img, alpha in zip(images, alphas):
            img.putalpha(Image.fromarray(alpha))
    options = dict(SAVE_OPTIONS.get(fmt, {}))
    if animation is not None and len(images) > 1 and fmt in ANIMATED_FORMATS:
        options.update(save_all=True, append_images=images[1:],
                       duration=list(animation.durations), disposal=2 if fmt == "GIF" else 0)
        if animation.loop is not None:
            options["loop"] = animation.loop
        if fmt == "WEBP":
            options.pop("disposal")
            options["lossless"] = False
    if metadata is not None:
        if metadata.exif and fmt in EXIF_FORMATS:
            options["exif"] = metadata.exif
        if metadata.xmp and fmt in XMP_FORMATS:
            options["xmp"] = metadata.xmp
        elif metadata.xmp and fmt == "PNG":
            info = PngImagePlugin.PngInfo()
            info.add_itxt("XML:com.adobe.xmp", metadata.xmp.decode("utf-8", "replace"))
            options["pnginfo"] = info
    buffer = io.BytesIO()
    images[0].save(buffer, format=fmt, **options)
    return buffer.getvalue()
