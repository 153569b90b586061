"""Decode one image file into upright 8-bit RGB pixels, its alpha, frames and metadata.

Photos arrive in every shape a camera, scanner or editor produces: EXIF-rotated JPEGs, iPhone
HEIC, AVIF, CMYK print files, 16-bit PNGs and TIFFs, grayscale scans, logos with transparency,
animated GIF, WebP and APNG. All of them become the same thing here, ``DecodedImage``: frames of
(H, W, 3) uint8 RGB the right way up (one for a still image), the alpha planes kept aside so the
encoder can put them back, an animation's frame durations and loop count, and the EXIF and XMP
metadata with the orientation reset (the pixels are upright now). Anything that cannot be
decoded raises ``ImageError`` with a short reason; callers record it and move on.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass

import numpy as np
import pillow_heif
from PIL import Image, ImageCms, ImageOps, ImageSequence, UnidentifiedImageError

pillow_heif.register_heif_opener()  # HEIC/HEIF; Pillow reads and writes AVIF itself
EXIF_ORIENTATION = 0x0112
_XMP_ORIENTATION = re.compile(rb"(tiff:Orientation(?:\s*=\s*[\"']|>))\s*\d")


class ImageError(Exception):
    """This one image cannot be processed; the message is the reason users see."""


class ImageTooLarge(ImageError):
    """More pixels than allowed: a decompression bomb, or over the megapixel limit."""


@dataclass(frozen=True)
class Metadata:
    """What a photo says about itself, to carry over to its stylized copy."""

    exif: bytes = b""  # capture date, camera, lens, GPS…, orientation reset to 1
    xmp: bytes = b""


@dataclass(frozen=True)
class Animation:
    durations: tuple[int, ...]  # milliseconds each frame shows
    loop: int | None  # 0 forever, N times, None: the file did not say (play once)


@dataclass(frozen=True)
class DecodedImage:
    frames: tuple[np.ndarray, ...]  # (H, W, 3) uint8 each, EXIF orientation applied
    alphas: tuple[np.ndarray, ...] | None  # (H, W) uint8 per frame, or None when opaque
    format: str  # Pillow's name for the source format: JPEG, PNG, WEBP, HEIF, AVIF…
    metadata: Metadata = Metadata()
    animation: Animation | None = None  # set for images with more than one frame

    @property
    def rgb(self) -> np.ndarray:
        """The (first) frame."""
        return self.frames[0]

    @property
    def alpha(self) -> np.ndarray | None:
        return None if self.alphas is None else self.alphas[0]


DEFAULT_MAX_MEGAPIXELS = 100  # all frames together; a 100 MP medium-format photo passes


def max_pixels() -> int:
    """Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``), as users may set it."""
    return int(Image.MAX_IMAGE_PIXELS or 0)


def decode_image(data: bytes, max_side: int | None = None,
                 max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> DecodedImage:
    """Decode ``data``, shrunk to ``max_side`` (JPEGs decode at reduced scale straight away);
    refused when what would be decoded, all frames together, is over ``max_megapixels``."""
    if not data:
        raise ImageError("empty file (0 bytes)")
    # Pillow's own bomb check refuses, from the header, what is over its limit (89.5 MP), before
    # a JPEG's reduced-size decode is set up; a higher --max-megapixels raises it to match.
    # Ours then checks what will really be decoded.
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, int(max_megapixels * 1e6))
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x its pixel limit; a bomb is a bomb.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                source_format = img.format or "PNG"
                animated = getattr(img, "n_frames", 1) > 1 and source_format in (
                    "GIF", "WEBP", "PNG", "AVIF")
                if max_side and not animated:
                    img.draft("RGB", (max_side, max_side))  # JPEG: decode at reduced scale
                _check_pixels(img.size, getattr(img, "n_frames", 1) if animated else 1,
                              max_megapixels)
                pages = ImageSequence.Iterator(img) if animated else [img]
                decoded, durations = [], []
                for page in pages:
                    page.load()
                    durations.append(int(page.info.get("duration", 100) or 100))
                    decoded.append(_upright(page.copy() if animated else page, max_side))
                loop = img.info.get("loop")
                metadata = _metadata(img)  # after decoding: it resets the orientation in place
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge(f"decompression bomb: more than {max_pixels()} pixels "
                         "(Pillow's limit, Image.MAX_IMAGE_PIXELS)") from None
    except UnidentifiedImageError:
        raise ImageError("not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"corrupt or truncated image ({e})") from None
    frames = tuple(np.asarray(rgb) for rgb, _ in decoded)
    alphas = None
    if any(a is not None for _, a in decoded):  # an opaque frame among transparent ones: 255
        alphas = tuple(np.asarray(a) if a is not None else np.full(f.shape[:2], 255, np.uint8)
                       for (_, a), f in zip(decoded, frames))
    animation = Animation(tuple(durations), loop) if animated else None
    return DecodedImage(frames, alphas, source_format, metadata, animation)


def megapixels_text(megapixels: float) -> str:
    """0.0144, 81, 1,600: as many digits as say something."""
    return f"{megapixels:,.0f}" if megapixels >= 10 else f"{megapixels:.3g}"


def _check_pixels(size: tuple[int, int], frames: int, max_megapixels: float) -> None:
    w, h = size
    megapixels = w * h * frames / 1e6
    if megapixels > max_megapixels:
        frames_text = f" x {frames} frames" if frames > 1 else ""
        raise ImageTooLarge(f"{w}x{h}{frames_text} is {megapixels_text(megapixels)} megapixels, "
                         f"over the {max_megapixels:g} MP limit (--max-megapixels)")


def _upright(img: Image.Image, max_side: int | None) -> tuple[Image.Image, Image.Image | None]:
    """One frame as (RGB, alpha or None): EXIF orientation applied, shrunk to ``max_side``."""
    img = ImageOps.exif_transpose(img)
    rgb, alpha = _to_rgb(img)
    if max_side and max(rgb.size) > max_side:
        scale = max_side / max(rgb.size)
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.LANCZOS)
        alpha = alpha.resize(size, Image.LANCZOS) if alpha is not None else None
    return rgb, alpha


def _metadata(img: Image.Image) -> Metadata:
    """EXIF and XMP as the file has them, with the orientation set to upright (1)."""
    exif = img.getexif()
    if EXIF_ORIENTATION in exif:
        exif[EXIF_ORIENTATION] = 1
    xmp = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp") or b""
    if isinstance(xmp, str):
        xmp = xmp.encode()
    return Metadata(exif=exif.tobytes() if len(exif) else b"",
                    xmp=_XMP_ORIENTATION.sub(rb"\g<1>1", xmp))


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
