"""framestyle styles sheet IMAGE OUT.png: every built-in style on one image, side by side, and
any other ``--style`` after them (a picture as the style: ``--style image:painting.jpg``, shown
before its result); ``--no-builtins`` leaves only the original and those, a before/after."""

from __future__ import annotations

import argparse
import os

from ..core import storage, tempdirs
from ..core.errors import InputError
from ..models.hub import BUILTIN_STYLES
from .video import add_look_arguments

HELP = "render a contact sheet of all built-in styles applied to one image"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["sheet"], help="what to make")
    parser.add_argument("image", metavar="IMAGE", help="the photo to stylize")
    parser.add_argument("output", metavar="OUT.png", help="where the sheet goes")
    parser.add_argument("--tile", type=int, default=256, help="longer side of each tile (256)")
    parser.add_argument("--columns", type=int, default=7, help="tiles per row (7)")
    parser.add_argument("--style", action="append", default=[], metavar="STYLE",
                        help="one more tile after the built-ins, in any style --style takes "
                        "elsewhere (image:PICTURE, a checkpoint, a published model); repeat it "
                        "for more")
    parser.add_argument("--no-builtins", action="store_true",
                        help="only the original and the --style tiles: a before/after sheet "
                        "(an image: style shows its picture before its result)")
    add_look_arguments(parser)


def run(args: argparse.Namespace) -> dict:
    from PIL import Image, ImageDraw

    from ..models.hub import resolve
    from ..pipeline.image_file_job import load_rgb
    from ..pipeline.style_image import pictures, resolve_style
    from ..pipeline.stylize import Stylizer

    if args.no_builtins and not args.style:
        raise InputError("--no-builtins leaves nothing to show: add a --style")
    look = {"strength": args.strength, "preserve_color": args.preserve_color}
    extra = [resolve_style(text, **look) for text in args.style]  # bad ones fail before work
    photo = load_rgb(storage.fetch(args.image, storage.require(args.image)), args.image, args.tile)
    h, w = photo.shape[:2]
    label = 18
    tiles = [("original", photo)]
    if not args.no_builtins:
        stylizer = Stylizer(resolve_style("builtin:0", **look))  # one network, restyled 26 times
        for i in range(BUILTIN_STYLES):
            stylizer.restyle(resolve(f"builtin:{i}"))
            tiles.append((f"builtin:{i}", stylizer([photo])[0]))
    for text, style in zip(args.style, extra):
        named = pictures(text)
        if len(named) == 1:  # one picture: show it, then the result
            picture = load_rgb(storage.fetch(named[0]), named[0], 4 * args.tile)
            tiles.append((f"style: {storage.basename(named[0])}", fitted(picture, w, h)))
        tiles.append((style.slug, Stylizer(style)([photo])[0]))
    columns = min(args.columns, len(tiles))  # a before/after is one row, not a wide blank one
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * w, rows * (h + label)), "white")
    draw = ImageDraw.Draw(sheet)
    for n, (name, pixels) in enumerate(tiles):
        x, y = (n % columns) * w, (n // columns) * (h + label)
        sheet.paste(Image.fromarray(pixels), (x, y + label))
        draw.text((x + 4, y + 3), name, fill="black")
    with tempdirs.scratch("sheet") as tmp:
        local = os.path.join(tmp, "sheet.png")
        sheet.save(local)
        storage.storage_for(args.output).upload(local, args.output)
    return {"image": args.image, "output": args.output,
            "styles": sum(not name.startswith(("original", "style: ")) for name, _ in tiles),
            "width": sheet.width, "height": sheet.height}


def fitted(picture, width: int, height: int):
    """``picture``'s largest centred crop of the tile's shape, scaled to the tile."""
    import numpy as np
    from PIL import Image

    h, w = picture.shape[:2]
    scale = min(w / width, h / height)
    cw, ch = round(width * scale), round(height * scale)
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = Image.fromarray(picture[top:top + ch, left:left + cw])
    return np.asarray(crop.resize((width, height), Image.LANCZOS))


def summary_line(result: dict) -> str:
    return f"{result['output']}: {result['styles']} styles, {result['width']}x{result['height']}"
