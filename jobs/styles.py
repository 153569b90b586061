"""framestyle styles sheet IMAGE OUT.png: every built-in style on one image, side by side, and
any other ``--style`` after them (a picture as the style: ``--style image:painting.jpg``)."""

from __future__ import annotations

import argparse
import os

from ..core import storage, tempdirs
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
    add_look_arguments(parser)


def run(args: argparse.Namespace) -> dict:
    from PIL import Image, ImageDraw

    from ..models.hub import resolve
    from ..pipeline.image_file_job import load_rgb
    from ..pipeline.style_image import resolve_style
    from ..pipeline.stylize import Stylizer

    look = {"strength": args.strength, "preserve_color": args.preserve_color}
    extra = [resolve_style(text, **look) for text in args.style]  # bad ones fail before work
    photo = load_rgb(storage.fetch(args.image, storage.require(args.image)), args.image, args.tile)
    h, w = photo.shape[:2]
    label = 18
    tiles = [("original", photo)]
    stylizer = Stylizer(resolve_style("builtin:0", **look))  # one network, restyled 26 times
    for i in range(BUILTIN_STYLES):
        stylizer.restyle(resolve(f"builtin:{i}"))
        tiles.append((f"builtin:{i}", stylizer([photo])[0]))
    for style in extra:
        tiles.append((style.slug, Stylizer(style)([photo])[0]))
    rows = -(-len(tiles) // args.columns)
    sheet = Image.new("RGB", (args.columns * w, rows * (h + label)), "white")
    draw = ImageDraw.Draw(sheet)
    for n, (name, pixels) in enumerate(tiles):
        x, y = (n % args.columns) * w, (n // args.columns) * (h + label)
        sheet.paste(Image.fromarray(pixels), (x, y + label))
        draw.text((x + 4, y + 3), name, fill="black")
    with tempdirs.scratch("sheet") as tmp:
        local = os.path.join(tmp, "sheet.png")
        sheet.save(local)
        storage.storage_for(args.output).upload(local, args.output)
    return {"image": args.image, "output": args.output, "styles": len(tiles) - 1,
            "width": sheet.width, "height": sheet.height}


def summary_line(result: dict) -> str:
    return f"{result['output']}: {result['styles']} styles, {result['width']}x{result['height']}"
