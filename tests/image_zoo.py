"""Image files of every awkward kind, built in memory for the image-job tests."""

from __future__ import annotations

import io
import struct
import tarfile
import zlib

import numpy as np
from PIL import Image

RNG_SEED = 0


def encoded(img: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def photo(width: int, height: int, seed: int, mode: str = "RGB") -> Image.Image:
    """Smooth gradients plus noise: something a JPEG encoder and a stylizer both treat normally."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    base = np.stack([xs * 255 // max(1, width - 1), ys * 255 // max(1, height - 1),
                     (xs + ys) * 127 // max(1, width + height - 2)], axis=-1)
    noisy = np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(noisy).convert(mode)


def exif_rotated_jpeg(width: int, height: int) -> bytes:
    """Stored width x height, EXIF orientation 6: displays as height x width."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(photo(width, height, 7), "JPEG", exif=exif.tobytes())


def sixteen_bit_png(width: int, height: int) -> bytes:
    values = (np.linspace(0, 65535, width * height).reshape(height, width)).astype(np.uint16)
    return encoded(Image.fromarray(values), "PNG")


def decompression_bomb_png(side: int = 40000) -> bytes:
    """A valid PNG header claiming side x side 1-bit pixels, with a tiny zlib stream: Pillow
    knows its size from the header alone, which is all the bomb check needs."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b""))


def tar_bytes(members: dict[str, bytes], links: dict[str, str] | None = None,
              gzip: bool = False) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gzip else "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buffer.getvalue()


def bad_and_awkward() -> tuple[dict[str, bytes], dict[str, str]]:
    """(files that must succeed, {name: reason fragment} of files that must fail)."""
    good = encoded(photo(24, 16, 1), "JPEG")
    rgba = photo(20, 20, 2, "RGBA")
    rgba.putalpha(Image.fromarray(np.tile(np.arange(20, dtype=np.uint8) * 12, (20, 1))))
    files = {
        "ok/plain.jpg": good,
        "ok/cmyk.jpg": encoded(photo(24, 16, 3, "CMYK"), "JPEG"),
        "ok/gray.png": encoded(photo(24, 16, 4, "L"), "PNG"),
        "ok/sixteen.png": sixteen_bit_png(24, 16),
        "ok/alpha.png": encoded(rgba, "PNG"),
        "ok/rotated.jpg": exif_rotated_jpeg(32, 16),
        "ok/palette.gif": encoded(photo(16, 16, 5).convert("P"), "GIF"),
    }
    bad = {
        "bad/corrupt.jpg": b"\xff\xd8\xff\xe0" + bytes(np.random.default_rng(9).integers(
            0, 256, 300, dtype=np.uint8)),
        "bad/truncated.jpg": good[:len(good) // 2],
        "bad/empty.png": b"",
        "bad/readme.txt": b"not an image at all\n",
        "bad/bomb.png": decompression_bomb_png(),
    }
    reasons = {"bad/corrupt.jpg": "corrupt", "bad/truncated.jpg": "truncated",
               "bad/empty.png": "0 bytes", "bad/readme.txt": "not an image",
               "bad/bomb.png": "decompression bomb"}
    return {**files, **bad}, reasons
