"""framestyle image IN OUT --style STYLE: stylize one image (local path or s3:// URI)."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from ..pipeline import storage
from ..pipeline.errors import InputError
from ..pipeline.styles import parse_style
from .video import add_inference_arguments, add_style_arguments, inference_options

HELP = "stylize one image (local path or s3:// URI)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN", help="image file: local path or s3://bucket/key")
    parser.add_argument("output", metavar="OUT", help="output image; its extension sets the format")
    add_style_arguments(parser)
    parser.add_argument("--max-side", type=int, default=None,
                        help="shrink so the longer side is at most this many pixels")
    add_inference_arguments(parser)


def load_rgb(path: str, name: str, max_side: int | None):
    """An RGB array, upright (EXIF orientation applied), alpha composited on white."""
    from ..pipeline.image_decode import ImageError, decode_image

    with open(path, "rb") as f:
        data = f.read()
    try:
        return decode_image(data, max_side).rgb
    except ImageError as e:
        raise InputError(f"not a readable image: {name} ({e})") from None


def run(args: argparse.Namespace) -> dict:
    from PIL import Image

    from ..pipeline.stylize import Stylizer

    started = time.monotonic()
    style = parse_style(args.style, arch=args.arch, trust_code=args.trust_code)
    suffix = Path(storage.basename(args.output)).suffix.lower()
    if suffix not in Image.registered_extensions():
        raise InputError(f"cannot tell the image format of {args.output}: use .png, .jpg, .webp…")
    storage.storage_for(args.output).check_writable(args.output)
    source = storage.fetch(args.input, storage.require(args.input))
    pixels = load_rgb(source, args.input, args.max_side)
    out = Stylizer(style, inference_options(args))([pixels])[0]
    with tempfile.TemporaryDirectory(prefix="framestyle-image-") as tmp:
        local = os.path.join(tmp, "out" + suffix)
        Image.fromarray(out).save(local)
        storage.storage_for(args.output).upload(local, args.output)
    return {"input": args.input, "output": args.output, "width": int(out.shape[1]),
            "height": int(out.shape[0]), "style": style.text,
            "seconds": round(time.monotonic() - started, 3)}


def summary_line(result: dict) -> str:
    return (f"{result['output']}: {result['width']}x{result['height']} in "
            f"{result['seconds']:.1f} s")
