"""Decode one image file into upright 8-bit RGB pixels (plus its alpha plane, if any).

Photos arrive in every shape a camera, scanner or editor produces: EXIF-rotated JPEGs, CMYK
print files, 16-bit PNGs and TIFFs, grayscale scans, logos with transparency. All of them become
the same thing here, ``DecodedImage``: (H, W, 3) uint8 RGB the right way up, and the alpha plane
kept aside so the encoder can put it back. Anything that cannot be decoded raises
``ImageError`` with a short reason; callers record it and move on.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError


class ImageError(Exception):
    """This one image cannot be processed; the message is the reason users see."""


@dataclass(frozen=True)
class DecodedImage:
    rgb: np.ndarray  # (H, W, 3) uint8, EXIF orientation applied
    alpha: np.ndarray | None  # (H, W) uint8, or None for opaque images
    format: str  # Pillow's name for the source format: JPEG, PNG, WEBP, TIFF…


def max_pixels() -> int:
    """Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``), as users may set it."""
    return int(Image.MAX_IMAGE_PIXELS or 0)


def decode_image(data: bytes, max_side: int | None = None) -> DecodedImage:
    if not data:
        raise ImageError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x its pixel limit; a bomb is a bomb.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                source_format = img.format or "PNG"
                if max_side:
                    img.draft("RGB", (max_side, max_side))  # JPEG: decode at reduced scale
                img.load()
                img = ImageOps.exif_transpose(img)
                rgb, alpha = _to_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"decompression bomb: more than {max_pixels()} pixels "
                         "(Pillow's limit, Image.MAX_IMAGE_PIXELS)") from None
    except UnidentifiedImageError:
        raise ImageError("not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"corrupt or truncated image ({e})") from None
    if max_side and max(rgb.size) > max_side:
        scale = max_side / max(rgb.size)
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.LANCZOS)
        alpha = alpha.resize(size, Image.LANCZOS) if alpha is not None else None
    return DecodedImage(np.asarray(rgb), None if alpha is None else np.asarray(alpha),
                        source_format)


def _to_rgb(img: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """(RGB, alpha or None) from any Pillow mode, in sRGB when the file carries an ICC profile."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        img = _wide_to_8bit(img)
    elif img.mode == "F":
        img = Image.fromarray(np.clip(np.asarray(img), 0, 255).astype(np.uint8))
    alpha = None
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        alpha = rgba.getchannel("A")
        if alpha.getextrema() == (255, 255):
            alpha = None
        # The network sees the image over white: what a viewer without alpha would show.
        img = Image.alpha_composite(Image.new("RGBA", img.size, "white"), rgba)
    icc = img.info.get("icc_profile")
    if icc and img.mode in ("RGB", "RGBA", "CMYK"):
        try:
            img = ImageCms.profileToProfile(img, ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                                            ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, TypeError):
            pass  # a broken profile: fall back to the plain conversion below
    return img.convert("RGB"), alpha


def _wide_to_8bit(img: Image.Image) -> Image.Image:
    """16- or 32-bit grayscale to 8 bits by scaling the full range, not by clipping at 255."""
    values = np.asarray(img).astype(np.float64)
    top = 65535.0 if img.mode.startswith("I;16") or values.max() > 255 else 255.0
    return Image.fromarray(np.clip(values * (255.0 / top) + 0.5, 0, 255).astype(np.uint8))
